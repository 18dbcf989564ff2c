//! Tool pinning against a real upstream whose definitions change between fetches (the everything example's
//! `set_drift`): the pins `mcplex pins` prints are the ones the sidecar checks; a changed, new or removed
//! definition is held back or flagged and told once; clients of both eras see the tool go and come back.

use crate::support::common::*;
use mcplex_examples::everything::Versions;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Output;

/// Runs `mcplex pins` (with `extra` flags) on a config file.
async fn mcplex_pins(config: &Path, extra: &[&str]) -> Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcplex"))
        .arg("pins")
        .args(extra)
        .arg(config)
        .output();
    within("mcplex pins", output).await.expect("mcplex pins runs")
}

/// The `pins:` block `mcplex pins` printed for the first target, as target keys (indented by the caller).
fn first_pins_block(printed: &str) -> String {
    printed
        .lines()
        .skip_while(|l| !l.starts_with("# targets[0]"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect()
}

fn pinning(status: &Value, target: &str) -> Value {
    target_status(status, target)["pinning"].clone()
}

/// The held (or flagged) entries of a target's `/status`, as `(kind, name)`.
fn drifting(status: &Value, target: &str, which: &str) -> Vec<(String, String)> {
    pinning(status, target)[which]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap().into(), d["name"].as_str().unwrap().into()))
        .collect()
}

fn count_events(recorder: &Recorder, kind: &str) -> usize {
    recorder.events().iter().filter(|e| e["kind"] == kind).count()
}

#[tokio::test]
async fn pins_from_mcplex_pins_hold_back_every_kind_of_drift_until_it_reverts() {
    let upstream = everything(Versions::All).await;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, config(&[("ev", &upstream.url(), "")])).unwrap();
    let printed = mcplex_pins(&plain, &[]).await;
    assert!(printed.status.success(), "{printed:?}");
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(printed.contains("# exposed as `ev_test_simple_text`"), "{printed}");
    let block = first_pins_block(&printed);
    assert!(block.starts_with("pins:\n  tools:\n"), "{block}");
    let yaml = config(&[("ev", &upstream.url(), &format!("pinning: enforce\n{block}"))]);
    let pinned_config = dir.path().join("pinned.yaml");
    std::fs::write(&pinned_config, &yaml).unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let audit = audit_path.clone();
    let harness = Harness::start_with(&yaml, move |options| {
        options.audit.sink = Some(mcplex::audit::AuditSink::File(audit));
    })
    .await;
    // A client of each era acts; a third, idle one only hears what the sidecar announces.
    let legacy = harness.legacy_client().await;
    let modern = harness.modern_client().await;
    let watcher = harness.legacy_client().await;
    let watched = watcher.service().clone();
    assert!(tool_names(&modern).await.contains(&"ev_test_simple_text".to_string()));
    assert!(
        pinning(&harness.status().await, "ev")["held"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A poisoned description: the tool and the prompt leave the lists of both eras.
    let announced = count_events(&watched, "tools_list_changed");
    call_text(&modern, "ev_set_drift", json!({"kind": "description"})).await;
    until("the drifted tool leaves the lists", || async {
        !tool_names(&legacy).await.contains(&"ev_test_simple_text".to_string())
    })
    .await;
    assert!(!tool_names(&modern).await.contains(&"ev_test_simple_text".to_string()));
    let prompts = legacy.list_all_prompts().await.unwrap();
    assert!(!prompts.iter().any(|p| p.name == "ev_test_simple_prompt"));
    until("an idle client hears the list changed", || async {
        count_events(&watched, "tools_list_changed") > announced
    })
    .await;
    let status = harness.status().await;
    let expected = [
        ("tool".to_string(), "test_simple_text".to_string()),
        ("prompt".to_string(), "test_simple_prompt".to_string()),
    ];
    assert_eq!(drifting(&status, "ev", "held"), expected);
    let held = pinning(&status, "ev")["held"][0].clone();
    let (pinned, seen) = (
        held["pinnedSha256"].as_str().unwrap(),
        held["seenSha256"].as_str().unwrap(),
    );
    assert!(
        block.contains(&format!("\"test_simple_text\": \"{pinned}\"")),
        "{block}"
    );
    for client in [&legacy, &modern] {
        let refused = call(client, "ev_test_simple_text", json!({})).await.unwrap_err();
        let text = format!("{refused:?}");
        for part in ["-32033", "is held back by pinning", "target `ev`", pinned, seen] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
    }
    let refused = legacy
        .get_prompt(rmcp::model::GetPromptRequestParams::new("ev_test_simple_prompt"))
        .await
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("prompt `ev_test_simple_prompt`"),
        "{refused:?}"
    );
    // What `mcplex pins --check` says of the same target.
    let check = mcplex_pins(&pinned_config, &["--check"]).await;
    assert_eq!(check.status.code(), Some(2), "{check:?}");
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        report.contains(&format!(
            "tool `test_simple_text` differs from its pin (pinned {pinned}, listed {seen})"
        )),
        "{report}"
    );

    // A second change (a new argument) is told again; the prompt is back to its pin.
    call_text(&legacy, "ev_set_drift", json!({"kind": "schema"})).await;
    eventually("the schema change is seen", || async {
        let status = harness.status().await;
        let held = pinning(&status, "ev")["held"].clone();
        (held.as_array()?.len() == 1 && held[0]["seenSha256"] != seen).then_some(())
    })
    .await;
    assert!(
        legacy
            .list_all_prompts()
            .await
            .unwrap()
            .iter()
            .any(|p| p.name == "ev_test_simple_prompt")
    );

    // Reverted: back in every list and callable.
    call_text(&modern, "ev_set_drift", json!({"kind": "none"})).await;
    until("the reverted tool is listed again", || async {
        tool_names(&modern).await.contains(&"ev_test_simple_text".to_string())
    })
    .await;
    assert_eq!(
        call_text(&legacy, "ev_test_simple_text", json!({})).await,
        "This is a simple text response for testing."
    );

    // A tool nobody pinned is held back; when the target drops it again, the drift ends as `removed`.
    call_text(&legacy, "ev_set_drift", json!({"kind": "added"})).await;
    eventually("the new tool is held", || async {
        let status = harness.status().await;
        let held = drifting(&status, "ev", "held");
        (held == [("tool".to_string(), "drifted_in".to_string())]).then_some(())
    })
    .await;
    assert!(!tool_names(&legacy).await.contains(&"ev_drifted_in".to_string()));
    let refused = format!("{:?}", call(&modern, "ev_drifted_in", json!({})).await.unwrap_err());
    assert!(
        refused.contains("it is not pinned") && refused.contains("pins.tools.drifted_in"),
        "{refused}"
    );
    call_text(&modern, "ev_set_drift", json!({"kind": "removed"})).await;
    until("a removed tool is simply gone", || async {
        let status = harness.status().await;
        drifting(&status, "ev", "held").is_empty()
            && !tool_names(&legacy).await.contains(&"ev_test_simple_text".to_string())
    })
    .await;
    call_text(&modern, "ev_set_drift", json!({"kind": "none"})).await;
    until("everything is back", || async {
        tool_names(&legacy).await.contains(&"ev_test_simple_text".to_string())
    })
    .await;
    let check = mcplex_pins(&pinned_config, &["--check"]).await;
    assert!(check.status.success(), "{check:?}");

    // Each change was told once, however many lists showed it.
    let page = harness.metrics().await;
    for (series, count) in [
        (
            r#"mcplex_pin_changes_total{target="ev",kind="tool",action="held"}"#,
            3.0,
        ),
        (
            r#"mcplex_pin_changes_total{target="ev",kind="prompt",action="held"}"#,
            1.0,
        ),
        (
            r#"mcplex_pin_changes_total{target="ev",kind="prompt",action="restored"}"#,
            1.0,
        ),
        (
            r#"mcplex_pin_changes_total{target="ev",kind="tool",action="restored"}"#,
            1.0,
        ),
        (
            r#"mcplex_pin_changes_total{target="ev",kind="tool",action="removed"}"#,
            1.0,
        ),
        (r#"mcplex_pin_drifting{target="ev",kind="tool",action="held"}"#, 0.0),
    ] {
        assert_eq!(metric(&page, series), Some(count), "{series} in\n{page}");
    }
    let lines = eventually("the audit trail has every pin change", || async {
        let text = std::fs::read_to_string(&audit_path).ok()?;
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (lines.iter().filter(|l| l["event"] == "pin").count() >= 7).then_some(lines)
    })
    .await;
    let pin_lines: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["event"] == "pin")
        .map(|l| (l["upstream_name"].as_str().unwrap(), l["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        pin_lines,
        [
            ("test_simple_text", "held"),
            ("test_simple_prompt", "held"),
            ("test_simple_text", "held"),
            ("test_simple_prompt", "restored"),
            ("test_simple_text", "restored"),
            ("drifted_in", "held"),
            ("drifted_in", "removed"),
        ]
    );
    let refusals = lines
        .iter()
        .filter(|l| l["decision"] == "deny" && l["rule"] == "pinning" && l["outcome"] == "denied")
        .count();
    assert_eq!(
        refusals, 4,
        "two calls, a prompt get and the unpinned tool's call: {lines:?}"
    );

    // The platform reviews a change and pins it: the config edit brings the tool back as it is now.
    call_text(&legacy, "ev_set_drift", json!({"kind": "description"})).await;
    let seen = eventually("the change is held again", || async {
        let status = harness.status().await;
        let held = pinning(&status, "ev")["held"].clone();
        held.as_array()?.iter().find(|d| d["name"] == "test_simple_text")?["seenSha256"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    let announced = count_events(&watched, "tools_list_changed");
    let repinned = yaml.replace(
        &format!("\"test_simple_text\": \"{pinned}\""),
        &format!("\"test_simple_text\": \"{seen}\""),
    );
    assert_ne!(repinned, yaml);
    std::fs::write(&harness.config_path, repinned).unwrap();
    until("the re-pinned tool is back, as it is now", || async {
        let tools = legacy.list_all_tools().await.unwrap();
        tools
            .iter()
            .any(|t| t.name == "ev_test_simple_text" && t.description.as_deref().unwrap_or("").contains("id_rsa"))
    })
    .await;
    until("an idle client hears it came back", || async {
        count_events(&watched, "tools_list_changed") > announced
    })
    .await;
    assert_eq!(
        drifting(&harness.status().await, "ev", "held"),
        [("prompt".to_string(), "test_simple_prompt".to_string())],
        "the prompt's pin was not updated"
    );
    for client in [legacy, modern, watcher] {
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn warn_serves_what_it_flags_and_first_sight_pins_survive_a_config_edit() {
    // A server of the session era only: 2026-07-28 clients reach it through mcplex's bridge.
    let upstream = everything(Versions::LegacyOnly).await;
    let url = upstream.url();
    let targets = |held_timeout: &str| {
        config(&[
            ("ev", &url, "pinning: warn"),
            ("h", &url, &format!("pinning: enforce\ntimeout: {held_timeout}")),
        ])
    };
    let harness = Harness::start(&targets("10s")).await;
    // A 2026-07-28 client calls; lists are checked by a session-era one, since a 2026-07-28 client keeps a
    // list for the cache time the list gave.
    let client = harness.modern_client().await;
    let changer = harness.legacy_client().await;
    let names = tool_names(&client).await;
    assert!(names.contains(&"ev_test_simple_text".into()) && names.contains(&"h_test_simple_text".into()));
    let status = harness.status().await;
    assert_eq!(pinning(&status, "h")["pins"], "first-sight");

    // The example tells only the session that called of its change: each target's is called once, by a
    // session-era client (its session hears of the change on its GET stream).
    call_text(&changer, "ev_set_drift", json!({"kind": "description"})).await;
    call_text(&changer, "h_set_drift", json!({"kind": "description"})).await;
    until("the enforcing target holds the tool back", || async {
        !tool_names(&changer).await.contains(&"h_test_simple_text".to_string())
    })
    .await;
    let status = harness.status().await;
    let tool = ("tool".to_string(), "test_simple_text".to_string());
    let prompt = ("prompt".to_string(), "test_simple_prompt".to_string());
    assert_eq!(drifting(&status, "ev", "flagged"), [tool.clone(), prompt.clone()]);
    assert!(drifting(&status, "ev", "held").is_empty());
    assert_eq!(drifting(&status, "h", "held"), [tool.clone(), prompt.clone()]);
    // Flagged, still served: the drifted definition is what clients get.
    let listed = changer.list_all_tools().await.unwrap();
    let flagged = listed.iter().find(|t| t.name == "ev_test_simple_text").unwrap();
    assert!(flagged.description.as_deref().unwrap().contains("id_rsa"));
    assert_eq!(
        call_text(&client, "ev_test_simple_text", json!({})).await,
        "This is a simple text response for testing."
    );
    let refused = format!(
        "{:?}",
        call(&client, "h_test_simple_text", json!({})).await.unwrap_err()
    );
    assert!(refused.contains("changed since this sidecar first saw it"), "{refused}");

    // A config edit replaces the target; what it first listed stays the reference.
    let generation = harness.status().await["generation"].as_u64().unwrap();
    std::fs::write(&harness.config_path, targets("12s")).unwrap();
    until("the edited config is applied", || async {
        harness.status().await["generation"].as_u64().unwrap() > generation
            && target_status(&harness.status().await, "h")["up"] == true
    })
    .await;
    assert_eq!(drifting(&harness.status().await, "h", "held"), [tool.clone(), prompt]);
    assert!(!tool_names(&changer).await.contains(&"h_test_simple_text".to_string()));

    call_text(&changer, "ev_set_drift", json!({"kind": "none"})).await;
    call_text(&changer, "h_set_drift", json!({"kind": "none"})).await;
    until("the reverted tool is back at both targets", || async {
        let names = tool_names(&changer).await;
        names.contains(&"h_test_simple_text".into()) && names.contains(&"ev_test_simple_text".into())
    })
    .await;
    let status = harness.status().await;
    assert!(drifting(&status, "ev", "flagged").is_empty() && drifting(&status, "h", "held").is_empty());
    client.cancel().await.unwrap();
    changer.cancel().await.unwrap();
}
