//! The endpoint's transport rules: Host/Origin, body limit, malformed JSON-RPC, modern headers.

use crate::support::common::*;
use mcplex::admin::StatusAccess;
use mcplex_examples::everything::Versions;
use serde_json::json;

async fn harness() -> (Upstream, Harness) {
    let upstream = everything(Versions::All).await;
    let harness = Harness::start_with(&config(&[("e", &upstream.url(), "prefix: \"\"")]), |o| {
        o.limits.max_body = 64 * 1024
    })
    .await;
    (upstream, harness)
}

fn initialize_body() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}).to_string()
}

#[tokio::test]
async fn foreign_host_or_origin_is_refused_with_403() {
    let (_upstream, harness) = harness().await;
    let (status, _, text) = post(&harness.url(), &[("host", "evil.example.com")], &initialize_body()).await;
    assert_eq!(status, 403);
    assert!(text.contains("evil.example.com"), "{text}");
    let (status, _, _) = post(
        &harness.url(),
        &[("origin", "https://evil.example.com")],
        &initialize_body(),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = post(
        &harness.url(),
        &[("origin", "http://localhost:6274")],
        &initialize_body(),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn malformed_messages_get_the_error_they_deserve() {
    let (_upstream, harness) = harness().await;
    let url = harness.url();
    let (status, _, text) = post(&url, &[], "{not json").await;
    assert_eq!(
        (status, message_of(&text)["error"]["code"].as_i64()),
        (400, Some(-32700)),
        "{text}"
    );
    let (status, _, text) = post(&url, &[], r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#).await;
    assert_eq!(
        (status, message_of(&text)["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "{text}"
    );
    assert_eq!(message_of(&text)["id"], 1);
    let (status, _, text) = post(&url, &[], r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).await;
    assert_eq!(status, 400);
    assert!(text.contains("batches are not supported"), "{text}");
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(70 * 1024)
    );
    let (status, _, text) = post(&url, &[], &big).await;
    assert_eq!(status, 413);
    assert!(text.contains("65536 byte limit"), "{text}");
    // A session-era request without a session.
    let (status, _, text) = post(&url, &[], r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#).await;
    assert_eq!(status, 400);
    assert!(text.contains("initialize first"), "{text}");
    // An unknown session.
    let (status, _, _) = post(
        &url,
        &[("mcp-session-id", "nope")],
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn errors_follow_each_eras_status_rules() {
    let (_upstream, harness) = harness().await;
    let url = harness.url();
    let (_, headers, _) = post(&url, &[], &initialize_body()).await;
    let session = headers.get("mcp-session-id").unwrap().to_str().unwrap().to_owned();
    let (status, _, text) = post(
        &url,
        &[("mcp-session-id", &session)],
        r#"{"jsonrpc":"2.0","id":5,"method":"no/such"}"#,
    )
    .await;
    assert_eq!(
        (status, message_of(&text)["error"]["code"].as_i64()),
        (200, Some(-32601)),
        "{text}"
    );
    let (status, _, text) = post(
        &url,
        &[("mcp-session-id", &session)],
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"nope"}}"#,
    )
    .await;
    assert_eq!(
        (status, message_of(&text)["error"]["code"].as_i64()),
        (200, Some(-32602)),
        "{text}"
    );
    assert!(text.contains("unknown tool `nope`"));

    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "no/such", "params": {"_meta": modern_meta()}}).to_string();
    let (status, _, text) = post(&url, &modern_headers("no/such", None), &body).await;
    assert_eq!(
        (status, message_of(&text)["error"]["code"].as_i64()),
        (404, Some(-32601)),
        "{text}"
    );
    let call =
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "echo", "_meta": modern_meta()}})
            .to_string();
    let (status, _, text) = post(&url, &modern_headers("tools/call", Some("other")), &call).await;
    assert_eq!(
        (status, message_of(&text)["error"]["code"].as_i64()),
        (400, Some(-32020)),
        "{text}"
    );
    assert!(text.contains("Mcp-Name header `other` does not match"), "{text}");
    let (status, _, text) = post(&url, &modern_headers("tools/list", None), &call).await;
    assert_eq!(
        (status, message_of(&text)["error"]["code"].as_i64()),
        (400, Some(-32020)),
        "{text}"
    );
    let no_caps = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}).to_string();
    let (status, _, text) = post(&url, &modern_headers("tools/list", None), &no_caps).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("clientCapabilities"), "{text}");
    assert_eq!(message_of(&text)["error"]["code"], -32602, "{text}");
    // No _meta at all: -32602 too, before any header is looked at.
    let no_meta = json!({"jsonrpc": "2.0", "id": 11, "method": "tools/list", "params": {}}).to_string();
    let (status, _, text) = post(&url, &modern_headers("tools/list", None), &no_meta).await;
    assert_eq!(
        (
            status,
            message_of(&text)["error"]["code"].as_i64(),
            message_of(&text)["id"].as_i64()
        ),
        (400, Some(-32602), Some(11)),
        "{text}"
    );
    let future = json!({"jsonrpc": "2.0", "id": 10, "method": "tools/list", "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01", "io.modelcontextprotocol/clientCapabilities": {}}}}).to_string();
    let (status, _, text) = post(
        &url,
        &[("mcp-protocol-version", "2099-01-01"), ("mcp-method", "tools/list")],
        &future,
    )
    .await;
    let error = &message_of(&text)["error"];
    assert_eq!((status, error["code"].as_i64()), (400, Some(-32022)), "{text}");
    assert_eq!(error["data"]["requested"], "2099-01-01", "{text}");
    assert!(
        error["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28")),
        "{text}"
    );
    // Methods 2026-07-28 removed are HTTP 404 and -32601 on its wire, initialize included.
    for removed in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
    ] {
        let body = json!({"jsonrpc": "2.0", "id": 12, "method": removed, "params": {"uri": "test://x", "level": "info", "_meta": modern_meta()}}).to_string();
        let name = matches!(removed, "resources/subscribe" | "resources/unsubscribe").then_some("test://x");
        let (status, _, text) = post(&url, &modern_headers(removed, name), &body).await;
        assert_eq!(
            (
                status,
                message_of(&text)["error"]["code"].as_i64(),
                message_of(&text)["id"].as_i64()
            ),
            (404, Some(-32601), Some(12)),
            "{removed}: {text}"
        );
    }
    // GET and DELETE without a session are not for modern clients.
    let response = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
}

/// This machine's address on its default route: a client there reaches the admin port the way the
/// cluster network does. (Connecting a UDP socket sends nothing; it only picks the source address.)
fn cluster_facing_ip() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("203.0.113.1:9")
        .expect("the machine has a default route");
    let ip = socket.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "need a non-loopback address, got {ip}");
    ip
}

#[tokio::test]
async fn status_is_served_only_to_loopback_unless_opened() {
    let upstream = everything(Versions::All).await;
    let yaml = config(&[("e", &upstream.url(), "")]);
    let ip = cluster_facing_ip();
    for access in [StatusAccess::Loopback, StatusAccess::Anyone] {
        let harness = Harness::start_with(&yaml, |o| {
            o.admin = "0.0.0.0:0".parse().unwrap();
            o.status_access = access;
        })
        .await;
        let port = harness.sidecar.admin_addr.port();
        let get = |host: String, path: &str| {
            let url = format!("http://{host}:{port}{path}");
            async move {
                let response = reqwest::get(&url).await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            }
        };
        // Probes and metrics answer the whole cluster.
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert_eq!(get(ip.to_string(), path).await.0, 200, "{path} from {ip}");
        }
        let (status, text) = get("127.0.0.1".into(), "/status").await;
        assert_eq!(status, 200);
        assert!(text.contains(&upstream.url()), "{text}");
        let (status, text) = get(ip.to_string(), "/status").await;
        match access {
            StatusAccess::Loopback => {
                assert_eq!(status, 403, "{text}");
                assert!(
                    text.contains("--public-status") && !text.contains(&upstream.url()),
                    "{text}"
                );
            }
            StatusAccess::Anyone => assert_eq!(status, 200, "{text}"),
        }
    }
}
