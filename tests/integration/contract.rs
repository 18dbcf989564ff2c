//! Contract between the webhook and the sidecar: run the real `mcplex` binary with exactly the args, env and
//! mounts the injected container declares (mount paths mapped to temp dirs, ports to free ones) and check
//! that its probes and `MCP_SERVER_URL` answer.

use crate::support::common::*;
use mcplex_examples::Example;
use mcplex_webhook::{Defaults, Outcome, mutate};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_injected_container_spec_runs_the_real_sidecar() {
    let math = example(Example::Math).await;
    let mut pod = json!({
        "metadata": { "name": "agent", "annotations": { "mcplex.dev/inject": "true", "mcplex.dev/tls-secret": "agent-mtls", "mcplex.dev/token-audience": "tools", "mcplex.dev/profile": "sre" } },
        "spec": { "containers": [{ "name": "agent", "image": "agent:1" }] }
    });
    let Outcome::Patch(patch) = mutate(&pod, &Defaults::default()).unwrap() else {
        panic!("not injected")
    };
    json_patch::patch(&mut pod, &patch).unwrap();
    let sidecar = &pod["spec"]["initContainers"][0];
    let token_mount = sidecar["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "mcplex-token")
        .unwrap();
    assert_eq!(
        token_mount["mountPath"],
        mcplex::upstream::credentials::DEFAULT_TOKEN_DIR,
        "the sidecar searches for tokens where the webhook projects them"
    );

    // Every declared mount becomes a temp dir; the ConfigMap one gets a config.yaml.
    let root = tempfile::tempdir().unwrap();
    let mut mounts: HashMap<String, std::path::PathBuf> = HashMap::new();
    for mount in sidecar["volumeMounts"].as_array().unwrap() {
        let local = root.path().join(mount["name"].as_str().unwrap());
        std::fs::create_dir_all(&local).unwrap();
        mounts.insert(mount["mountPath"].as_str().unwrap().to_owned(), local);
    }
    std::fs::write(
        mounts["/etc/mcplex/config"].join("config.yaml"),
        config(&[("math", &math.url(), "")]) + "profiles:\n  sre:\n    targets: [math]\n",
    )
    .unwrap();
    let (mcp_port, admin_port) = (free_port(), free_port());
    let map = |text: &str| -> String {
        let mut text = text
            .replace(":15301", &format!(":{mcp_port}"))
            .replace("0.0.0.0:15302", &format!("127.0.0.1:{admin_port}"));
        for (path, local) in &mounts {
            if let Some(rest) = text.strip_prefix(path.as_str()) {
                text = format!("{}{rest}", local.display());
            }
        }
        text
    };
    let args: Vec<String> = sidecar["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| map(a.as_str().unwrap()))
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcplex"))
        .args(&args)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let probe_url = |probe: &Value| {
        assert_eq!(probe["httpGet"]["port"], 15302, "probes target the admin port");
        format!(
            "http://127.0.0.1:{admin_port}{}",
            probe["httpGet"]["path"].as_str().unwrap()
        )
    };
    let startup = probe_url(&sidecar["startupProbe"]);
    until("the startup probe passes", || async {
        reqwest::get(&startup).await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            reqwest::get(probe_url(&sidecar[probe])).await.unwrap().status(),
            200,
            "{probe}"
        );
    }
    let endpoint = pod["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "MCP_SERVER_URL")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(endpoint, "http://127.0.0.1:15301/mcp");
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_meta()}}).to_string();
    let (status, _, text) = post(&map(&endpoint), &modern_headers("tools/list", None), &body).await;
    assert_eq!(status, 200);
    assert!(text.contains("\"math_add\""), "{text}");
    let _ = child.kill();
    let _ = child.wait();
}
