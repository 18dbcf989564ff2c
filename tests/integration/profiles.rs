//! Specialization profiles: one config serves many agent roles; a sidecar started for a profile exposes
//! exactly that profile's targets and tools, and refuses configs that drop its profile.

use crate::support::common::*;
use mcplex_examples::Example;
use serde_json::json;

const PROFILES: &str = "profiles:
  sre:
    targets: [math]
    tools: { allow: [\"math_*\"], deny: [\"math_divide\"] }
  planner:
    targets: [date, math]
";

#[tokio::test]
async fn a_profile_exposes_exactly_its_targets_and_tools() {
    let math = example(Example::Math).await;
    let date = example(Example::Date).await;
    let yaml = config(&[("math", &math.url(), ""), ("date", &date.url(), "")]) + PROFILES;

    let everyone = Harness::start(&yaml).await;
    let client = everyone.legacy_client().await;
    let all = tool_names(&client).await;
    assert!(
        all.iter().any(|n| n.starts_with("date_")) && all.contains(&"math_divide".to_owned()),
        "{all:?}"
    );
    client.cancel().await.unwrap();

    let sre = Harness::start_with(&yaml, |o| o.profile = Some("sre".into())).await;
    let client = sre.legacy_client().await;
    assert_eq!(
        tool_names(&client).await,
        ["math_add", "math_multiply", "math_subtract"],
        "only the profile's targets, without the tools its filter hides"
    );
    assert_eq!(call_text(&client, "math_add", json!({"a": 2, "b": 3})).await, "5");
    for hidden in ["math_divide", "date_now"] {
        let error = call(&client, hidden, json!({})).await.unwrap_err().to_string();
        assert!(error.contains(&format!("unknown tool `{hidden}`")), "{error}");
    }
    client.cancel().await.unwrap();

    // An edit that drops the profile is refused; the sidecar keeps serving the last good config.
    std::fs::write(&sre.config_path, config(&[("math", &math.url(), "")])).unwrap();
    until("the edit is rejected", || async {
        sre.metrics()
            .await
            .contains(r#"mcplex_config_reloads_total{result="rejected"} 1"#)
    })
    .await;
    let client = sre.legacy_client().await;
    assert_eq!(
        tool_names(&client).await,
        ["math_add", "math_multiply", "math_subtract"]
    );
    client.cancel().await.unwrap();
    let metrics = sre.metrics().await;
    assert!(
        metrics.contains(r#"mcplex_config_reloads_total{result="rejected"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_sidecar_for_an_undefined_profile_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let targets = config(&[
        ("math", "http://127.0.0.1:9/mcp", ""),
        ("date", "http://127.0.0.1:9/mcp", ""),
    ]);
    std::fs::write(&path, targets + PROFILES).unwrap();
    let mut options = mcplex::app::Options::new(path);
    options.listen = "127.0.0.1:0".parse().unwrap();
    options.admin = "127.0.0.1:0".parse().unwrap();
    options.profile = Some("devops".into());
    let Err(error) = mcplex::app::Sidecar::start(options).await else {
        panic!("started without its profile")
    };
    let error = error.to_string();
    assert!(
        error.contains("no profile `devops`") && error.contains("planner, sre"),
        "{error}"
    );
}

#[test]
fn profiles_are_validated_with_their_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let yaml = config(&[("math", "http://127.0.0.1:9/mcp", "")])
        + "profiles:\n  Ops:\n    targets: []\n  sre:\n    targets: [math, search]\n    tools: { allow: [\"\"] }\n";
    std::fs::write(&path, yaml).unwrap();
    let error = mcplex::config::load(&path).unwrap_err().to_string();
    for expected in [
        "profiles.Ops: `Ops` is not a DNS label",
        "profiles.Ops.targets: list at least one target",
        "profiles.sre.targets[1]: no target is named `search`",
        "profiles.sre.tools.allow[0]: an empty pattern matches nothing",
    ] {
        assert!(error.contains(expected), "missing {expected:?} in {error}");
    }
}
