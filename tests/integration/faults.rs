//! Failure isolation: dead, silent, garbage-speaking and restarting targets.

use crate::support::common::*;
use futures_util::StreamExt;
use mcplex_examples::Example;
use mcplex_examples::everything::Versions;
use rmcp::model::SubscribeRequestParams;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A port that refuses connections (bound, then closed).
async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/mcp")
}

/// A server that answers every request with 200 and a body that is not JSON.
async fn garbage_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65536];
                while let Ok(n) = socket.read(&mut buffer).await {
                    if n == 0 {
                        return;
                    }
                    let body = "this is { not json";
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}/mcp")
}

#[tokio::test]
async fn bad_targets_only_lose_their_own_items_and_calls_name_them() {
    let math = example(Example::Math).await;
    let yaml = config(&[
        ("math", &math.url(), ""),
        ("dead", &dead_url().await, "protocol: modern"),
        ("silent", &silent_url().await, "timeout: 300ms\nprotocol: modern"),
        ("garbage", &garbage_url().await, "protocol: modern"),
    ]);
    let harness = within("start-up beside bad targets", Harness::start(&yaml)).await;
    let client = harness.modern_client().await;
    let names = tool_names(&client).await;
    assert_eq!(names, vec!["math_add", "math_divide", "math_multiply", "math_subtract"]);
    let status = harness.status().await;
    for (index, name) in ["dead", "silent", "garbage"].iter().enumerate() {
        assert_eq!(status["targets"][index + 1]["name"], *name);
        assert_down(&status, index + 1, &format!("target `{name}`"));
    }
    // Calls to the healthy target still work while the others fail.
    assert_eq!(call_text(&client, "math_multiply", json!({"a": 6, "b": 7})).await, "42");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_call_to_a_target_that_dies_gets_an_error_naming_it() {
    let upstream = everything(Versions::All).await;
    let harness = Harness::start(&config(&[("flaky", &upstream.url(), "timeout: 2s")])).await;
    let client = harness.legacy_client().await;
    assert_eq!(
        call_text(&client, "flaky_test_simple_text", json!({})).await,
        "This is a simple text response for testing."
    );
    upstream.shutdown().await;
    let error = call(&client, "flaky_test_simple_text", json!({}))
        .await
        .expect_err("the target is gone");
    assert!(error.to_string().contains("target `flaky`"), "{error}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_slow_call_times_out_by_the_target_timeout_and_others_carry_on() {
    let math = example(Example::Math).await;
    let slow = everything(Versions::All).await;
    let harness = Harness::start(&config(&[
        ("math", &math.url(), ""),
        ("slow", &slow.url(), "timeout: 300ms"),
    ]))
    .await;
    let client = harness.modern_client().await;
    // No progress token: nothing extends the deadline.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "slow_slow", "arguments": {"ms": 3000}, "_meta": modern_meta()}}).to_string();
    let (url, headers) = (harness.url(), modern_headers("tools/call", Some("slow_slow")));
    let (slow_result, fast) = tokio::join!(
        post(&url, &headers, &body),
        call_text(&client, "math_add", json!({"a": 1, "b": 1}))
    );
    assert_eq!(fast, "2");
    let error = message_of(&slow_result.2)["error"].clone();
    assert_eq!(error["code"], -32031, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("target `slow` did not answer within 300ms"),
        "{error}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_restarted_target_is_reinitialized_transparently() {
    let upstream = everything(Versions::LegacyOnly).await;
    let addr = upstream.addr.to_string();
    let harness = Harness::start(&config(&[("e", &upstream.url(), "")])).await;
    let client = harness.legacy_client().await;
    assert_eq!(
        call_text(&client, "e_test_simple_text", json!({})).await,
        "This is a simple text response for testing."
    );
    upstream.shutdown().await;
    // Same port, new process state: the old upstream session id is unknown there (HTTP 404).
    let _restarted = everything_at(&addr, Versions::LegacyOnly).await;
    assert_eq!(
        call_text(&client, "e_test_simple_text", json!({})).await,
        "This is a simple text response for testing."
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_target_that_was_down_joins_when_it_comes_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let math = example(Example::Math).await;
    let harness = Harness::start(&config(&[
        ("math", &math.url(), ""),
        ("late", &format!("http://{addr}/mcp"), ""),
    ]))
    .await;
    let client = harness.legacy_client().await;
    assert!(!tool_names(&client).await.iter().any(|n| n.starts_with("late_")));
    let _late = everything_at(&addr, Versions::All).await;
    client.service().wait_for("tools_list_changed").await;
    assert!(tool_names(&client).await.contains(&"late_test_simple_text".to_string()));
    assert_eq!(
        call_text(&client, "late_test_simple_text", json!({})).await,
        "This is a simple text response for testing."
    );
    client.cancel().await.unwrap();
}

/// The URIs of the `notifications/resources/updated` events in an SSE body read so far.
fn updated_uris(sse: &str) -> Vec<String> {
    sse.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter(|m| m["method"] == "notifications/resources/updated")
        .map(|m| m["params"]["uri"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_subscription_outlives_a_restart_of_its_target() {
    // The everything server announces each watched resource once when a listen opens. After its restart,
    // mcplex reopens the listen and says the resource may have changed (what was sent while no listen was
    // open is lost), and the new listen's own announcement follows: three updates in all, twice as many
    // as without the reopen.
    const URI: &str = "test://watched-resource";
    let upstream = everything(Versions::All).await;
    let addr = upstream.addr.to_string();
    let harness = Harness::start(&config(&[("ev", &upstream.url(), "protocol: modern")])).await;

    // A 2026-07-28 client's listen, merged by mcplex.
    let listen = open_modern_listen(&harness.url(), json!(9), json!({"resourceSubscriptions": [URI]})).await;
    let mut body = listen.bytes_stream();
    let mut sse = String::new();
    let mut read_until = async |count: usize| {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while updated_uris(&sse).len() < count {
            match tokio::time::timeout_at(deadline, body.next()).await {
                Ok(Some(chunk)) => sse.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
                _ => break,
            }
        }
        updated_uris(&sse)
    };
    assert_eq!(read_until(1).await, [URI]);

    // A session-era client's subscription, bridged to a listen of its own.
    let client = harness.legacy_client().await;
    #[allow(deprecated)] // resources/subscribe is the session-era feature under test
    client
        .subscribe(SubscribeRequestParams::new(URI))
        .await
        .expect("resources/subscribe is bridged");
    client.service().wait_for("resource_updated").await;

    upstream.shutdown().await;
    let _restarted = everything_at(&addr, Versions::All).await;
    assert_eq!(read_until(3).await, [URI; 3]);
    let session_updates = || {
        client
            .service()
            .events()
            .into_iter()
            .filter(|e| e["kind"] == "resource_updated")
            .count()
    };
    until("three updates on the session", || async { session_updates() >= 3 }).await;
    assert_eq!(session_updates(), 3, "{:?}", client.service().events());
    client.cancel().await.unwrap();
}

/// A TCP relay in front of `upstream`: the connections accepted so far, and those open now. A connection counts
/// as open until the sidecar closes it: when the target closes its side (an idle timeout of its own), the relay
/// keeps the sidecar's side open, so only the sidecar can end it.
async fn counting_relay(upstream: std::net::SocketAddr) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let counters = (accepted.clone(), open.clone());
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let (accepted, open) = (counters.0.clone(), counters.1.clone());
            accepted.fetch_add(1, Ordering::SeqCst);
            open.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let (mut from_sidecar, mut to_sidecar) = inbound.split();
                    let (mut from_target, mut to_target) = outbound.into_split();
                    let answers = async {
                        let _ = tokio::io::copy(&mut from_target, &mut to_sidecar).await;
                        std::future::pending::<()>().await
                    };
                    tokio::select! {
                        _ = tokio::io::copy(&mut from_sidecar, &mut to_target) => {}
                        () = answers => {}
                    }
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (format!("http://{addr}/mcp"), accepted, open)
}

#[tokio::test]
async fn idle_connections_to_a_target_nobody_calls_are_closed() {
    let math = example(Example::Math).await;
    let (url, accepted, open) = counting_relay(math.addr).await;
    let harness = Harness::start(&config(&[("math", &url, "protocol: modern")])).await;
    assert_eq!(target_status(&harness.status().await, "math")["up"], true);
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "the lists were not fetched through the relay"
    );
    // Nothing calls the target again: only the pool's own timer can close what the list fetch left open.
    until("the idle connections are closed", || async {
        open.load(Ordering::SeqCst) == 0
    })
    .await;
}
