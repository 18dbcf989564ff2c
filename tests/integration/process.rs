//! The real binary: SIGTERM drains in-flight calls, JSON logs, and the modern subscription stream.

use crate::support::common::*;
use mcplex_examples::Example;
use mcplex_examples::everything::Versions;
use serde_json::{Value, json};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn sigterm_lets_in_flight_calls_finish_then_exits() {
    let upstream = everything(Versions::All).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config(&[("slow", &upstream.url(), "")])).unwrap();
    let mut sidecar = SidecarProcess::start(
        &config_path,
        &["--log-format", "json"],
        &["--drain-seconds", "5"],
        &[],
        Stdio::piped(),
    )
    .await;
    let mcp = sidecar.mcp.clone();
    // The test signals the process and reads its logs itself.
    let mut child = sidecar.child.take().unwrap();
    let url = format!("http://{mcp}/mcp");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "slow_slow", "arguments": {"ms": 3000}, "_meta": modern_meta()}}).to_string();
    let call = tokio::spawn({
        let url = url.clone();
        async move { post(&url, &modern_headers("tools/call", Some("slow_slow")), &body).await }
    });
    let metrics = format!("http://{}/metrics", sidecar.admin);
    until("the call is in flight", || async {
        let page = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        page.contains(r#"mcplex_requests_in_flight{target="slow"} 1"#)
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    until("no new connection is accepted after SIGTERM", || async {
        tokio::net::TcpStream::connect(&mcp).await.is_err()
    })
    .await;
    let (status, _, text) = call.await.unwrap();
    assert_eq!(status, 200);
    assert!(
        message_of(&text)["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("done after"),
        "{text}"
    );
    let exit = tokio::task::spawn_blocking(move || child.wait().map(|s| (s, child)))
        .await
        .unwrap()
        .unwrap();
    assert!(exit.0.success(), "{:?}", exit.0);
    let mut logs = String::new();
    exit.1.stderr.unwrap().read_to_string(&mut logs).unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    for expected in [
        "config applied",
        "shutting down: no new connections; draining in-flight calls",
        "stopped",
    ] {
        assert!(messages.contains(&expected), "{expected:?} missing in {messages:?}");
    }
}

#[tokio::test]
async fn modern_clients_hear_about_catalog_changes_on_subscriptions_listen() {
    let math = example(Example::Math).await;
    let date = example(Example::Date).await;
    let harness = Harness::start(&config(&[("math", &math.url(), "")])).await;
    let mut response = open_modern_listen(&harness.url(), json!("sub-1"), json!({"toolsListChanged": true})).await;
    assert_eq!(response.status(), 200);
    let mut seen = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    let mut edited = false;
    while events.len() < 2 {
        assert!(Instant::now() < deadline, "stream so far: {seen}");
        let chunk = tokio::time::timeout(Duration::from_millis(200), response.chunk()).await;
        if let Ok(chunk) = chunk {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("stream open")));
            // Only complete lines: an event may arrive in several chunks.
            let complete = &seen[..seen.rfind('\n').map_or(0, |end| end + 1)];
            events = complete
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .map(|d| serde_json::from_str::<Value>(d).unwrap())
                .collect();
        }
        if !events.is_empty() && !edited {
            std::fs::write(
                &harness.config_path,
                config(&[("math", &math.url(), ""), ("date", &date.url(), "")]),
            )
            .unwrap();
            edited = true;
        }
    }
    assert_eq!(events[0]["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(events[0]["params"]["notifications"], json!({"toolsListChanged": true}));
    assert_eq!(
        events[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );
    assert_eq!(events[1]["method"], "notifications/tools/list_changed");
    assert_eq!(
        events[1]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );
}
