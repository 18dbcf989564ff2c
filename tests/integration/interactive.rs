//! Session-era traffic that flows both ways: server requests, progress, logs, subscriptions, list_changed.
#![allow(deprecated)] // the session-era features under test (logging, resources/subscribe) are deprecated in 2026-07-28

use crate::support::common::*;
use mcplex_examples::everything::Versions;
use rmcp::model::*;
use serde_json::json;

async fn setup() -> (Upstream, Harness) {
    let upstream = everything(Versions::LegacyOnly).await;
    let harness = Harness::start(&config(&[("e", &upstream.url(), "prefix: ev")])).await;
    (upstream, harness)
}

#[tokio::test]
async fn sampling_and_elicitation_requests_reach_the_client_and_answers_go_back() {
    let (_upstream, harness) = setup().await;
    let client = harness.legacy_client().await;
    let answer = call_text(&client, "ev_test_sampling", json!({"prompt": "What is 2+2?"})).await;
    assert_eq!(answer, "LLM response: sampled answer");
    let sampled = client.service().wait_for("sampling").await;
    assert_eq!(sampled["messages"][0]["content"]["text"], "What is 2+2?");

    let answer = call_text(&client, "ev_test_elicitation", json!({"message": "Who are you?"})).await;
    assert!(
        answer.contains("action=accept") && answer.contains("ada@example.com"),
        "{answer}"
    );
    assert_eq!(
        client.service().wait_for("elicitation").await["message"],
        "Who are you?"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn progress_and_log_notifications_arrive_on_the_call_stream() {
    let (_upstream, harness) = setup().await;
    let client = harness.legacy_client().await;
    client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Debug))
        .await
        .expect("logging/setLevel");
    call_text(&client, "ev_test_tool_with_logging", json!({})).await;
    let logs: Vec<_> = client
        .service()
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "log")
        .map(|e| e["value"]["data"].clone())
        .collect();
    assert_eq!(
        logs,
        vec![
            json!("Tool execution started"),
            json!("Tool processing data"),
            json!("Tool execution completed")
        ]
    );

    let mut params = CallToolRequestParams::new("ev_test_tool_with_progress");
    params = params.with_arguments(serde_json::Map::new());
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
    let handle = client
        .send_cancellable_request(request, rmcp::service::PeerRequestOptions::no_options())
        .await
        .expect("send");
    let response = handle.await_response().await.expect("response");
    assert!(matches!(response, ServerResult::CallToolResult(_)));
    let progress: Vec<_> = client
        .service()
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "progress")
        .map(|e| e["value"]["progress"].clone())
        .collect();
    assert_eq!(progress, vec![json!(0.0), json!(50.0), json!(100.0)]);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn resource_updates_and_list_changes_reach_the_client() {
    let (_upstream, harness) = setup().await;
    let client = harness.legacy_client().await;
    client
        .subscribe(SubscribeRequestParams::new("test://watched-resource"))
        .await
        .expect("resources/subscribe");
    assert_eq!(
        client.service().wait_for("resource_updated").await["uri"],
        "test://watched-resource"
    );
    client
        .unsubscribe(UnsubscribeRequestParams::new("test://watched-resource"))
        .await
        .expect("resources/unsubscribe");

    assert!(!tool_names(&client).await.contains(&"ev_extra".to_string()));
    call_text(&client, "ev_toggle_extra_tool", json!({})).await;
    client.service().wait_for("tools_list_changed").await;
    assert!(tool_names(&client).await.contains(&"ev_extra".to_string()));
    assert_eq!(call_text(&client, "ev_extra", json!({})).await, "extra");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_second_client_session_gets_its_own_upstream_session() {
    let (_upstream, harness) = setup().await;
    let first = harness.legacy_client().await;
    let second = harness.legacy_client().await;
    assert_eq!(
        call_text(&first, "ev_test_sampling", json!({"prompt": "one"})).await,
        "LLM response: sampled answer"
    );
    assert_eq!(
        call_text(&second, "ev_test_sampling", json!({"prompt": "two"})).await,
        "LLM response: sampled answer"
    );
    assert_eq!(
        first.service().wait_for("sampling").await["messages"][0]["content"]["text"],
        "one"
    );
    assert_eq!(
        second.service().wait_for("sampling").await["messages"][0]["content"]["text"],
        "two"
    );
    assert_eq!(harness.status().await["sessions"], 2);
    first.cancel().await.unwrap();
    second.cancel().await.unwrap();
}

#[tokio::test]
async fn a_cancellation_reaches_only_the_target_that_owns_the_call() {
    let owner = everything(Versions::LegacyOnly).await;
    let bystander = everything(Versions::LegacyOnly).await;
    let harness = Harness::start(&config(&[
        ("owner", &owner.url(), ""),
        ("bystander", &bystander.url(), ""),
    ]))
    .await;
    let client = harness.legacy_client().await;
    // Open the bystander's session first so a misrouted cancellation would have somewhere to go.
    assert_eq!(call_text(&client, "bystander_cancelled_calls", json!({})).await, "0");
    let params =
        CallToolRequestParams::new("owner_slow").with_arguments(json!({"ms": 5000}).as_object().unwrap().clone());
    let handle = client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            rmcp::service::PeerRequestOptions::no_options(),
        )
        .await
        .expect("send");
    // The call's first progress report says the owner is working on it.
    client.service().wait_for("progress").await;
    handle.cancel(Some("changed my mind".into())).await.expect("cancel");
    until("the owner sees the cancellation", || async {
        call_text(&client, "owner_cancelled_calls", json!({})).await == "1"
    })
    .await;
    assert_eq!(call_text(&client, "bystander_cancelled_calls", json!({})).await, "0");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_session_era_subscription_at_a_modern_target_rides_on_subscriptions_listen() {
    // The target is pinned to 2026-07-28: resources/subscribe does not exist there, so mcplex listens.
    let upstream = everything(Versions::All).await;
    let harness = Harness::start(&config(&[("ev", &upstream.url(), "protocol: modern")])).await;
    let client = harness.legacy_client().await;
    client
        .subscribe(SubscribeRequestParams::new("test://watched-resource"))
        .await
        .expect("resources/subscribe is bridged");
    let update = client.service().wait_for("resource_updated").await;
    assert_eq!(update["uri"], "test://watched-resource");
    assert!(
        update.get("_meta").is_none(),
        "2026-07-28 metadata stays upstream: {update}"
    );
    client
        .unsubscribe(UnsubscribeRequestParams::new("test://watched-resource"))
        .await
        .expect("resources/unsubscribe is bridged");
    client.cancel().await.unwrap();
}
