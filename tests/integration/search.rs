//! Tool search (`toolSearch`): agents of both eras see mcplex's `find_tools` and `call_tool` beside the
//! visible tools, find the rest by what they do, and call them; results follow the catalog, the profile
//! and the policy.

use crate::support::common::*;
use mcplex_examples::Example;
use mcplex_examples::everything::Versions;
use rmcp::RoleClient;
use rmcp::service::RunningService;
use serde_json::{Value, json};

type Client = RunningService<RoleClient, Recorder>;

/// `find_tools` with these arguments: the structured result, after checking the text content says the same.
async fn find(client: &Client, arguments: Value) -> Value {
    let result = call(client, "find_tools", arguments).await.expect("find_tools answers");
    let result = serde_json::to_value(&result).unwrap();
    assert_eq!(result["isError"], false, "{result}");
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        text, result["structuredContent"],
        "the text content is the structured content"
    );
    result["structuredContent"].clone()
}

fn found_names(found: &Value) -> Vec<String> {
    found["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn tool_error(result: &rmcp::model::CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    first_text(result)
}

#[tokio::test]
async fn agents_of_both_eras_find_and_call_what_is_not_listed() {
    let everything = everything(Versions::All).await;
    let math = example(Example::Math).await;
    let yaml = format!(
        "{}toolSearch:\n  visible: [\"math_add\"]\n  results: 5\npolicy:\n  cedar: |\n    permit(principal, action, resource) unless {{ resource == Tool::\"math_divide\" }};\n",
        config(&[("ev", &everything.url(), ""), ("math", &math.url(), "")])
    );
    let harness = Harness::start(&yaml).await;
    let legacy = harness.legacy_client().await;
    let modern = harness.modern_client().await;
    for client in [&legacy, &modern] {
        assert_eq!(tool_names(client).await, ["call_tool", "find_tools", "math_add"]);
        let listed = client.list_all_tools().await.unwrap();
        let find_tools = listed.iter().find(|t| t.name == "find_tools").unwrap();
        assert!(find_tools.output_schema.is_some(), "find_tools declares its output");

        let found = find(client, json!({"query": "multiply two numbers"})).await;
        assert_eq!(found_names(&found)[0], "math_multiply", "{found}");
        let best = &found["tools"][0];
        assert_eq!(best["target"], "math");
        assert_eq!(best["description"], "Multiply two numbers: a * b");
        assert_eq!(best["inputSchema"]["type"], "object");
        assert!(best["score"].as_f64().unwrap() > 0.0);
        assert!(found["tools"].as_array().unwrap().len() <= 5, "the configured default");
        // A word only the math server's instructions hold ("Arithmetic on two numbers.") finds its tools.
        let found = find(client, json!({"query": "arithmetic", "limit": 10})).await;
        let targets: Vec<&Value> = found["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| &t["target"])
            .collect();
        assert!(!targets.is_empty() && targets.iter().all(|t| *t == "math"), "{found}");
        // The policy hides math_divide from lists, and so from searches.
        let found = find(client, json!({"query": "divide a by b", "limit": 50})).await;
        assert!(!found_names(&found).contains(&"math_divide".to_string()), "{found}");
        let found = find(
            client,
            json!({"query": "returns its arguments", "target": "ev", "limit": 3}),
        )
        .await;
        assert!(
            found["tools"].as_array().unwrap().iter().all(|t| t["target"] == "ev"),
            "{found}"
        );
        assert!(found_names(&found).len() <= 3);
        assert_eq!(
            found_names(&find(client, json!({"query": "numbers", "limit": 1})).await).len(),
            1
        );

        // Bad arguments are the tool's error, for the model to read and correct.
        for (arguments, says) in [
            (json!({}), "arguments.query is required"),
            (
                json!({"query": "x", "limit": 99}),
                "arguments.limit must be an integer from 1 to 50",
            ),
            (json!({"query": "x", "target": "nope"}), "no server is named `nope`"),
            (
                json!({"query": "x", "target": 7}),
                "arguments.target must be the name of a server, a string, not 7",
            ),
            (
                json!({"query": "é".repeat(2_001)}),
                "arguments.query is 2001 characters long, more than the 2000",
            ),
        ] {
            let result = call(client, "find_tools", arguments).await.unwrap();
            assert!(tool_error(&result).contains(says), "{result:?}");
        }

        // call_tool is routed as tools/call: results, policy and unknown names alike.
        let called = call(
            client,
            "call_tool",
            json!({"name": "math_multiply", "arguments": {"a": 6, "b": 7}}),
        )
        .await;
        assert_eq!(first_text(&called.unwrap()), "42");
        let denied = format!(
            "{:?}",
            call(
                client,
                "call_tool",
                json!({"name": "math_divide", "arguments": {"a": 1, "b": 1}})
            )
            .await
            .unwrap_err()
        );
        assert!(denied.contains("-32032"), "{denied}");
        let unknown = format!(
            "{:?}",
            call(client, "call_tool", json!({"name": "nope"})).await.unwrap_err()
        );
        assert!(unknown.contains("unknown tool `nope`"), "{unknown}");
        let result = call(client, "call_tool", json!({"name": "find_tools"})).await.unwrap();
        assert!(tool_error(&result).contains("call find_tools directly"));
        // A tool that is not listed can still be called by name.
        assert_eq!(call_text(client, "math_subtract", json!({"a": 50, "b": 8})).await, "42");
    }

    // A session-era client gets what it found as tools of its own, and hears that its list changed.
    until("the session hears its list changed", || async {
        legacy
            .service()
            .events()
            .iter()
            .any(|e| e["kind"] == "tools_list_changed")
    })
    .await;
    let names = tool_names(&legacy).await;
    assert!(names.contains(&"math_multiply".to_string()), "{names:?}");
    assert!(!names.contains(&"math_divide".to_string()), "never found: {names:?}");
    assert_eq!(
        tool_names(&modern).await,
        ["call_tool", "find_tools", "math_add"],
        "sessions do not share"
    );
    let announced = legacy
        .service()
        .events()
        .iter()
        .filter(|e| e["kind"] == "tools_list_changed")
        .count();
    find(&legacy, json!({"query": "multiply two numbers", "limit": 1})).await;
    holds_for(
        "finding a known tool again announces nothing",
        std::time::Duration::from_millis(300),
        || async {
            legacy
                .service()
                .events()
                .iter()
                .filter(|e| e["kind"] == "tools_list_changed")
                .count()
                == announced
        },
    )
    .await;

    let page = harness.metrics().await;
    assert!(page.contains("mcplex_call_tool_calls_total 6"), "{page}");
    assert!(page.contains("mcplex_tool_searches_total 11"), "{page}");
    for client in [legacy, modern] {
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn a_profile_searches_only_its_own_tools_and_the_index_follows_the_targets() {
    let everything = everything(Versions::All).await;
    let math = example(Example::Math).await;
    // `math` exposes its `add` as `find_tools`: mcplex keeps the name and reports the collision.
    let yaml = format!(
        "{}toolSearch: {{ visible: [\"*\"] }}\nprofiles:\n  sre:\n    targets: [ev, math]\n    tools: {{ deny: [\"ev_echo\"] }}\n    toolSearch: {{ visible: [\"ev_test_simple_text\"] }}\n",
        config(&[
            ("ev", &everything.url(), ""),
            (
                "math",
                &math.url(),
                "prefix: \"\"\ntools: { rename: { add: find_tools } }"
            ),
        ])
    );
    let harness = Harness::start_with(&yaml, |o| o.profile = Some("sre".into())).await;
    let client = harness.modern_client().await;
    assert_eq!(
        tool_names(&client).await,
        ["call_tool", "ev_test_simple_text", "find_tools"],
        "the profile's toolSearch replaces the top-level one"
    );
    let found = find(
        &client,
        json!({"query": "returns its arguments and request meta", "limit": 50}),
    )
    .await;
    assert!(
        !found_names(&found).contains(&"ev_echo".to_string()),
        "the profile hides ev_echo: {found}"
    );
    assert!(found_names(&found).iter().all(|n| n != "find_tools"), "{found}");
    let status = harness.status().await;
    assert_eq!(
        status["toolSearch"]["visible"],
        json!(["ev_test_simple_text"]),
        "{status}"
    );
    assert!(status["toolSearch"]["indexedTools"].as_u64().unwrap() > 10, "{status}");
    let collisions = status["collisions"].clone();
    assert!(
        collisions.as_array().unwrap().contains(
            &json!({"kind": "tools", "name": "find_tools", "keptBy": "mcplex (toolSearch)", "hiddenFrom": "math"})
        ),
        "{collisions}"
    );

    // A tool the target adds later is found once the target's list is fetched again.
    let found = find(&client, json!({"query": "present only after toggle", "target": "ev"})).await;
    assert!(!found_names(&found).contains(&"ev_extra".to_string()));
    call_text(&client, "ev_toggle_extra_tool", json!({})).await;
    eventually("the new tool is found", || async {
        let found = find(&client, json!({"query": "present only after toggle", "target": "ev"})).await;
        found_names(&found).first().filter(|n| *n == "ev_extra").cloned()
    })
    .await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_tool_two_targets_offer_is_found_once_with_its_copy_named() {
    let math = example(Example::Math).await;
    // One server behind two targets (as with a credential each): every tool is offered twice.
    let yaml = format!(
        "{}toolSearch: {{ results: 4 }}\npolicy:\n  cedar: |\n    permit(principal, action, resource) unless {{ resource == Tool::\"math2_divide\" }};\n",
        config(&[("math", &math.url(), ""), ("math2", &math.url(), "")])
    );
    let harness = Harness::start(&yaml).await;
    let client = harness.modern_client().await;
    let found = find(&client, json!({"query": "multiply two numbers"})).await;
    let best = &found["tools"][0];
    let (name, copy) = match best["name"].as_str().unwrap() {
        "math_multiply" => ("math_multiply", json!([{"name": "math2_multiply", "target": "math2"}])),
        "math2_multiply" => ("math2_multiply", json!([{"name": "math_multiply", "target": "math"}])),
        other => panic!("{other} is not the best match: {found}"),
    };
    assert_eq!(best["copies"], copy, "{name}: {found}");
    // Each result is another tool: the copies take no place of their own.
    let tools = found["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 4, "{found}");
    let originals: std::collections::HashSet<&str> = tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().split_once('_').unwrap().1)
        .collect();
    assert_eq!(originals.len(), 4, "{found}");
    // A copy the caller may not call is not named; nor are copies outside the target asked for.
    let found = find(&client, json!({"query": "divide a by b", "limit": 1})).await;
    assert_eq!(found["tools"][0]["name"], "math_divide", "{found}");
    assert!(found["tools"][0].get("copies").is_none(), "{found}");
    let found = find(&client, json!({"query": "multiply two numbers", "target": "math2"})).await;
    assert_eq!(found["tools"][0]["name"], "math2_multiply", "{found}");
    assert!(found["tools"][0].get("copies").is_none(), "{found}");
    client.cancel().await.unwrap();
}
