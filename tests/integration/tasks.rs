//! Tasks (the 2026-07-28 tasks extension) routed to the target that created them. The alpha conformance
//! suite's tasks scenarios run through mcplex against FastMCP in tests/third_party; these tests cover what
//! only a multiplexer can get wrong: two targets handing out the same task id.

use crate::support::common::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TASKS: &str = "io.modelcontextprotocol/tasks";

/// A 2026-07-28 target whose `job` tool always creates task "1" and whose `tasks/get` answers with its own
/// name; it records the `Mcp-Name` header and `params.taskId` of every `tasks/*` request it gets.
async fn task_target(name: &'static str) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let record = seen.clone();
    tokio::spawn(mcplex::serve::serve(
        listener,
        None,
        move |request: http::Request<hyper::body::Incoming>| {
            let record = record.clone();
            async move {
                let header = request
                    .headers()
                    .get("mcp-name")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = http_body_util::BodyExt::collect(request.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                let message: Value = serde_json::from_slice(&body).unwrap_or_default();
                let id = &message["id"];
                let task = message["params"]["taskId"].as_str().unwrap_or_default().to_owned();
                let result = match message["method"].as_str() {
                    Some("server/discover") => {
                        json!({"resultType": "complete", "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}, "extensions": {TASKS: {}}}})
                    }
                    Some("tools/list") => {
                        json!({"resultType": "complete", "tools": [{"name": "job", "inputSchema": {"type": "object"}}]})
                    }
                    Some("tools/call") => {
                        json!({"resultType": "task", "taskId": "1", "status": "working", "createdAt": "2026-11-25T00:00:00Z", "lastUpdatedAt": "2026-11-25T00:00:00Z", "ttlMs": 60000})
                    }
                    Some(method) if method.starts_with("tasks/") => {
                        record.lock().unwrap().push((header, task.clone()));
                        json!({"resultType": "complete", "taskId": task, "status": "completed", "result": {"content": [{"type": "text", "text": format!("{name} done")}]}})
                    }
                    _ => json!({"resultType": "complete"}),
                };
                let text = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
                http::Response::builder()
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(text)))
                    .unwrap()
            }
        },
        mcplex::serve::ServeLimits::default(),
        tokio_util::sync::CancellationToken::new(),
        Duration::from_secs(1),
    ));
    (format!("http://{addr}/mcp"), seen)
}

/// A 2026-07-28 request's answer, with or without the tasks extension declared.
async fn modern(url: &str, method: &str, name: &str, params: Value, opted_in: bool) -> Value {
    let mut meta = modern_meta();
    if opted_in {
        meta["io.modelcontextprotocol/clientCapabilities"] = json!({"extensions": {TASKS: {}}});
    }
    let mut params = params;
    params["_meta"] = meta;
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}).to_string();
    let (_, _, text) = post(url, &modern_headers(method, Some(name)), &body).await;
    message_of(&text)
}

#[tokio::test]
async fn tasks_with_the_same_id_at_two_targets_reach_the_target_that_created_them() {
    let (a_url, a_seen) = task_target("a").await;
    let (b_url, b_seen) = task_target("b").await;
    let harness = Harness::start(&config(&[("a", &a_url, ""), ("b", &b_url, "")])).await;
    let url = harness.url();

    let discovered = modern(&url, "server/discover", "", json!({}), false).await;
    assert!(
        discovered["result"]["capabilities"]["extensions"][TASKS].is_object(),
        "{discovered}"
    );
    // Both targets call their task "1"; the client sees each with its target's name in front.
    let from_a = modern(&url, "tools/call", "a_job", json!({"name": "a_job"}), true).await;
    let from_b = modern(&url, "tools/call", "b_job", json!({"name": "b_job"}), true).await;
    assert_eq!(from_a["result"]["resultType"], "task", "{from_a}");
    assert_eq!(from_a["result"]["taskId"], "a.1", "{from_a}");
    assert_eq!(from_b["result"]["taskId"], "b.1", "{from_b}");

    // Polled in the other order, each reaches its own target with the target's own id (body and header).
    let b_done = modern(&url, "tasks/get", "b.1", json!({"taskId": "b.1"}), true).await;
    assert_eq!(b_done["result"]["taskId"], "b.1", "{b_done}");
    assert_eq!(b_done["result"]["result"]["content"][0]["text"], "b done", "{b_done}");
    let a_done = modern(&url, "tasks/get", "a.1", json!({"taskId": "a.1"}), true).await;
    assert_eq!(a_done["result"]["result"]["content"][0]["text"], "a done", "{a_done}");
    let cancelled = modern(&url, "tasks/cancel", "a.1", json!({"taskId": "a.1"}), true).await;
    assert_eq!(cancelled["result"]["resultType"], "complete", "{cancelled}");
    let own = |seen: &Arc<Mutex<Vec<(String, String)>>>| seen.lock().unwrap().clone();
    assert_eq!(own(&a_seen), vec![("1".into(), "1".into()), ("1".into(), "1".into())]);
    assert_eq!(own(&b_seen), vec![("1".into(), "1".into())]);

    // A task no target could have created, and a request that did not opt in, get the spec's errors
    // from mcplex itself; neither reaches a target.
    let unknown = modern(&url, "tasks/get", "c.1", json!({"taskId": "c.1"}), true).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let bare = modern(&url, "tasks/get", "1", json!({"taskId": "1"}), true).await;
    assert_eq!(bare["error"]["code"], -32602, "{bare}");
    let undeclared = modern(&url, "tasks/get", "a.1", json!({"taskId": "a.1"}), false).await;
    assert_eq!(undeclared["error"]["code"], -32021, "{undeclared}");
    assert!(
        undeclared["error"]["data"]["requiredCapabilities"]["extensions"][TASKS].is_object(),
        "{undeclared}"
    );
    assert_eq!(own(&a_seen).len() + own(&b_seen).len(), 3);
}
