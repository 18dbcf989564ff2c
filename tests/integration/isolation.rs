//! Every target on its own: whatever one target does (hang at any point, die, send huge answers, get
//! removed mid-call), the others and the merged lists carry on, and every limit answers clearly.

use crate::support::common::*;
use crate::support::rogue::{Call, Rogue, RogueEra};
use mcplex_examples::everything::Versions;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Opens a session as a raw session-era client that declares `capabilities`, and returns its id.
async fn open_raw_session(harness: &Harness, capabilities: Value) -> String {
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {"name": "raw", "version": "1"}}});
    let (_, headers, _) = post(&harness.url(), &[], &initialize.to_string()).await;
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        post(&harness.url(), &session_headers(&session), &initialized.to_string())
            .await
            .0,
        202
    );
    session
}

/// The headers of a request in session `session`.
fn session_headers(session: &str) -> [(&'static str, &str); 2] {
    [("mcp-session-id", session), ("mcp-protocol-version", "2025-11-25")]
}

/// Makes a first call on a session, which opens the session's channel to the target and with it the target's
/// GET stream, and waits until the target has that stream.
async fn open_targets_get_stream(harness: &Harness, rogue: &Rogue, headers: &[(&str, &str)]) {
    let first =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "r_work", "arguments": {}}});
    assert_eq!(post(&harness.url(), headers, &first.to_string()).await.0, 200);
    until("the target's GET stream is open", || async { rogue.count("GET") > 0 }).await;
}

/// The JSON-RPC messages of an SSE body.
fn sse_messages(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| serde_json::from_str(line.strip_prefix("data: ")?).ok())
        .collect()
}

fn call_body(name: &str, arguments: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments, "_meta": modern_meta()}}).to_string()
}

/// A modern `tools/call` through the sidecar; returns the JSON-RPC message answered.
async fn modern_call(harness: &Harness, name: &str, arguments: Value) -> Value {
    let (_, _, text) = post(
        &harness.url(),
        &modern_headers("tools/call", Some(name)),
        &call_body(name, arguments),
    )
    .await;
    message_of(&text)
}

#[tokio::test]
async fn a_hung_target_delays_neither_readiness_nor_the_other_targets() {
    let healthy = everything(Versions::All).await;
    let hung = silent_url().await;
    // The hung target's timeout is far past the test's patience: only the start-up deadline bounds readiness.
    let harness = within(
        "ready beside a hung target",
        Harness::start(&config(&[("a", &healthy.url(), ""), ("b", &hung, "timeout: 600s")])),
    )
    .await;
    let ready = reqwest::get(harness.admin("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let client = harness.legacy_client().await;
    let names = tool_names(&client).await;
    assert!(names.contains(&"a_echo".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("b_")), "{names:?}");
    let echo = within(
        "a call beside a hung target",
        call_text(&client, "a_echo", json!({"x": 1})),
    )
    .await;
    assert!(echo.contains("\"x\":1"), "{echo}");
    assert_down(&harness.status().await, 1, "start-up deadline");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_call_that_hangs_anywhere_times_out_alone() {
    let healthy = everything(Versions::All).await;
    for behaviour in [Call::Hang, Call::HangAfterHeaders, Call::HangMidStream] {
        let rogue = Rogue::start(RogueEra::Modern, behaviour).await;
        // `r` times out soon; `stuck` is the same target with a deadline far past the test's patience.
        let harness = Harness::start(&config(&[
            ("a", &healthy.url(), ""),
            ("r", &rogue.url(), "timeout: 500ms"),
            ("stuck", &rogue.url(), "timeout: 600s"),
        ]))
        .await;
        let hung = modern_call(&harness, "r_work", json!({})).await;
        assert_eq!(hung["error"]["code"], -32031, "{behaviour:?}: {hung}");
        assert!(
            hung["error"]["message"].as_str().unwrap().contains("target `r`"),
            "{hung}"
        );
        // Calls to the healthy target all finish while a call that hangs for good is still waiting.
        let stuck = modern_call(&harness, "stuck_work", json!({}));
        tokio::pin!(stuck);
        let others = within("healthy calls beside a hung one", async {
            for i in 0..5 {
                let answer = modern_call(&harness, "a_echo", json!({"i": i})).await;
                assert!(answer["result"]["content"][0]["text"].is_string(), "{answer}");
            }
        });
        tokio::select! {
            biased;
            () = others => {}
            stuck = &mut stuck => panic!("{behaviour:?}: the stuck call ended first: {stuck}"),
        }
        // The merged list still has both targets' tools.
        let (_, _, text) = post(
            &harness.url(),
            &modern_headers("tools/list", None),
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": modern_meta()}}).to_string(),
        )
        .await;
        let tools = message_of(&text)["result"]["tools"].to_string();
        assert!(tools.contains("\"a_echo\"") && tools.contains("\"r_work\""), "{tools}");
    }
}

#[tokio::test]
async fn a_removed_target_finishes_its_call_before_its_sessions_end() {
    let rogue = Rogue::start(RogueEra::Legacy, Call::Slow(800)).await;
    let harness = Harness::start(&config(&[("r", &rogue.url(), "")])).await;
    let client = harness.legacy_client().await;
    let call = tokio::spawn(async move {
        let answer = call_text(&client, "r_work", json!({})).await;
        (answer, client)
    });
    until("the call reached the target", || async {
        rogue.count("POST tools/call") > 0
    })
    .await;
    std::fs::write(&harness.config_path, "targets: []\n").unwrap();
    let (answer, client) = call.await.unwrap();
    assert_eq!(answer, "done");
    until("the session was deleted", || async { rogue.count("DELETE") > 0 }).await;
    let answered = rogue.first("answered tools/call").unwrap();
    assert!(rogue.first("DELETE").unwrap() >= answered, "{:?}", rogue.log());
    // Nothing keeps talking to a target that is gone: no GET stream reconnects, no refreshes.
    // Longer than a reconnect's first backoff and a refresh after a miss, several times over.
    let requests = rogue.log().len();
    holds_for(
        "no request reaches the removed target",
        Duration::from_millis(1500),
        || async {
            let log = rogue.log();
            if log.len() != requests {
                eprintln!("after the removal: {:?}", &log[requests..]);
            }
            log.len() == requests
        },
    )
    .await;
    assert!(tool_names(&client).await.is_empty());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn unknown_names_neither_load_the_targets_nor_wait() {
    let rogue = Rogue::start(RogueEra::Modern, Call::Answer).await;
    let harness = Harness::start(&config(&[("r", &rogue.url(), "")])).await;
    let lists_before = rogue.count("POST tools/list");
    // Only a miss that starts a refresh waits for it (at most a second): at most one refresh means at most one wait.
    for _ in 0..20 {
        let answer = modern_call(&harness, "r_nope", json!({})).await;
        assert_eq!(answer["error"]["code"], -32602, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown tool `r_nope`")
        );
    }
    let refreshes = rogue.count("POST tools/list") - lists_before;
    assert!(refreshes <= 1, "{refreshes} list refreshes for 20 misses");
}

#[tokio::test]
async fn a_dead_target_keeps_answering_minus_32030_after_its_items_leave() {
    let upstream = everything(Versions::All).await;
    let math = everything(Versions::All).await;
    let harness = Harness::start(&config(&[
        ("e", &upstream.url(), "timeout: 1s"),
        ("m", &math.url(), ""),
    ]))
    .await;
    assert!(modern_call(&harness, "e_echo", json!({})).await["result"].is_object());
    upstream.shutdown().await;
    let first = modern_call(&harness, "e_echo", json!({})).await;
    assert_eq!(first["error"]["code"], -32030, "{first}");
    let client = harness.modern_client().await;
    until("e's tools leave the list", || async {
        !tool_names(&client).await.iter().any(|n| n.starts_with("e_"))
    })
    .await;
    assert!(tool_names(&client).await.contains(&"m_echo".to_string()));
    for _ in 0..3 {
        let again = modern_call(&harness, "e_echo", json!({})).await;
        assert_eq!(again["error"]["code"], -32030, "{again}");
        assert!(
            again["error"]["message"].as_str().unwrap().contains("target `e`"),
            "{again}"
        );
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn large_results_are_relayed_and_oversized_ones_refused_by_name() {
    let rogue = Rogue::start(RogueEra::Modern, Call::Big(10 * 1024 * 1024)).await;
    let harness = Harness::start(&config(&[("r", &rogue.url(), "")])).await;
    let answer = modern_call(&harness, "r_work", json!({})).await;
    assert_eq!(
        answer["result"]["content"][0]["text"].as_str().map(str::len),
        Some(10 * 1024 * 1024)
    );
    rogue.set_call(Call::Big(17 * 1024 * 1024));
    let refused = modern_call(&harness, "r_work", json!({})).await;
    assert_eq!(refused["error"]["code"], -32030, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("target `r`") && message.contains("larger than"),
        "{message}"
    );
}

#[tokio::test]
async fn limits_answer_clearly() {
    let upstream = everything(Versions::All).await;
    let harness = Harness::start_with(&config(&[("e", &upstream.url(), "")]), |o| {
        o.limits.max_sessions = 2;
        o.connections.max_connections = 3;
        o.connections.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}).to_string();
    for _ in 0..2 {
        assert_eq!(post(&harness.url(), &[], &initialize).await.0, 200);
    }
    let (status, _, text) = post(&harness.url(), &[], &initialize).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("2 client sessions open"), "{text}");

    // A client that connects and sends nothing is disconnected after the header deadline.
    let mut silent = tokio::net::TcpStream::connect(harness.sidecar.mcp_addr).await.unwrap();
    let mut buffer = [0u8; 64];
    let read = within("the silent client is disconnected", silent.read(&mut buffer)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // Over the connection cap, a client is told why before the connection closes.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(harness.sidecar.mcp_addr).await.unwrap();
        stream
            .write_all(b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    // Until the held connections are all accepted, an extra one may be served (and closed at the header
    // deadline): the answer that counts is the first 503.
    let answer = eventually("a connection over the cap is answered 503", || async {
        let mut extra = tokio::net::TcpStream::connect(harness.sidecar.mcp_addr).await.ok()?;
        let mut answer = String::new();
        extra.read_to_string(&mut answer).await.ok()?;
        answer.starts_with("HTTP/1.1 503").then_some(answer)
    })
    .await;
    assert!(answer.contains("too many connections"), "{answer}");
}

#[tokio::test]
async fn the_message_budget_refuses_what_would_not_fit_and_recovers() {
    let rogue = Rogue::start(RogueEra::Modern, Call::Big(5 * 1024 * 1024)).await;
    let harness = Harness::start_with(&config(&[("r", &rogue.url(), "")]), |o| {
        o.message_budget = 6 * 1024 * 1024;
    })
    .await;
    // A 5 MiB answer is counted twice (in and out): over a 6 MiB budget.
    let refused = modern_call(&harness, "r_work", json!({})).await;
    assert_eq!(refused["error"]["code"], -32603, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("target `r`") && message.contains("6 MiB"), "{message}");
    // A 3.5 MiB request body likewise, before anything reaches a target.
    let blob = "x".repeat(3 * 1024 * 1024 + 512 * 1024);
    let (status, _, text) = post(
        &harness.url(),
        &modern_headers("tools/call", Some("r_work")),
        &call_body("r_work", json!({ "blob": blob })),
    )
    .await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("6 MiB"), "{text}");
    // The budget was returned: a 2 MiB answer (4 MiB counted) fits.
    rogue.set_call(Call::Big(2 * 1024 * 1024));
    let answer = modern_call(&harness, "r_work", json!({})).await;
    assert_eq!(
        answer["result"]["content"][0]["text"].as_str().map(str::len),
        Some(2 * 1024 * 1024),
        "{}",
        answer["error"]
    );
}

/// A 2026-07-28 target whose `tools/list` never ends: every page holds 1,000 tools of about 200 bytes and
/// a cursor to the next. Returns its URL and the count of list pages it served.
async fn endless_lister() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pages = std::sync::Arc::new(AtomicUsize::new(0));
    let served = pages.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(mcplex::serve::serve(
        listener,
        None,
        move |request: http::Request<hyper::body::Incoming>| {
            let served = served.clone();
            async move {
                let body = http_body_util::BodyExt::collect(request.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                let message: Value = serde_json::from_slice(&body).unwrap_or_default();
                let result = match message["method"].as_str() {
                    Some("server/discover") => {
                        json!({"resultType": "complete", "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}})
                    }
                    Some("tools/list") => {
                        let page = served.fetch_add(1, Ordering::SeqCst);
                        let tools: Vec<Value> = (0..1000)
                            .map(|i| json!({"name": format!("tool_{page}_{i}"), "description": "x".repeat(120), "inputSchema": {"type": "object"}}))
                            .collect();
                        json!({"resultType": "complete", "tools": tools, "nextCursor": format!("page-{}", page + 1)})
                    }
                    _ => json!({"resultType": "complete", "content": [{"type": "text", "text": "listed"}]}),
                };
                let answer = json!({"jsonrpc": "2.0", "id": message["id"], "result": result});
                http::Response::builder()
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(answer.to_string())))
                    .unwrap()
            }
        },
        mcplex::serve::ServeLimits::default(),
        tokio_util::sync::CancellationToken::new(),
        Duration::from_secs(1),
    ));
    (format!("http://{addr}/mcp"), pages)
}

#[tokio::test]
async fn a_target_that_lists_without_end_is_cut_off_at_the_list_limit() {
    let healthy = everything(Versions::All).await;
    let (endless, pages) = endless_lister().await;
    let harness = Harness::start(&config(&[("endless", &endless, ""), ("ok", &healthy.url(), "")])).await;
    let status = harness.status().await;
    let endless_status = target_status(&status, "endless");
    assert_eq!(endless_status["up"], true, "{status}");
    assert_eq!(endless_status["listsTruncated"], true, "{status}");
    // About 200 bytes a tool against 4 MiB: some twenty thousand tools, read in about twenty pages.
    let tools = endless_status["tools"].as_u64().unwrap();
    assert!((15_000..25_000).contains(&tools), "{status}");
    let served = pages.load(std::sync::atomic::Ordering::SeqCst);
    assert!(served <= 25, "{served} pages were read");
    assert_eq!(target_status(&status, "ok")["listsTruncated"], false, "{status}");
    // The kept tools work, and so do the other target's.
    let answer = modern_call(&harness, "endless_tool_0_0", json!({})).await;
    assert_eq!(answer["result"]["content"][0]["text"], "listed", "{answer}");
    let answer = modern_call(&harness, "ok_echo", json!({"message": "hi"})).await;
    assert!(
        answer["result"]["content"][0]["text"].as_str().unwrap().contains("hi"),
        "{answer}"
    );
}

/// A target that reports progress under a token the call did not give (or under none) is not passed
/// on: the client sees its own call's progress and the answer, whichever era the target speaks.
#[tokio::test]
async fn progress_under_a_token_the_call_did_not_give_is_dropped() {
    for era in [RogueEra::Modern, RogueEra::Legacy] {
        let rogue = Rogue::start(era, Call::StrayProgress).await;
        let harness = Harness::start(&config(&[("r", &rogue.url(), "timeout: 5s")])).await;
        let mut meta = modern_meta();
        meta["progressToken"] = json!("mine");
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "r_work", "arguments": {}, "_meta": meta}}).to_string();
        let (status, _, text) = post(&harness.url(), &modern_headers("tools/call", Some("r_work")), &body).await;
        assert_eq!(status, 200, "{era:?}: {text}");
        let messages = sse_messages(&text);
        let progress: Vec<&Value> = messages
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .map(|m| &m["params"])
            .collect();
        assert_eq!(
            progress,
            [&json!({"progressToken": "mine", "progress": 3})],
            "{era:?}: {text}"
        );
        let answer = messages.last().unwrap();
        assert_eq!(answer["result"]["content"][0]["text"], "done", "{era:?}: {text}");
    }
}

/// On a session, a target may report a call's progress on another call's stream (the transport only says
/// it should not): a token of a call the client has in flight at that target is passed on, any other is not.
#[tokio::test]
async fn progress_for_another_call_of_the_same_session_is_passed_on() {
    let rogue = Rogue::start(RogueEra::Legacy, Call::CrossProgress).await;
    let harness = Harness::start(&config(&[("r", &rogue.url(), "timeout: 5s")])).await;
    let session = open_raw_session(&harness, json!({})).await;
    let headers = session_headers(&session);
    let call = |id: u64, token: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "r_work", "arguments": {}, "_meta": {"progressToken": token}}}).to_string()
    };
    let (url, first, second) = (harness.url(), call(2, "first"), call(3, "second"));
    let (first, second) = tokio::join!(post(&url, &headers, &first), post(&url, &headers, &second));
    for ((status, _, text), other) in [(first, "second"), (second, "first")] {
        assert_eq!(status, 200, "{text}");
        let messages = sse_messages(&text);
        let tokens: Vec<&Value> = messages
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .map(|m| &m["params"]["progressToken"])
            .collect();
        assert_eq!(tokens, [&json!(other)], "{text}");
        assert_eq!(
            messages.last().unwrap()["result"]["content"][0]["text"],
            "done",
            "{text}"
        );
    }
}

/// Checks a call's SSE body: the target's elicitation under an id of mcplex's (not `target_id`), its
/// cancellation under that same id and nothing else cancelled, then the call's answer "done". Returns the
/// elicitation's id.
fn asked_cancelled_and_answered(text: &str, target_id: &str) -> Value {
    let messages = sse_messages(text);
    let asked = messages
        .iter()
        .find(|m| m["method"] == "elicitation/create")
        .unwrap_or_else(|| panic!("no elicitation on the call stream: {text}"));
    assert_ne!(asked["id"], target_id, "{text}");
    let cancelled: Vec<&Value> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/cancelled")
        .map(|m| &m["params"]["requestId"])
        .collect();
    assert_eq!(cancelled, [&asked["id"]], "{text}");
    assert_eq!(
        messages.last().unwrap()["result"]["content"][0]["text"],
        "done",
        "{text}"
    );
    asked["id"].clone()
}

/// A target that cancels a request it sent the client names it by its own id: the client gets the
/// cancellation under the id it knows the request by, a cancellation of nothing it holds is not passed on,
/// and an answer that comes after the cancellation goes nowhere.
#[tokio::test]
async fn a_targets_cancellation_of_its_own_request_reaches_the_client_by_the_clients_id() {
    let rogue = Rogue::start(RogueEra::Legacy, Call::CancelOwnRequest).await;
    let harness = Harness::start(&config(&[("r", &rogue.url(), "timeout: 5s")])).await;
    let session = open_raw_session(&harness, json!({"elicitation": {}})).await;
    let headers = session_headers(&session);
    let call =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "r_work", "arguments": {}}});
    let (status, _, text) = post(&harness.url(), &headers, &call.to_string()).await;
    assert_eq!(status, 200, "{text}");
    let asked = asked_cancelled_and_answered(&text, "rogue-ask-1");
    // The client answers anyway: the target cancelled the request, so nothing reaches it.
    let late = json!({"jsonrpc": "2.0", "id": asked, "result": {"action": "decline"}});
    let (status, _, _) = post(&harness.url(), &headers, &late.to_string()).await;
    assert_eq!(status, 202);
    holds_for(
        "the late answer reaches no target",
        Duration::from_millis(200),
        || async { rogue.count("POST ") == 0 },
    )
    .await;
}

/// A client that reads no GET stream gets a request the target sent on its own GET stream on the stream of
/// its call in flight; the target's cancellation of that request follows it there, under the client's id.
#[tokio::test]
async fn a_cancellation_follows_its_request_to_the_call_stream_of_a_client_without_a_get_stream() {
    let rogue = Rogue::start(RogueEra::Legacy, Call::Answer).await;
    let harness = Harness::start(&config(&[("r", &rogue.url(), "timeout: 5s")])).await;
    let session = open_raw_session(&harness, json!({"elicitation": {}})).await;
    let headers = session_headers(&session);
    open_targets_get_stream(&harness, &rogue, &headers).await;
    rogue.set_call(Call::CancelOnGetStream);
    let call =
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "r_work", "arguments": {}}});
    let (status, _, text) = post(&harness.url(), &headers, &call.to_string()).await;
    assert_eq!(status, 200, "{text}");
    asked_cancelled_and_answered(&text, "rogue-ask-2");
}

/// The same for a request and its cancellation on the target's GET stream, read by a client on its own.
#[tokio::test]
async fn a_cancellation_on_the_targets_get_stream_reaches_the_client_by_the_clients_id() {
    use futures_util::StreamExt;
    let rogue = Rogue::start(RogueEra::Legacy, Call::Answer).await;
    let harness = Harness::start(&config(&[("r", &rogue.url(), "timeout: 5s")])).await;
    let session = open_raw_session(&harness, json!({"elicitation": {}})).await;
    let headers = session_headers(&session);
    let get = reqwest::Client::new()
        .get(harness.url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    open_targets_get_stream(&harness, &rogue, &headers).await;
    rogue.set_call(Call::CancelOnGetStream);
    let call =
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "r_work", "arguments": {}}});
    let url = harness.url();
    let call = tokio::spawn(async move { post(&url, &session_headers(&session), &call.to_string()).await });
    let mut events = get.bytes_stream();
    let (mut buffer, mut messages) = (String::new(), Vec::<Value>::new());
    let read = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(chunk) = events.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                messages.extend(sse_messages(&event));
            }
            if messages.iter().any(|m| m["method"] == "notifications/cancelled") {
                return;
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no cancellation on the GET stream: {messages:?} {:?}",
        rogue.log()
    );
    let asked = messages
        .iter()
        .find(|m| m["method"] == "elicitation/create")
        .expect("the elicitation");
    assert_ne!(asked["id"], "rogue-ask-2");
    let cancelled = messages
        .iter()
        .find(|m| m["method"] == "notifications/cancelled")
        .unwrap();
    assert_eq!(cancelled["params"]["requestId"], asked["id"], "{messages:?}");
    let (status, _, text) = call.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(message_of(&text)["result"]["content"][0]["text"], "done", "{text}");
}
