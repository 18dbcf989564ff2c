//! Tool search's semantic signal (`toolSearch.embeddings`) with a real sentence-embedding model
//! (all-MiniLM-L6-v2 behind an OpenAI-compatible endpoint): a query that shares no word with the tool it
//! needs finds it; the vectors follow the catalog; a refused or dead endpoint leaves searches lexical,
//! with the reason in `/status`, and they recover when it answers again.

use crate::support::common::*;
use crate::support::embedder::{EmbeddingServer, MODEL};
use mcplex_examples::Example;
use mcplex_examples::everything::Versions;
use serde_json::{Value, json};

/// The names `find_tools` returns for `query`.
async fn found(client: &rmcp::service::RunningService<rmcp::RoleClient, Recorder>, query: &str) -> Vec<String> {
    let result = call(client, "find_tools", json!({"query": query, "limit": 5}))
        .await
        .expect("find_tools answers");
    let result = serde_json::to_value(&result).unwrap();
    assert_eq!(result["isError"], false, "{result}");
    result["structuredContent"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn semantic(status: &Value) -> Value {
    status["toolSearch"]["semantic"].clone()
}

/// Words that are in no tool of the math, date and everything servers, meaning what `math_multiply` does.
const NO_SHARED_WORD: &str = "six times seven";

#[tokio::test]
async fn a_query_finds_by_meaning_what_shares_no_word_with_it() {
    let embedder = EmbeddingServer::start(Some("key-1")).await;
    let everything = everything(Versions::All).await;
    let math = example(Example::Math).await;
    let date = example(Example::Date).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("api-key");
    // A wrong key first: the endpoint refuses, searches stay lexical, and the reason is shown.
    std::fs::write(&key_file, "wrong\n").unwrap();
    let targets = config(&[
        ("ev", &everything.url(), ""),
        ("math", &math.url(), ""),
        ("date", &date.url(), ""),
    ]);
    let with_embeddings = format!(
        "{targets}toolSearch:\n  embeddings:\n    url: {}\n    model: {MODEL}\n    apiKeyFile: {}\n",
        embedder.url,
        key_file.display()
    );
    let harness = Harness::start(&with_embeddings).await;
    let client = harness.modern_client().await;
    until("the refused key is reported", || async {
        semantic(&harness.status().await)["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("401"))
    })
    .await;
    let status = semantic(&harness.status().await);
    assert_eq!(status["vectors"], 0, "{status}");
    assert_eq!(status["model"], MODEL);
    assert!(
        !found(&client, NO_SHARED_WORD)
            .await
            .contains(&"math_multiply".to_string())
    );
    let page = harness.metrics().await;
    assert!(!page.contains("mcplex_tool_search_lexical_only_total 0"), "{page}");
    assert!(
        !page.contains("mcplex_tool_search_embedding_failures_total 0"),
        "{page}"
    );

    // The Secret is rotated: the next attempt reads the file again and every tool gets its vector.
    std::fs::write(&key_file, "key-1\n").unwrap();
    until("every tool has its vector", || async {
        let status = semantic(&harness.status().await);
        status["vectors"].as_u64().unwrap_or(0) > 0 && status["vectors"] == status["of"]
    })
    .await;
    assert!(semantic(&harness.status().await)["lastError"].is_null());
    // What search keeps in memory is counted and shown beside the tools' JSON (at least 384 bytes per
    // distinct tool text for this model).
    let status = harness.status().await;
    let search = &status["toolSearch"];
    assert!(search["indexBytes"].as_u64().unwrap() > 0, "{search}");
    assert!(search["toolsJsonBytes"].as_u64().unwrap() > 0, "{search}");
    let vectors = search["semantic"]["vectors"].as_u64().unwrap();
    assert!(
        search["semantic"]["vectorBytes"].as_u64().unwrap() >= vectors * 384,
        "{search}"
    );
    let names = found(&client, NO_SHARED_WORD).await;
    assert_eq!(names[0], "math_multiply", "{names:?}");
    let names = found(&client, "what time is it in Tokyo right now").await;
    assert_eq!(names[0], "date_now", "{names:?}");
    let page = harness.metrics().await;
    let tools = semantic(&harness.status().await)["of"].as_u64().unwrap();
    assert!(page.contains(&format!("mcplex_tool_search_vectors {tools}")), "{page}");
    // Each search's time inside the sidecar and the endpoint's share of it (the two searches above,
    // plus the one while the key was refused, which had no vectors and embedded no query).
    let sample = |name: &str| metric(&page, name).unwrap_or_else(|| panic!("{name} in {page}"));
    assert_eq!(sample("mcplex_tool_search_query_embedding_seconds_count"), 2.0);
    assert_eq!(sample("mcplex_tool_search_duration_seconds_count"), 3.0);
    assert!(
        sample("mcplex_tool_search_duration_seconds_sum") > sample("mcplex_tool_search_query_embedding_seconds_sum"),
        "{page}"
    );

    // The vectors follow the catalog: a tool that appears upstream gets one and is found by meaning.
    call_text(&client, "ev_set_drift", json!({"kind": "added"})).await;
    until("the new tool has its vector", || async {
        let status = semantic(&harness.status().await);
        status["of"].as_u64() == Some(tools + 1) && status["vectors"] == status["of"]
    })
    .await;

    // The endpoint goes away: searches still answer, by words, and say why in the metrics and status.
    let before = harness.metrics().await;
    drop(embedder);
    let names = found(&client, "multiply two numbers").await;
    assert_eq!(names[0], "math_multiply", "{names:?}");
    let after = harness.metrics().await;
    let lexical_only = |page: &str| {
        page.lines()
            .find_map(|l| l.strip_prefix("mcplex_tool_search_lexical_only_total "))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap()
    };
    assert_eq!(lexical_only(&after), lexical_only(&before) + 1);

    // Turned off by a config edit, the same query is ranked by words alone and misses.
    std::fs::write(&harness.config_path, format!("{targets}toolSearch: {{}}\n")).unwrap();
    until("the edit is applied", || async {
        harness.status().await["toolSearch"]["semantic"].is_null()
    })
    .await;
    assert!(
        !found(&client, NO_SHARED_WORD)
            .await
            .contains(&"math_multiply".to_string())
    );
    client.cancel().await.unwrap();
}

/// A counter's value on a `/metrics` page.
fn counter(page: &str, name: &str) -> u64 {
    metric(page, name).unwrap_or_else(|| panic!("{name} in {page}")) as u64
}

#[tokio::test]
async fn a_hung_endpoint_costs_a_search_its_timeout_once_not_every_time() {
    let embedder = EmbeddingServer::start(None).await;
    let math = example(Example::Math).await;
    let targets = config(&[("math", &math.url(), "")]);
    let yaml = format!(
        "{targets}toolSearch:\n  embeddings:\n    url: {}\n    model: {MODEL}\n    timeout: 1s\n",
        embedder.url
    );
    let harness = Harness::start(&yaml).await;
    let client = harness.modern_client().await;
    until("every tool has its vector", || async {
        let status = semantic(&harness.status().await);
        status["vectors"].as_u64() > Some(0) && status["vectors"] == status["of"]
    })
    .await;
    assert_eq!(found(&client, NO_SHARED_WORD).await[0], "math_multiply");

    // Hung: the first search waits for the deadline and is ranked by words; the searches right after it do
    // not ask the endpoint at all. Each failure in a row doubles the rest, so of ten searches in a row at
    // least one skips the endpoint however slow the machine (one, unless it is very slow).
    embedder.freeze(true);
    let before = harness.metrics().await;
    for _ in 0..10 {
        assert!(
            found(&client, "multiply two numbers")
                .await
                .contains(&"math_multiply".to_string())
        );
    }
    let after = harness.metrics().await;
    let failures = counter(&after, "mcplex_tool_search_embedding_failures_total")
        - counter(&before, "mcplex_tool_search_embedding_failures_total");
    let lexical = counter(&after, "mcplex_tool_search_lexical_only_total")
        - counter(&before, "mcplex_tool_search_lexical_only_total");
    assert_eq!(lexical, 10, "every search ranked by words: {after}");
    assert!(
        (1..10).contains(&failures),
        "{failures} of 10 searches asked the hung endpoint"
    );

    // Answering again, it is asked again once the rest is over, and meaning finds what words miss.
    embedder.freeze(false);
    until("a search is ranked by meaning again", || async {
        found(&client, NO_SHARED_WORD).await.first().map(String::as_str) == Some("math_multiply")
    })
    .await;
    client.cancel().await.unwrap();
}

#[test]
fn a_bad_embeddings_config_is_refused_with_its_keys() {
    let yaml = format!(
        "{}toolSearch:\n  embeddings:\n    url: ftp://x/v1/embeddings\n    model: \" \"\n    apiKeyFile: /nonexistent/key\n    timeout: 0s\n",
        config(&[("math", "http://127.0.0.1:9/mcp", "")])
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let problems = match mcplex::config::load(&path) {
        Ok(_) => panic!("the config is refused"),
        Err(e) => e.to_string(),
    };
    for key in [
        "toolSearch.embeddings.url",
        "toolSearch.embeddings.model",
        "toolSearch.embeddings.apiKeyFile",
        "toolSearch.embeddings.timeout",
    ] {
        assert!(problems.contains(key), "{key} in {problems}");
    }
}
