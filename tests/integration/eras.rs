//! Both client eras against targets of both eras: lists, calls, prompts, resources, completion.

use crate::support::common::*;
use mcplex_examples::Example;
use mcplex_examples::everything::Versions;
use rmcp::model::*;
use serde_json::{Value, json};
use std::time::Duration;

async fn mixed_targets() -> (Upstream, Upstream, Harness) {
    let math = example(Example::Math).await;
    let legacy = everything(Versions::LegacyOnly).await;
    let harness = Harness::start(&config(&[
        ("math", &math.url(), ""),
        ("legacy", &legacy.url(), "prefix: old"),
    ]))
    .await;
    (math, legacy, harness)
}

async fn exercise(client: &rmcp::service::RunningService<rmcp::RoleClient, Recorder>) {
    let names = tool_names(client).await;
    assert!(names.contains(&"math_add".to_string()), "{names:?}");
    assert!(names.contains(&"old_test_simple_text".to_string()), "{names:?}");
    assert_eq!(call_text(client, "math_add", json!({"a": 2, "b": 3})).await, "5");
    let division = call(client, "math_divide", json!({"a": 1, "b": 0})).await.unwrap();
    assert_eq!(division.is_error, Some(true));
    assert!(first_text(&division).contains("division by zero"));
    assert_eq!(
        call_text(client, "old_test_simple_text", json!({})).await,
        "This is a simple text response for testing."
    );

    let prompt = client
        .get_prompt(
            GetPromptRequestParams::new("old_test_prompt_with_arguments")
                .with_arguments(serde_json::from_value(json!({"arg1": "x1", "arg2": "y2"})).unwrap()),
        )
        .await
        .expect("prompts/get");
    let text = serde_json::to_string(&prompt).unwrap();
    assert!(text.contains("arg1='x1'") && text.contains("arg2='y2'"), "{text}");

    let read = client
        .read_resource(ReadResourceRequestParams::new("test://static-text"))
        .await
        .expect("resources/read");
    assert!(serde_json::to_string(&read).unwrap().contains("static text resource"));
    let templated = client
        .read_resource(ReadResourceRequestParams::new("test://template/42/data"))
        .await
        .expect("template read");
    assert!(serde_json::to_string(&templated).unwrap().contains("Data for ID: 42"));

    let completion = client
        .complete(serde_json::from_value(json!({"ref": {"type": "ref/prompt", "name": "old_test_prompt_with_arguments"}, "argument": {"name": "arg1", "value": "par"}})).unwrap())
        .await
        .expect("completion/complete");
    assert_eq!(
        serde_json::to_value(&completion).unwrap()["completion"]["values"],
        json!(["paris", "park", "party"])
    );
}

#[tokio::test]
async fn legacy_client_reaches_modern_and_legacy_targets() {
    let (_math, _legacy, harness) = mixed_targets().await;
    let client = harness.legacy_client().await;
    exercise(&client).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn modern_client_reaches_modern_and_legacy_targets() {
    let (_math, _legacy, harness) = mixed_targets().await;
    let client = harness.modern_client().await;
    exercise(&client).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn unknown_fields_reach_the_target_and_come_back_unchanged() {
    let upstream = everything(Versions::All).await;
    let harness = Harness::start(&config(&[("e", &upstream.url(), "prefix: \"\"")])).await;
    let arguments = json!({"nested": {"x-unknown": [1, {"deep": true}]}, "unicode": "größe ✓"});
    for legacy in [true, false] {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": arguments, "_meta": {"com.example/trace": "abc"}}});
        let (status, _, text) = if legacy {
            let client = harness.legacy_client().await;
            let result = call(&client, "echo", arguments.clone()).await.unwrap();
            client.cancel().await.unwrap();
            (
                200,
                Default::default(),
                serde_json::to_string(&json!({"result": result})).unwrap(),
            )
        } else {
            let mut body = body.clone();
            body["params"]["_meta"]
                .as_object_mut()
                .unwrap()
                .extend(modern_meta().as_object().unwrap().clone());
            post(
                &harness.url(),
                &modern_headers("tools/call", Some("echo")),
                &body.to_string(),
            )
            .await
        };
        assert_eq!(status, 200, "{text}");
        let message = message_of(&text);
        let echoed: serde_json::Value =
            serde_json::from_str(message["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(echoed["arguments"], arguments, "legacy={legacy}");
        if !legacy {
            assert_eq!(echoed["meta"]["com.example/trace"], "abc");
            assert_eq!(message["id"], 7);
            assert_eq!(message["result"]["resultType"], "complete");
        }
    }
    // JSON Schema 2020-12 keywords in a listed tool survive the merge untouched.
    let client = harness.legacy_client().await;
    let tools = client.list_all_tools().await.unwrap();
    let schema = serde_json::to_value(
        &tools
            .iter()
            .find(|t| t.name == "json_schema_2020_12_tool")
            .unwrap()
            .input_schema,
    )
    .unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(schema["$defs"]["address"]["properties"]["city"]["type"], "string");
    assert_eq!(schema["additionalProperties"], false);
}

#[tokio::test]
async fn discover_and_initialize_describe_mcplex() {
    let upstream = everything(Versions::All).await;
    let harness = Harness::start(&config(&[("e", &upstream.url(), "")])).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": modern_meta()}});
    let (status, _, text) = post(
        &harness.url(),
        &modern_headers("server/discover", None),
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let result = &message_of(&text)["result"];
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2025-03-26"))
    );
    assert_eq!(result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "mcplex");
    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
        let (status, headers, text) = post(&harness.url(), &[], &body.to_string()).await;
        assert_eq!(status, 200);
        assert!(headers.get("mcp-session-id").is_some());
        assert_eq!(message_of(&text)["result"]["protocolVersion"], version);
    }
}

#[tokio::test]
async fn a_modern_input_required_round_trip_reaches_the_same_target() {
    let other = everything(Versions::All).await;
    let target = everything(Versions::All).await;
    let harness = Harness::start(&config(&[("other", &other.url(), ""), ("asks", &target.url(), "")])).await;
    let client = harness.modern_client().await;
    // rmcp's client answers the input request through the handler and retries with inputResponses + requestState.
    let answer = call_text(&client, "asks_test_input_required", json!({})).await;
    assert_eq!(answer, "input received from ada");
    assert_eq!(
        client.service().wait_for("elicitation").await["message"],
        "Who is asking?"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_session_era_client_answers_a_modern_targets_input_rounds_as_real_requests() {
    // The target is pinned to 2026-07-28, so the session-era client reaches it through the bridge.
    let target = everything(Versions::All).await;
    let harness = Harness::start(&config(&[("asks", &target.url(), "protocol: modern")])).await;
    let client = harness.legacy_client().await;
    let answer = call_text(&client, "asks_test_input_required", json!({})).await;
    assert_eq!(answer, "input received from ada");
    assert_eq!(
        client.service().wait_for("elicitation").await["message"],
        "Who is asking?"
    );
    // Two rounds, the second asking for two inputs at once.
    let answer = call_text(&client, "asks_test_input_rounds", json!({})).await;
    assert_eq!(answer, "who=ada; model=sampled answer; roots=0");
    assert!(client.service().wait_for("sampling").await["messages"].is_array());
    let metrics = harness.metrics().await;
    assert!(
        metrics.contains("mcplex_server_requests_total{target=\"asks\",delivery=\"bridged\"} 4"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("server_requests"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_session_era_client_without_the_capability_gets_an_error_not_a_hang() {
    let target = everything(Versions::All).await;
    let harness = Harness::start(&config(&[("asks", &target.url(), "protocol: modern")])).await;
    // A raw session-era client that declares no capabilities.
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let (_, headers, _) = post(&harness.url(), &[], &initialize.to_string()).await;
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "asks_test_input_required", "arguments": {}}});
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let (status, _, text) = post(&harness.url(), &headers, &call.to_string()).await;
    assert_eq!(status, 200);
    let answer = message_of(&text);
    assert_eq!(answer["error"]["code"], -32021, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("elicitation"),
        "{answer}"
    );
}

/// A raw 2026-07-28 `tools/call` that declares the given client capabilities, with extra params.
async fn modern_call_with(
    url: &str,
    tool: &str,
    capabilities: serde_json::Value,
    extra: serde_json::Value,
) -> serde_json::Value {
    let arguments = json!({"message": "Who are you?"});
    let (status, message) = modern_tool_call(url, tool, arguments, capabilities, extra).await;
    assert_eq!(status, 200, "{message}");
    message
}

#[tokio::test]
async fn a_modern_client_answers_a_session_era_targets_mid_call_request_through_input_required() {
    let target = everything(Versions::LegacyOnly).await;
    let harness = Harness::start(&config(&[("old", &target.url(), "")])).await;
    let url = harness.url();
    let capabilities = json!({"elicitation": {}});
    // The target's elicitation mid-call parks the call; the client is asked the 2026-07-28 way.
    let first = modern_call_with(&url, "old_test_elicitation", capabilities.clone(), json!({})).await;
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    let (name, request) = result["inputRequests"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(request["method"], "elicitation/create");
    assert_eq!(request["params"]["message"], "Who are you?");
    let state = result["requestState"].as_str().unwrap().to_owned();

    // A forged or altered state is refused and names what is wrong; the call stays parked.
    let forged = format!("{}0", &state[..state.len() - 1]);
    let refused = modern_call_with(
        &url,
        "old_test_elicitation",
        capabilities.clone(),
        json!({"requestState": forged, "inputResponses": {}}),
    )
    .await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    // An answer missing for the name asked keeps the call parked too.
    let incomplete = modern_call_with(
        &url,
        "old_test_elicitation",
        capabilities.clone(),
        json!({"requestState": state, "inputResponses": {}}),
    )
    .await;
    assert!(
        incomplete["error"]["message"].as_str().unwrap().contains("lacks"),
        "{incomplete}"
    );

    // The retry with the answer (an unknown field included, passed on as it is) completes the call.
    let answer =
        json!({ name: {"action": "accept", "content": {"username": "ada", "email": "ada@example.com"}, "x-extra": 1} });
    let last = modern_call_with(
        &url,
        "old_test_elicitation",
        capabilities.clone(),
        json!({"requestState": state, "inputResponses": answer}),
    )
    .await;
    let text = last["result"]["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("action=accept") && text.contains("ada"), "{last}");
    assert_eq!(last["id"], 7);
    // The state is spent.
    let again = modern_call_with(
        &url,
        "old_test_elicitation",
        capabilities,
        json!({"requestState": state, "inputResponses": answer}),
    )
    .await;
    assert_eq!(again["error"]["code"], -32602, "{again}");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer waiting"),
        "{again}"
    );
}

/// The TypeScript SDK fixture (tests/fixtures/ts-server.mjs): a session-era server whose `ask` tool sends
/// its elicitation on the session's GET stream, tied to no request.
async fn typescript_server() -> crate::support::node::NodeServer {
    crate::support::node::NodeServer::start(
        "tests/fixtures/ts-server.mjs",
        "tssdk",
        "@modelcontextprotocol/sdk",
        &[],
    )
    .await
}

#[tokio::test]
async fn a_typescript_sdk_servers_get_stream_request_reaches_clients_of_both_eras() {
    let server = typescript_server().await;
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let harness = Harness::start(&config(&[("ts", &url, "")])).await;
    // A session-era client: the request arrives on the upstream GET stream and is carried to it.
    let client = harness.legacy_client().await;
    assert_eq!(call_text(&client, "ts_ask", json!({})).await, "hello ada (accept)");
    client.cancel().await.unwrap();
    // A 2026-07-28 client: the call gets a session of its own, so the request is tied to it and
    // parked behind input_required; the retry completes it.
    let capabilities = json!({"elicitation": {}});
    let first = modern_call_with(&harness.url(), "ts_ask", capabilities.clone(), json!({})).await;
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    let (name, request) = result["inputRequests"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(request["params"]["message"], "Your username?");
    let answer = json!({ name: {"action": "accept", "content": {"username": "grace"}} });
    let state = result["requestState"].clone();
    let last = modern_call_with(
        &harness.url(),
        "ts_ask",
        capabilities.clone(),
        json!({"requestState": state, "inputResponses": answer}),
    )
    .await;
    assert_eq!(last["result"]["content"][0]["text"], "hello grace (accept)", "{last}");
    // Several calls parked at once stay apart: answered in the reverse order, each gets its own answer.
    let mut states = Vec::new();
    for _ in 0..3 {
        let asked = modern_call_with(&harness.url(), "ts_ask", capabilities.clone(), json!({})).await;
        states.push(asked["result"]["requestState"].clone());
    }
    for (i, state) in states.iter().enumerate().rev() {
        let answer = json!({ name: {"action": "accept", "content": {"username": format!("user{i}")}} });
        let done = modern_call_with(
            &harness.url(),
            "ts_ask",
            capabilities.clone(),
            json!({"requestState": state, "inputResponses": answer}),
        )
        .await;
        assert_eq!(
            done["result"]["content"][0]["text"],
            format!("hello user{i} (accept)"),
            "{done}"
        );
    }
    // A client that declared nothing goes through the shared session and gets its answer at once.
    let plain = modern_call_with(&harness.url(), "ts_echo", json!({}), json!({})).await;
    assert_eq!(plain["result"]["content"][0]["text"], "echo", "{plain}");
}

#[tokio::test]
async fn a_call_stream_the_target_closes_before_its_answer_is_resumed_with_last_event_id() {
    // The SDK's own resumability (SEP-1699): `poll` closes its stream after the priming event and answers
    // once mcplex has come back with Last-Event-ID, on the stream the GET reopened.
    let server = typescript_server().await;
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let harness = Harness::start(&config(&[("ts", &url, "")])).await;
    let client = harness.legacy_client().await;
    assert_eq!(call_text(&client, "ts_poll", json!({})).await, "polled");
    client.cancel().await.unwrap();
    // A 2026-07-28 client reaches the target through the shared session, resumed the same way.
    let answer = modern_call_with(&harness.url(), "ts_poll", json!({}), json!({})).await;
    assert_eq!(answer["result"]["content"][0]["text"], "polled", "{answer}");
}

#[tokio::test]
async fn what_a_target_sends_while_its_get_stream_is_closed_reaches_the_client_once_mcplex_resumes_it() {
    // `gap` closes the session's GET stream between two log lines; the SDK keeps the second in its event
    // store, and only a reopening GET with Last-Event-ID gets it.
    let server = typescript_server().await;
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let harness = Harness::start(&config(&[("ts", &url, "")])).await;
    let recorder = Recorder::default();
    let client = legacy_client(&harness.url(), recorder.clone()).await;
    assert_eq!(call_text(&client, "ts_gap", json!({})).await, "gap");
    let logged = || -> Vec<Value> {
        recorder
            .events()
            .into_iter()
            .filter(|e| e["kind"] == "log")
            .map(|e| e["value"]["data"].clone())
            .collect()
    };
    until("two log notifications", || async { logged().len() >= 2 }).await;
    assert_eq!(logged(), [json!("before the gap"), json!("after the gap")]);
}

/// The v2 TypeScript SDK fixture (tests/fixtures/ts-dual-server.mjs): one server of both eras, seen three
/// ways: as it is (`ts`), pinned to its sessions (`tsold`) and pinned to 2026-07-28 (`tsnew`).
async fn dual_era_typescript_targets() -> (crate::support::node::NodeServer, Harness) {
    let server = crate::support::node::NodeServer::start(
        "tests/fixtures/ts-dual-server.mjs",
        "tssdk2",
        "@modelcontextprotocol/node",
        &[],
    )
    .await;
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let harness = Harness::start(&config(&[
        ("ts", &url, ""),
        ("tsold", &url, "protocol: legacy"),
        ("tsnew", &url, "protocol: modern"),
    ]))
    .await;
    (server, harness)
}

#[tokio::test]
async fn a_dual_era_target_whose_sessions_hang_is_ready_and_served_in_2026_07_28() {
    // The session half answers initialize but never a list: only what it would have listed is unknown.
    let server = crate::support::node::NodeServer::start(
        "tests/fixtures/ts-dual-server.mjs",
        "tssdk2",
        "@modelcontextprotocol/node",
        &[("HANG_SESSION_LISTS", "1".into())],
    )
    .await;
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    // The hung half's deadline is far past the test's patience: only not waiting for it passes.
    let harness = within(
        "ready beside a hung session half",
        Harness::start(&config(&[("ts", &url, "timeout: 600s")])),
    )
    .await;
    assert_eq!(reqwest::get(harness.admin("/readyz")).await.unwrap().status(), 200);
    let client = harness.legacy_client().await;
    let names = tool_names(&client).await;
    for name in ["ts_echo", "ts_confirm", "ts_fresh"] {
        assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
    }
    let echo = within(
        "a call beside a hung session half",
        call_text(&client, "ts_echo", json!({})),
    )
    .await;
    assert!(echo.starts_with("echo"));
    let answer = modern_call_with(&harness.url(), "ts_echo", json!({}), json!({})).await;
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("echo"),
        "{answer}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_dual_era_typescript_sdk_server_serves_each_client_in_its_era_and_across_eras() {
    let (_server, harness) = dual_era_typescript_targets().await;
    let status = harness.status().await;
    let eras = |name: &str| {
        status["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["eras"].clone())
            .unwrap()
    };
    assert_eq!(eras("ts"), json!({"modern": true, "session": true}), "{status}");
    assert_eq!(eras("tsold"), json!({"modern": false, "session": true}), "{status}");
    assert_eq!(eras("tsnew"), json!({"modern": true, "session": false}), "{status}");

    // A session-era client stays in its era on the dual-era target: the elicitation the SDK sends on the
    // session's GET stream reaches it. Pinned to 2026-07-28, the same tool's input_required rounds become
    // real requests to it (sampling and roots in one round).
    let recorder = Recorder::default();
    let client = legacy_client(&harness.url(), recorder.clone()).await;
    assert_eq!(
        call_text(&client, "ts_ask", json!({})).await,
        "hello ada (legacy, GET stream)"
    );
    assert_eq!(call_text(&client, "ts_confirm", json!({})).await, "hello ada (legacy)");
    // A tool the target offers in 2026-07-28 only is called there, its question bridged to the session.
    assert_eq!(
        call_text(&client, "ts_fresh", json!({})).await,
        "hello ada (fresh, modern)"
    );
    assert_eq!(
        call_text(&client, "tsnew_rounds", json!({})).await,
        "word=sampled answer; roots=0 (modern)"
    );
    assert_eq!(
        call_text(&client, "tsnew_confirm", json!({})).await,
        "hello ada (modern)"
    );
    client.cancel().await.unwrap();

    // A 2026-07-28 client gets the dual-era target's own input_required, untouched.
    let capabilities = json!({"elicitation": {}});
    let url = harness.url();
    let first = modern_call_with(&url, "ts_confirm", capabilities.clone(), json!({})).await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    assert_eq!(
        first["result"]["inputRequests"]["who"]["method"], "elicitation/create",
        "{first}"
    );
    let answer = json!({"who": {"action": "accept", "content": {"username": "grace"}}});
    let last = modern_call_with(
        &url,
        "ts_confirm",
        capabilities.clone(),
        json!({"inputResponses": answer}),
    )
    .await;
    assert_eq!(last["result"]["content"][0]["text"], "hello grace (modern)", "{last}");

    // Pinned to sessions, the GET-stream elicitation parks the call behind mcplex's sealed state.
    let parked = modern_call_with(&url, "tsold_ask", capabilities.clone(), json!({})).await;
    let result = &parked["result"];
    assert_eq!(result["resultType"], "input_required", "{parked}");
    assert!(
        result["requestState"]
            .as_str()
            .unwrap_or_default()
            .starts_with("mcplex.parked."),
        "{parked}"
    );
    let (name, request) = result["inputRequests"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(request["params"]["message"], "Your username?", "{parked}");
    let answer = json!({ name: {"action": "accept", "content": {"username": "grace"}} });
    let done = modern_call_with(
        &url,
        "tsold_ask",
        capabilities,
        json!({"requestState": result["requestState"], "inputResponses": answer}),
    )
    .await;
    assert_eq!(
        done["result"]["content"][0]["text"], "hello grace (legacy, GET stream)",
        "{done}"
    );
}

#[tokio::test]
async fn a_modern_target_answering_with_newline_delimited_frames_is_relayed_in_order() {
    // A 2026-07-28 target that answers tools/call with a JSON body of two lines: progress, then the result
    // (the dual-era conformance reference server streams `test_streaming_elicitation` this way).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(mcplex::serve::serve(
        listener,
        None,
        |request: http::Request<hyper::body::Incoming>| async move {
            let body = http_body_util::BodyExt::collect(request.into_body())
                .await
                .unwrap()
                .to_bytes();
            let message: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let id = &message["id"];
            let text = match message["method"].as_str() {
                Some("server/discover") => json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "complete", "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}}}).to_string(),
                Some("tools/list") => json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "complete", "tools": [{"name": "stream", "inputSchema": {"type": "object"}}]}}).to_string(),
                _ => format!(
                    "{}\n{}\n",
                    json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "p", "progress": 50, "total": 100}}),
                    json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "complete", "content": [{"type": "text", "text": "streamed"}]}})
                ),
            };
            http::Response::builder()
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(text)))
                .unwrap()
        },
        mcplex::serve::ServeLimits::default(),
        tokio_util::sync::CancellationToken::new(),
        Duration::from_secs(1),
    ));
    let harness = Harness::start(&config(&[("nd", &format!("http://{addr}/mcp"), "")])).await;
    let mut meta = modern_meta();
    meta["progressToken"] = json!("p");
    let body =
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "nd_stream", "_meta": meta}})
            .to_string();
    let (status, _, text) = post(&harness.url(), &modern_headers("tools/call", Some("nd_stream")), &body).await;
    assert_eq!(status, 200, "{text}");
    let progress = text
        .find("notifications/progress")
        .expect("the progress frame is relayed");
    let result = text.find("\"streamed\"").expect("the result is relayed");
    assert!(progress < result, "{text}");
    assert_eq!(message_of(&text)["id"], 3, "{text}");
    // A session-era client gets the same, with the result rewritten for its era.
    let client = harness.legacy_client().await;
    assert_eq!(call_text(&client, "nd_stream", json!({})).await, "streamed");
    client.cancel().await.unwrap();
}
