//! Naming (prefix, allow/deny, rename), collisions, and pagination of merged lists.

use crate::support::common::*;
use mcplex_examples::Example;
use mcplex_examples::everything::Versions;
use serde_json::json;

#[tokio::test]
async fn filters_renames_and_collisions_are_applied_and_reported() {
    let math = example(Example::Math).await;
    let first = everything(Versions::All).await;
    let second = everything(Versions::LegacyOnly).await;
    let yaml = config(&[
        (
            "math",
            &math.url(),
            "tools: { allow: [\"add\", \"mul*\"], deny: [\"multiply\"], rename: { add: plus } }",
        ),
        (
            "first",
            &first.url(),
            "prefix: \"\"\ntools: { allow: [\"echo\", \"test_simple_text\"] }",
        ),
        (
            "second",
            &second.url(),
            "prefix: \"\"\ntools: { allow: [\"echo\", \"slow\"] }",
        ),
    ]);
    let harness = Harness::start(&yaml).await;
    let client = harness.modern_client().await;
    assert_eq!(
        tool_names(&client).await,
        vec!["echo", "math_plus", "slow", "test_simple_text"]
    );
    assert_eq!(call_text(&client, "math_plus", json!({"a": 1, "b": 2})).await, "3");
    let status = harness.status().await;
    let collisions = status["collisions"].as_array().unwrap();
    assert!(
        collisions.contains(&json!({"kind": "tools", "name": "echo", "keptBy": "first", "hiddenFrom": "second"})),
        "{status}"
    );
    let metrics = harness.metrics().await;
    assert!(
        metrics.contains(&format!("mcplex_name_collisions {}", collisions.len())),
        "{metrics}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn merged_lists_are_paginated_with_mcplex_cursors() {
    let a = everything(Versions::All).await;
    let b = everything(Versions::LegacyOnly).await;
    let harness = Harness::start_with(&config(&[("a", &a.url(), ""), ("b", &b.url(), "")]), |o| {
        o.page_size = 5
    })
    .await;
    let client = harness.legacy_client().await;
    let all = tool_names(&client).await;
    assert_eq!(all.len(), 40, "{all:?}");
    let first_page = client.list_tools(None).await.unwrap();
    assert_eq!(first_page.tools.len(), 5);
    let cursor = first_page.next_cursor.clone().expect("a next cursor");
    let second_page = client
        .list_tools(Some(
            rmcp::model::PaginatedRequestParams::default().with_cursor(Some(cursor)),
        ))
        .await
        .unwrap();
    assert_eq!(second_page.tools.len(), 5);
    assert_ne!(first_page.tools[0].name, second_page.tools[0].name);
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"cursor": "not-ours", "_meta": modern_meta()}});
    let (status, _, text) = post(&harness.url(), &modern_headers("tools/list", None), &body.to_string()).await;
    let message = message_of(&text);
    assert_eq!(
        (status, message["error"]["code"].as_i64()),
        (200, Some(-32602)),
        "{text}"
    );
    assert!(
        message["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid cursor `not-ours`")
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn modern_lists_carry_cache_hints() {
    let a = everything(Versions::All).await;
    let harness = Harness::start(&config(&[("a", &a.url(), "")])).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_meta()}});
    let (_, _, text) = post(&harness.url(), &modern_headers("tools/list", None), &body.to_string()).await;
    let result = &message_of(&text)["result"];
    assert!(result["ttlMs"].is_u64(), "{result}");
    assert!(result["cacheScope"] == "private" || result["cacheScope"] == "public");
    assert_eq!(result["resultType"], "complete");
}
