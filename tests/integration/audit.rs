//! The audit trail of a real `mcplex run`: one JSON line per tool call, prompt get and resource read,
//! with caller, profile, names, target, decision, outcome, latency and trace id; never a token, never
//! the arguments (only their SHA-256 when asked for).

use crate::support::common::*;
use mcplex_examples::everything::Versions;
use serde_json::{Value, json};
use std::process::Stdio;

#[tokio::test]
async fn every_call_leaves_one_line_without_tokens_or_arguments() {
    let upstream = everything(Versions::All).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.yaml");
    let yaml = config(&[("e", &upstream.url(), "")]) + "profiles:\n  sre:\n    targets: [e]\n";
    std::fs::write(&config_path, yaml).unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let sidecar = SidecarProcess::start(
        &config_path,
        &[],
        &[
            "--profile",
            "sre",
            "--audit-log",
            audit_path.to_str().unwrap(),
            "--audit-hash-arguments",
        ],
        &[],
        Stdio::null(),
    )
    .await;
    let url = sidecar.url();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let secret_argument = json!({"message": "super-secret-argument"});
    let requests = [
        (
            "tools/call",
            Some("e_test_simple_text"),
            json!({"name": "e_test_simple_text", "arguments": secret_argument}),
        ),
        (
            "tools/call",
            Some("e_test_error_handling"),
            json!({"name": "e_test_error_handling"}),
        ),
        (
            "prompts/get",
            Some("e_test_simple_prompt"),
            json!({"name": "e_test_simple_prompt"}),
        ),
        (
            "resources/read",
            Some("test://static-text"),
            json!({"uri": "test://static-text"}),
        ),
    ];
    for (method, name, mut params) in requests {
        params["_meta"] = modern_meta();
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let mut headers = modern_headers(method, name);
        headers.push(("authorization", "Bearer agent-secret-token"));
        headers.push(("traceparent", traceparent));
        let (status, _, text) = post(&url, &headers, &body).await;
        assert_eq!(status, 200, "{text}");
    }
    // A session-era client through rmcp: its session id is the caller.
    let client = legacy_client(&url, Recorder::default()).await;
    call_text(&client, "e_test_simple_text", json!({})).await;
    client.cancel().await.unwrap();

    let seen = std::sync::Mutex::new(0);
    let text = eventually("five audit lines", || async {
        let text = std::fs::read_to_string(&audit_path).unwrap_or_default();
        // What was written so far, for a test that times out.
        let mut seen = seen.lock().unwrap();
        if text.lines().count() != *seen {
            *seen = text.lines().count();
            eprintln!("audit so far:\n{text}");
        }
        (text.lines().count() >= 5).then_some(text)
    })
    .await;
    drop(sidecar);
    assert!(
        !text.contains("agent-secret-token"),
        "a token reached the audit trail: {text}"
    );
    assert!(
        !text.contains("super-secret-argument"),
        "arguments reached the audit trail: {text}"
    );
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "{text}");
    for line in &lines {
        assert_eq!(line["type"], "mcplex.audit");
        assert_eq!(line["profile"], "sre");
        assert_eq!(line["target"], "e");
        assert_eq!(line["decision"], "allow");
        assert!(line["latency_ms"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
    }
    let first = &lines[0];
    assert_eq!(first["method"], "tools/call");
    assert_eq!(first["name"], "e_test_simple_text");
    assert_eq!(first["upstream_name"], "test_simple_text");
    assert_eq!(first["outcome"], "ok");
    assert_eq!(first["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let expected = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret_argument.to_string().as_bytes());
    let expected: String = expected.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(first["arguments_sha256"], expected);
    assert_eq!(lines[1]["outcome"], "tool_error");
    assert_eq!(
        (lines[2]["method"].as_str(), lines[2]["name"].as_str()),
        (Some("prompts/get"), Some("e_test_simple_prompt"))
    );
    assert_eq!(
        (lines[3]["method"].as_str(), lines[3]["name"].as_str()),
        (Some("resources/read"), Some("test://static-text"))
    );
    assert!(lines[3].get("upstream_name").is_none(), "{}", lines[3]);
    assert!(lines[4]["caller"]["session"].is_string(), "{}", lines[4]);
    assert!(lines[4].get("trace_id").is_none(), "{}", lines[4]);
}
