//! The shipped files agree with the code: kustomizations list what exists, the example ConfigMap is a valid
//! config, and the Dockerfile ships the binaries, user and ports the injected container relies on.

use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    yaml_serde::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn kustomizations_list_every_manifest_and_nothing_else() {
    for dir in ["manifests/webhook", "manifests/examples", "manifests/monitoring"] {
        let dir = root().join(dir);
        let kustomization = documents(&dir.join("kustomization.yaml")).remove(0);
        let mut listed: Vec<String> = kustomization["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect();
        let mut present: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
            .collect();
        listed.sort();
        present.sort();
        assert_eq!(listed, present, "{}", dir.display());
        let namespace = kustomization["namespace"].as_str().unwrap();
        for file in &present {
            for document in documents(&dir.join(file)) {
                if let Some(ns) = document.pointer("/metadata/namespace").and_then(Value::as_str) {
                    assert_eq!(ns, namespace, "{file}");
                }
            }
        }
    }
}

#[test]
fn the_example_configmap_is_a_valid_sidecar_config() {
    let configmap = documents(&root().join("manifests/examples/configmap.yaml")).remove(0);
    let text = configmap["data"]["config.yaml"].as_str().unwrap();
    // The TLS files live in the pod; stand-ins make the readability check meaningful here.
    let tls = tempfile::tempdir().unwrap();
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        std::fs::write(tls.path().join(file), "stand-in").unwrap();
    }
    let text = text.replace("/etc/mcplex/tls", tls.path().to_str().unwrap());
    let config = mcplex::config::parse(&text, Path::new("configmap.yaml")).unwrap();
    let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["math", "date", "time"]);
    assert!(
        config
            .targets
            .iter()
            .all(|t| t.url.scheme_str() == Some("https") && t.tls.as_ref().unwrap().cert.is_some())
    );
}

#[test]
fn the_dockerfile_matches_the_binaries_and_the_injected_container() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    for binary in ["mcplex", "mcplex-webhook", "mcplex-examples"] {
        assert!(
            dockerfile.contains(&format!("/usr/local/bin/{binary}\n")),
            "{binary} not copied"
        );
        assert!(dockerfile.contains(&format!("--bin {binary}")), "{binary} not built");
    }
    // The build stage runs scripts that run others (pgo-build runs bench and release-build): every script
    // a copied script calls must be copied too, and exist.
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter(|line| line.starts_with("COPY scripts/"))
        .flat_map(|line| line.split_whitespace().filter(|word| word.starts_with("scripts/")))
        .collect();
    for script in &copied {
        let text = std::fs::read_to_string(root().join(script))
            .unwrap_or_else(|e| panic!("the Dockerfile copies {script}: {e}"));
        let commands = text.lines().filter(|line| !line.trim_start().starts_with('#'));
        let words = commands.flat_map(|line| line.split(|c: char| c.is_whitespace() || c == '(' || c == '"'));
        for called in words.filter(|word| {
            word.strip_prefix("scripts/")
                .is_some_and(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        }) {
            assert!(
                copied.contains(&called),
                "{script} runs {called}, which the Dockerfile does not copy"
            );
        }
    }
    let user = mcplex_webhook::settings::RUN_AS_USER;
    assert!(
        dockerfile.contains(&format!("USER {user}:{user}")),
        "USER must match the injected runAsUser {user}"
    );
    assert!(dockerfile.contains(&format!("EXPOSE {} 8443", mcplex_webhook::settings::ADMIN_PORT)));
    assert!(
        dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/mcplex\"]"),
        "the injected container passes only args"
    );
    let toolchain = std::process::Command::new("rustc").arg("--version").output().unwrap();
    let rustc = String::from_utf8_lossy(&toolchain.stdout).into_owned();
    let full = rustc.split_whitespace().nth(1).unwrap();
    let version = full
        .rsplit_once('.')
        .map_or(full, |(major_minor, _)| major_minor)
        .to_owned();
    assert!(
        dockerfile.contains(&format!("FROM rust:{version}-bookworm")),
        "build with the toolchain CI uses ({version})"
    );
    let webhook = documents(&root().join("manifests/webhook/deployment.yaml")).remove(0);
    let container = &webhook["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"][0], "/usr/local/bin/mcplex-webhook");
    for example in ["math", "date"] {
        let deployment = documents(&root().join(format!("manifests/examples/{example}.yaml")))
            .into_iter()
            .find(|d| d["kind"] == "Deployment")
            .unwrap();
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["command"][0], "/usr/local/bin/mcplex-examples");
        assert_eq!(container["args"][0], "serve");
        assert_eq!(container["args"][1], example);
    }
    assert_eq!(
        webhook["spec"]["template"]["spec"]["securityContext"]["runAsUser"],
        user
    );
}

#[test]
fn the_example_stdio_server_is_one_the_webhook_can_serve() {
    let deployment = documents(&root().join("manifests/examples/time.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    let pod = &deployment["spec"]["template"];
    let outcome = mcplex_webhook::mutate(pod, &mcplex_webhook::Defaults::default()).expect("the webhook serves it");
    let mcplex_webhook::Outcome::Patch(patch) = outcome else {
        panic!("a patch, not {outcome:?}")
    };
    let mut served = pod.clone();
    json_patch::patch(&mut served, &patch).unwrap();
    let command = &served["spec"]["containers"][0]["command"];
    assert_eq!(command[0], "/mcplex-bin/mcplex");
    assert!(
        command.as_array().unwrap().contains(&serde_json::json!("--client-ca")),
        "{command}"
    );
    assert_eq!(command[command.as_array().unwrap().len() - 1], "mcp-server-time");
    // The Service's port is the one mcplex serve listens on.
    let service = documents(&root().join("manifests/examples/time.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "Service")
        .unwrap();
    assert_eq!(
        served["spec"]["containers"][0]["ports"][0]["containerPort"],
        service["spec"]["ports"][0]["targetPort"]
    );
    assert!(command.as_array().unwrap().contains(&serde_json::json!("--config")));

    // Its config checks tokens for the audience the agent's sidecar sends, with keys fetched with the
    // server pod's own token; the files live in the pod, so stand-ins make the checks meaningful here.
    let serve_config = documents(&root().join("manifests/examples/time.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .unwrap();
    let account = tempfile::tempdir().unwrap();
    for file in ["ca.crt", "token"] {
        std::fs::write(account.path().join(file), "stand-in").unwrap();
    }
    let text = serve_config["data"]["config.yaml"].as_str().unwrap().replace(
        "/var/run/secrets/kubernetes.io/serviceaccount",
        account.path().to_str().unwrap(),
    );
    let config = mcplex::config::parse(&text, Path::new("time.yaml")).unwrap();
    let inbound = config.inbound.expect("inbound.jwt");
    assert_eq!(inbound.audiences, ["time-mcp"]);
    assert!(config.policy.is_some());
    let agent = documents(&root().join("manifests/examples/agent.yaml")).remove(0);
    let audiences = agent["spec"]["template"]["metadata"]["annotations"]["mcplex.dev/token-audiences"]
        .as_str()
        .unwrap();
    assert!(audiences.split(',').any(|a| a.trim() == "time-mcp"), "{audiences}");
    let sidecar = documents(&root().join("manifests/examples/configmap.yaml")).remove(0);
    assert!(
        sidecar["data"]["config.yaml"]
            .as_str()
            .unwrap()
            .contains("serviceAccountToken: { audience: time-mcp }")
    );
}
