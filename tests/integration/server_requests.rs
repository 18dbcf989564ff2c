//! Requests a target sends outside any call, on its own GET stream (TypeScript SDK servers do this for
//! sampling and elicitation), reach the client on whatever stream it reads, and its answer goes back.

use crate::support::common::*;
use crate::support::rogue::{Call, Rogue, RogueEra};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

/// A session-era client that opens no GET stream: it reads only its call's SSE stream.
async fn call_without_get_stream(url: &str) -> String {
    let session = open_session_without_get_stream(url).await;
    call_answering_sampling(url, &session, "r_work", "from the call stream").await
}

/// Opens a session as a client that declares sampling and will open no GET stream; its id.
async fn open_session_without_get_stream(url: &str) -> String {
    let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}}, "clientInfo": {"name": "raw", "version": "1"}}});
    let (status, headers, _) = post(url, &[], &initialize.to_string()).await;
    assert_eq!(status, 200);
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        post(url, &[("mcp-session-id", &session)], &initialized.to_string())
            .await
            .0,
        202
    );
    session
}

/// Calls `tool` on `session` and reads the call's answer, answering any sampling request on it with
/// `sampled`; the call's text.
async fn call_answering_sampling(url: &str, session: &str, tool: &str, sampled: &str) -> String {
    let session_header = [("mcp-session-id", session)];
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}});
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let message: Value = serde_json::from_str(data).unwrap();
            if message["method"] == "sampling/createMessage" {
                let answer = json!({"jsonrpc": "2.0", "id": message["id"], "result": {"role": "assistant", "content": {"type": "text", "text": sampled}, "model": "m"}});
                assert_eq!(post(url, &session_header, &answer.to_string()).await.0, 202);
            } else if message["id"] == 1 {
                return message["result"]["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
            }
        }
    }
    panic!("the call stream ended without an answer: {buffer}");
}

/// A session-era target asks on its GET stream while the client's only call in flight is to another target,
/// one of the 2026-07-28 era that answers in JSON: that call's answer becomes the stream that carries it.
#[tokio::test]
async fn a_request_on_the_targets_get_stream_rides_on_a_call_to_another_target() {
    let asking = Rogue::start(RogueEra::Legacy, Call::AskOnGetStreamAfter(300)).await;
    let slow = Rogue::start(RogueEra::Modern, Call::Slow(1500)).await;
    let harness = Harness::start(&config(&[
        ("a", &asking.url(), "timeout: 10s"),
        ("b", &slow.url(), "timeout: 10s"),
    ]))
    .await;
    let url = harness.url();
    let session = open_session_without_get_stream(&url).await;
    let first =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "a_work", "arguments": {}}});
    let (status, _, text) = post(&url, &[("mcp-session-id", &session)], &first.to_string()).await;
    assert_eq!(status, 200, "{text}");
    let text = tokio::time::timeout(
        Duration::from_secs(3),
        call_answering_sampling(&url, &session, "b_work", "from b's call"),
    )
    .await
    .expect("the call to b never ended");
    assert_eq!(text, "done");
    assert_eq!(asking.count("later answer: from b's call"), 1, "{:?}", asking.log());
}

#[tokio::test]
async fn a_request_on_the_targets_get_stream_reaches_a_client_without_one() {
    let rogue = Rogue::start(RogueEra::Legacy, Call::SampleOnGetStream).await;
    let harness = Harness::start(&config(&[("r", &rogue.url(), "timeout: 5s")])).await;
    let answer = tokio::time::timeout(Duration::from_secs(4), call_without_get_stream(&harness.url()))
        .await
        .expect("the sampling request never reached the client");
    assert_eq!(answer, "sampled: from the call stream");
    assert_eq!(
        rogue.count("sampling sent on the GET stream: true"),
        1,
        "{:?}",
        rogue.log()
    );
}

/// A target in JSON-response mode sends nothing of the call until the client has answered its request, so
/// mcplex must turn the call's answer into a stream for that request rather than wait for the call.
#[tokio::test]
async fn a_request_on_the_targets_get_stream_reaches_a_client_without_one_while_the_target_answers_in_json() {
    let rogue = Rogue::start(RogueEra::Legacy, Call::SampleOnGetStreamThenJson).await;
    let harness = Harness::start(&config(&[("r", &rogue.url(), "timeout: 10s")])).await;
    let answer = tokio::time::timeout(Duration::from_secs(3), call_without_get_stream(&harness.url()))
        .await
        .unwrap_or_else(|_| panic!("the sampling request never reached the client: {:?}", rogue.log()));
    assert_eq!(answer, "sampled: from the call stream");
}

/// A raw 2026-07-28 `tools/call` of `r_work` that declares sampling, with extra params; its JSON-RPC answer.
async fn modern_sampling_call(harness: &Harness, extra: Value) -> Value {
    let mut meta = modern_meta();
    meta["io.modelcontextprotocol/clientCapabilities"] = json!({"sampling": {}});
    let mut params = json!({"name": "r_work", "arguments": {}, "_meta": meta});
    for (key, value) in extra.as_object().unwrap() {
        params[key] = value.clone();
    }
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params}).to_string();
    let (status, _, text) = post(&harness.url(), &modern_headers("tools/call", Some("r_work")), &body).await;
    assert_eq!(status, 200, "{text}");
    message_of(&text)
}

/// Runs a 2026-07-28 call of `r_work` whose target asks for sampling mid-call: the first answer must be
/// input_required with that request, and the retry with the answer must complete the call; its text.
async fn modern_call_answering_sampling(harness: &Harness, rogue: &Rogue) -> String {
    let first = tokio::time::timeout(Duration::from_secs(3), modern_sampling_call(harness, json!({})))
        .await
        .unwrap_or_else(|_| panic!("the call was not parked: {:?}", rogue.log()));
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    let (name, request) = result["inputRequests"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(request["method"], "sampling/createMessage", "{first}");
    let answer =
        json!({ name: {"role": "assistant", "content": {"type": "text", "text": "from the retry"}, "model": "m"} });
    let retry = json!({"requestState": result["requestState"], "inputResponses": answer});
    let last = tokio::time::timeout(Duration::from_secs(3), modern_sampling_call(harness, retry))
        .await
        .unwrap();
    last["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The same target asked by a 2026-07-28 client: the call has a session of its own whose GET stream carries
/// the request while the target holds the call's JSON answer, so the call is parked and the client asked with
/// input_required; its retry brings the answer to the target, whose JSON answer then completes the call.
#[tokio::test]
async fn a_modern_client_is_asked_for_a_request_a_json_mode_target_sends_on_its_get_stream() {
    let rogue = Rogue::start(RogueEra::Legacy, Call::SampleOnGetStreamThenJson).await;
    let harness = Harness::start(&config(&[("r", &rogue.url(), "timeout: 10s")])).await;
    assert_eq!(
        modern_call_answering_sampling(&harness, &rogue).await,
        "sampled: from the retry"
    );
}

/// A target that closes the GET stream of a call's own session mid-call gets it back (reopened after the
/// wait), and a request it sends there then still reaches the 2026-07-28 client.
#[tokio::test]
async fn a_calls_get_stream_that_its_target_closes_is_reopened() {
    let rogue = Rogue::start(RogueEra::Legacy, Call::SampleOnReopenedGetStream).await;
    let harness = Harness::start(&config(&[("r", &rogue.url(), "timeout: 10s")])).await;
    assert_eq!(
        modern_call_answering_sampling(&harness, &rogue).await,
        "sampled: from the retry"
    );
    assert_eq!(rogue.count("closed the GET stream: true"), 1, "{:?}", rogue.log());
}

#[tokio::test]
async fn a_request_on_the_targets_get_stream_reaches_a_client_reading_its_own() {
    let rogue = Rogue::start(RogueEra::Legacy, Call::SampleOnGetStream).await;
    let harness = Harness::start(&config(&[("r", &rogue.url(), "timeout: 5s")])).await;
    // rmcp's client keeps a GET stream open and answers sampling through its handler.
    let client = harness.legacy_client().await;
    let answer = tokio::time::timeout(Duration::from_secs(4), call_text(&client, "r_work", json!({})))
        .await
        .expect("the sampling request never reached the client");
    assert_eq!(answer, "sampled: sampled answer");
    assert!(client.service().wait_for("sampling").await["messages"].is_array());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_dual_era_server_that_routes_by_header_keeps_sessions_for_session_clients() {
    // Its 2026-07-28 discover lists only 2026-07-28; its session side is reached only without the
    // version header and without _meta, as with the official dual-era reference server.
    let rogue = Rogue::start(RogueEra::Dual, Call::SampleOnGetStream).await;
    let harness = Harness::start(&config(&[("r", &rogue.url(), "timeout: 5s")])).await;
    let status = harness.status().await;
    assert_eq!(
        status["targets"][0]["eras"],
        json!({"modern": true, "session": true}),
        "{status}"
    );
    // A session-era client gets a session of its own there, so the request on the GET stream reaches it.
    let client = harness.legacy_client().await;
    let answer = tokio::time::timeout(Duration::from_secs(4), call_text(&client, "r_work", json!({})))
        .await
        .expect("the sampling request never reached the client");
    assert_eq!(answer, "sampled: sampled answer");
    client.cancel().await.unwrap();
}
