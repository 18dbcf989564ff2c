//! `mcplex serve --upstream URL`: the server end's checks in front of an HTTP MCP server nobody here wrote
//! (a FastMCP server, PyPI `fastmcp`): callers checked against the real authorization server, the caller
//! passed on in `_meta` and in the headers the platform names (a client's own copies dropped, its token
//! never passed on), sessions bound to their callers, policy and audit, and a dead server named.

use crate::authz::AuthorizationServer;
use crate::support::common::*;
use crate::support::node::tools_dir;
use mcplex::http_front::{CallerHeader, HttpFront, HttpFrontLimits};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const AUDIENCE: &str = "urn:served-http";

/// The FastMCP fixture over HTTP on a port of its own; ended when dropped.
async fn fastmcp_http() -> (tokio::process::Child, String) {
    let python = tools_dir().join("venv/bin/python");
    assert!(
        python.exists(),
        "run scripts/install-test-tools: {} is missing",
        python.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fastmcp_server.py"))
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    until_listening("the FastMCP server", &addr).await;
    (child, format!("http://{addr}/mcp"))
}

/// `mcplex serve --upstream` in this process; its URL and the token that stops it.
async fn front(
    upstream: &str,
    inbound: Option<mcplex::config::inbound::InboundJwt>,
    checks: Option<Arc<dyn mcplex::child::Checks>>,
) -> (String, CancellationToken) {
    let limits = HttpFrontLimits {
        call_timeout: Duration::from_secs(30),
        max_body: 4 * 1024 * 1024,
        max_sessions: 8,
    };
    let headers = vec![
        CallerHeader {
            field: "sub".into(),
            name: http::HeaderName::from_static("x-mcplex-subject"),
        },
        CallerHeader {
            field: "act".into(),
            name: http::HeaderName::from_static("x-mcplex-actor"),
        },
    ];
    let front = HttpFront::new(upstream.parse().unwrap(), limits, checks, headers).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let end = mcplex::server_end::ServerEnd::new(front, inbound);
    tokio::spawn(mcplex::server_end::serve(listener, None, end, stop.clone()));
    (url, stop)
}

fn initialize() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    .to_string()
}

#[tokio::test]
async fn an_http_server_behind_serve_learns_who_calls_and_never_sees_a_token() {
    let (_server, upstream) = fastmcp_http().await;
    let authz = AuthorizationServer::start(json!({"alice": {}, "bob": {}, "pod": {}}), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let (inbound, checks, audit_path) = crate::serve_stdio::checked_by(&authz, AUDIENCE, "add", dir.path());
    let (url, stop) = front(&upstream, Some(inbound), Some(checks)).await;

    // No token: 401 with the challenge, and nothing reaches the server.
    let (status, headers, _) = post(&url, &[], &initialize()).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("resource_metadata=")
    );

    // Alice opens a session; the server learns who calls, from `_meta` and from the named header, even
    // when the client sends its own copies of both; the token stays here.
    let alice = format!("Bearer {}", authz.token("alice", AUDIENCE).await);
    let (status, headers, text) = post(&url, &[("authorization", &alice)], &initialize()).await;
    assert_eq!(status, 200, "{text}");
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let as_alice = [
        ("authorization", alice.as_str()),
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    assert_eq!(post(&url, &as_alice, &initialized).await.0, 202);
    let whoami =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {},
        "_meta": {"dev.mcplex/caller": {"sub": "forged"}}}})
        .to_string();
    let mut forging = as_alice.to_vec();
    forging.push(("x-mcplex-subject", "mallory"));
    forging.push(("x-mcplex-actor", "mallory"));
    let (status, _, text) = post(&url, &forging, &whoami).await;
    assert_eq!(status, 200, "{text}");
    let said: Value =
        serde_json::from_str(message_of(&text)["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(said["caller"], json!({"sub": "alice"}), "{said}");
    assert_eq!(said["headers"]["x-mcplex-subject"], "alice", "{said}");
    assert!(
        said["headers"].get("x-mcplex-actor").is_none(),
        "no actor, so no header: {said}"
    );
    assert!(said["headers"].get("authorization").is_none(), "{said}");

    // A JSON-RPC error in the server's answer is the call's outcome in the audit line, not the 200 it came in.
    let malformed = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "whoami", "arguments": "not an object"}})
        .to_string();
    let (status, _, text) = post(&url, &as_alice, &malformed).await;
    assert_eq!(status, 200, "{text}");
    assert!(message_of(&text).get("error").is_some(), "{text}");

    // The policy holds here too, naming its rule; another caller cannot use alice's session, and a
    // session the front never saw opened is refused.
    let add = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 1, "b": 2}}})
        .to_string();
    let (_, _, text) = post(&url, &as_alice, &add).await;
    let answer = message_of(&text);
    assert_eq!(answer["error"]["code"], -32032, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-add-for-alice")
    );
    let bob = format!("Bearer {}", authz.token("bob", AUDIENCE).await);
    let (status, _, _) = post(&url, &[("authorization", &bob), ("mcp-session-id", &session)], &whoami).await;
    assert_eq!(status, 403);
    let (status, _, _) = post(
        &url,
        &[("authorization", &alice), ("mcp-session-id", "made-up")],
        &whoami,
    )
    .await;
    assert_eq!(status, 404);

    // One audit line per call, with its caller and outcome.
    let lines = eventually("three audit lines", || async {
        let text = std::fs::read_to_string(&audit_path).unwrap_or_default();
        let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        (lines.len() >= 3).then_some(lines)
    })
    .await;
    let summary: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), l["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(summary, [("whoami", "ok"), ("whoami", "error"), ("add", "denied")]);
    assert!(lines.iter().all(|l| l["caller"]["subject"] == "alice"));

    // A sidecar that presents the pod's audience-bound token: its agent's calls arrive as the pod's.
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    std::fs::write(tokens.join("aud"), authz.token("pod", AUDIENCE).await).unwrap();
    let auth = format!(
        "auth:\n  serviceAccountToken:\n    audience: \"{AUDIENCE}\"\n    path: {}\n",
        tokens.display()
    );
    let harness = Harness::start(&config_of(&url, &auth)).await;
    harness.until_up(&["fm"]).await;
    let agent = harness.legacy_client().await;
    let said: Value = serde_json::from_str(&call_text(&agent, "fm_whoami", json!({})).await).unwrap();
    assert_eq!(said["caller"], json!({"sub": "pod"}), "{said}");
    assert_eq!(said["headers"]["x-mcplex-subject"], "pod", "{said}");
    agent.cancel().await.unwrap();
    stop.cancel();
}

fn config_of(url: &str, extra: &str) -> String {
    config(&[("fm", url, extra)])
}

#[tokio::test]
async fn a_server_that_is_down_is_named_and_a_batch_is_refused() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/mcp", listener.local_addr().unwrap())
    };
    let (url, stop) = front(&dead, None, None).await;
    let (status, _, text) = post(&url, &[], &initialize()).await;
    assert_eq!(status, 502, "{text}");
    let answer = message_of(&text);
    assert_eq!(answer["error"]["code"], -32030, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains(&dead), "{answer}");
    // A batch could carry a call past the policy: only one message at a time goes through.
    let batch = format!("[{}]", initialize());
    let (status, _, text) = post(&url, &[], &batch).await;
    assert_eq!(status, 400, "{text}");
    stop.cancel();
}
