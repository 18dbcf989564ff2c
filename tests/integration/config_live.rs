//! Live config: the kubelet's atomic ConfigMap swap, invalid edits, in-flight calls across a change.

use crate::support::common::*;
use mcplex_examples::Example;
use mcplex_examples::everything::Versions;
use serde_json::json;
use std::path::Path;

/// Lays out a directory the way the kubelet does: `..<timestamp>/config.yaml`, `..data -> ..<timestamp>`,
/// and `config.yaml -> ..data/config.yaml`.
fn kubelet_write(dir: &Path, generation: u32, text: &str) {
    let versioned = dir.join(format!("..2026_11_24_00_00_0{generation}.000000000"));
    std::fs::create_dir(&versioned).unwrap();
    std::fs::write(versioned.join("config.yaml"), text).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(versioned.file_name().unwrap(), &tmp).unwrap();
    // The swap is a rename over the old link: the file itself is never modified in place.
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    if !dir.join("config.yaml").exists() {
        std::os::unix::fs::symlink("..data/config.yaml", dir.join("config.yaml")).unwrap();
    }
}

async fn wait_for_tool(client: &rmcp::service::RunningService<rmcp::RoleClient, Recorder>, name: &str, present: bool) {
    let what = format!("tool {name} present={present}");
    until(&what, || async {
        tool_names(client).await.contains(&name.to_string()) == present
    })
    .await;
}

#[tokio::test]
async fn a_kubelet_configmap_swap_applies_and_notifies_clients() {
    let math = example(Example::Math).await;
    let date = example(Example::Date).await;
    let dir = tempfile::tempdir().unwrap();
    kubelet_write(dir.path(), 1, &config(&[("math", &math.url(), "")]));
    let config_path = dir.path().join("config.yaml");
    let mut options = mcplex::app::Options::new(config_path);
    options.listen = "127.0.0.1:0".parse().unwrap();
    options.admin = "127.0.0.1:0".parse().unwrap();
    let sidecar = mcplex::app::Sidecar::start(options).await.unwrap();
    let url = format!("http://{}/mcp", sidecar.mcp_addr);
    let client = legacy_client(&url, Recorder::default()).await;
    assert!(!tool_names(&client).await.contains(&"date_today".to_string()));

    kubelet_write(
        dir.path(),
        2,
        &config(&[("math", &math.url(), ""), ("date", &date.url(), "")]),
    );
    wait_for_tool(&client, "date_today", true).await;
    client.service().wait_for("tools_list_changed").await;
    assert_eq!(call_text(&client, "math_add", json!({"a": 1, "b": 2})).await, "3");

    // An invalid edit is reported and the last good config stays live.
    kubelet_write(dir.path(), 3, "targets:\n  - name: Bad Name\n    url: nope\n");
    let metrics = format!("http://{}/metrics", sidecar.admin_addr);
    until("the invalid edit is rejected", || async {
        let page = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        page.contains(r#"mcplex_config_reloads_total{result="rejected"} 1"#)
    })
    .await;
    assert!(tool_names(&client).await.contains(&"date_today".to_string()));

    // A later valid edit that removes a target applies again.
    kubelet_write(dir.path(), 4, &config(&[("date", &date.url(), "")]));
    wait_for_tool(&client, "math_add", false).await;
    client.cancel().await.unwrap();
    sidecar.stop().await;
}

#[tokio::test]
async fn in_flight_calls_survive_a_config_change() {
    let slow = everything(Versions::All).await;
    let math = example(Example::Math).await;
    let harness = Harness::start(&config(&[("slow", &slow.url(), "")])).await;
    let client = harness.modern_client().await;
    let call_started = call(&client, "slow_slow", json!({"ms": 800}));
    let edit = async {
        until("the call is in flight", || async {
            harness
                .metrics()
                .await
                .contains(r#"mcplex_requests_in_flight{target="slow"} 1"#)
        })
        .await;
        // Rename the target: the old one leaves the config while its call is running.
        std::fs::write(
            &harness.config_path,
            config(&[("renamed", &slow.url(), ""), ("math", &math.url(), "")]),
        )
        .unwrap();
    };
    let (result, ()) = tokio::join!(call_started, edit);
    assert!(first_text(&result.expect("the in-flight call completes")).contains("done after 8 steps"));
    wait_for_tool(&client, "renamed_slow", true).await;
    client.cancel().await.unwrap();
}

#[test]
fn check_prints_every_problem_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "targets:\n  - name: ok\n    url: http://ok/mcp\n  - name: ok\n    url: ftp://x\n    timeout: soon\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mcplex"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "targets[1].name: `ok` is used by an earlier target",
        "targets[1].url: `ftp://x` must start with http:// or https://",
        "targets[1].timeout",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in {stderr}");
    }
    std::fs::write(&path, "targets:\n  - name: ok\n    url: http://ok/mcp\n    extra: 1\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mcplex"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("targets[0]") && stderr.contains("unknown field `extra`"),
        "{stderr}"
    );
    std::fs::write(&path, "targets:\n  - name: ok\n    url: http://ok/mcp\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mcplex"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("OK (1 target(s))"));
}
