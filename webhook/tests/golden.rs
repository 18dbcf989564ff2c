//! Golden tests of `inject` on realistic inputs, plus invariants checked on the injected pods themselves.
//! `UPDATE_GOLDEN=1 cargo test -p mcplex-webhook --test golden` rewrites the `.injected.yaml` files (review the diff).

use mcplex_webhook::inject::inject;
use mcplex_webhook::settings::Defaults;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

const CASES: [&str; 8] = [
    "serve-http",
    "token-audiences",
    "deployment",
    "cronjob",
    "existing-init-and-volumes",
    "bare-pod",
    "every-override",
    "not-annotated",
];

fn defaults() -> Defaults {
    Defaults {
        image: "ghcr.io/mcplex/mcplex:test".into(),
        ..Defaults::default()
    }
}

fn documents(yaml: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn pod_spec(document: &Value) -> &Value {
    let path = match document["kind"].as_str().unwrap() {
        "Pod" => "",
        "CronJob" => "/spec/jobTemplate/spec/template",
        _ => "/spec/template",
    };
    document.pointer(path).unwrap()
}

#[test]
fn injected_output_matches_the_reviewed_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for case in CASES {
        let input = std::fs::read_to_string(dir.join(format!("{case}.yaml"))).unwrap();
        let output = inject(&input, &defaults()).unwrap().yaml;
        let golden = dir.join(format!("{case}.injected.yaml"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &output).unwrap();
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        assert_eq!(
            documents(&output),
            documents(&expected),
            "{case}: output differs from {}",
            golden.display()
        );
        // Mutating twice is mutating once.
        assert_eq!(
            inject(&output, &defaults()).unwrap().yaml,
            output,
            "{case} is not idempotent"
        );
    }
}

#[test]
fn injected_pods_have_the_sidecar_first_and_apps_know_the_endpoint() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for case in ["deployment", "cronjob", "existing-init-and-volumes", "bare-pod"] {
        let input = std::fs::read_to_string(dir.join(format!("{case}.yaml"))).unwrap();
        let before = documents(&input).remove(0);
        let after = documents(&inject(&input, &defaults()).unwrap().yaml).remove(0);
        let template = pod_spec(&after);
        let sidecar = &template["spec"]["initContainers"][0];
        assert_eq!(sidecar["name"], "mcplex", "{case}");
        assert_eq!(sidecar["restartPolicy"], "Always", "{case}");
        assert_eq!(sidecar["startupProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(sidecar["securityContext"]["capabilities"]["drop"][0], "ALL");
        let earlier_inits = pod_spec(&before)["spec"]["initContainers"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(
            template["spec"]["initContainers"].as_array().unwrap().len(),
            earlier_inits + 1,
            "{case}"
        );
        for container in template["spec"]["containers"].as_array().unwrap() {
            let urls: Vec<&Value> = container["env"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["name"] == "MCP_SERVER_URL")
                .map(|e| &e["value"])
                .collect();
            assert_eq!(urls.len(), 1, "{case}: {container}");
        }
        let config_volume = template["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "mcplex-config")
            .unwrap();
        assert!(config_volume["configMap"]["name"].is_string());
        let mount = sidecar["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "mcplex-config")
            .unwrap();
        assert!(mount.get("subPath").is_none(), "a subPath mount never updates");
        // Everything the input had is still there.
        for (key, value) in pod_spec(&before)["spec"].as_object().unwrap() {
            if !matches!(key.as_str(), "containers" | "initContainers" | "volumes") {
                assert_eq!(&template["spec"][key], value, "{case}: {key} changed");
            }
        }
    }
}

#[test]
fn the_override_annotations_reach_the_container() {
    let input = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/every-override.yaml"))
        .unwrap();
    let after = documents(&inject(&input, &defaults()).unwrap().yaml).remove(0);
    let spec = &after["spec"]["template"]["spec"];
    assert!(
        spec.get("initContainers").is_none(),
        "native-sidecar false keeps it a regular container"
    );
    let sidecar = &spec["containers"][0];
    assert_eq!(sidecar["name"], "mcplex");
    assert!(
        sidecar["image"]
            .as_str()
            .unwrap()
            .ends_with("@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    );
    let args: Vec<&str> = sidecar["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--listen", "127.0.0.1:16001"]),
        "{args:?}"
    );
    assert!(args.windows(2).any(|w| w == ["--log-level", "debug"]), "{args:?}");
    // The profile is a `run` option, so it must come after the subcommand.
    let run = args.iter().position(|a| *a == "run").unwrap();
    assert!(args[run..].windows(2).any(|w| w == ["--profile", "sre"]), "{args:?}");
    assert_eq!(sidecar["resources"]["requests"]["cpu"], "200m");
    assert_eq!(sidecar["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(spec["containers"][1]["env"][0]["value"], "http://127.0.0.1:16001/mcp");
    let volumes: Vec<&str> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(volumes, ["mcplex-config", "mcplex-tls", "mcplex-token"]);
    assert_eq!(spec["volumes"][0]["configMap"]["name"], "mcplex-platform-targets");
    assert_eq!(
        spec["volumes"][2]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "tools.example"
    );
}

#[test]
fn bad_input_is_refused_with_the_document_number() {
    let error = inject("kind: ConfigMap\n---\nkind: Pod\nmetadata: [unclosed\n", &defaults())
        .err()
        .unwrap()
        .to_string();
    assert!(error.starts_with("document 2: invalid YAML"), "{error}");
    let bad_port = "kind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {mcplex.dev/inject: \"true\", mcplex.dev/port: \"99999\"}\nspec:\n  containers: [{name: a, image: a}]\n";
    let error = inject(bad_port, &defaults()).err().unwrap().to_string();
    assert!(
        error.contains("document 2 (Pod p)") && error.contains("mcplex.dev/port") && error.contains("99999"),
        "{error}"
    );
    let no_spec = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n";
    let error = inject(no_spec, &defaults()).err().unwrap().to_string();
    assert!(
        error.contains("document 1 (Deployment d)") && error.contains("not a pod"),
        "{error}"
    );
}

#[test]
fn an_http_server_gets_mcplex_serve_in_front_as_a_native_sidecar_and_keeps_its_own_container() {
    let input =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/serve-http.yaml")).unwrap();
    let before = documents(&input).remove(0);
    let after = documents(&inject(&input, &defaults()).unwrap().yaml).remove(0);
    let spec = &after["spec"]["template"]["spec"];
    assert_eq!(spec["containers"], before["spec"]["template"]["spec"]["containers"]);
    let front = &spec["initContainers"][0];
    assert_eq!(front["name"], "mcplex-serve");
    assert_eq!(front["restartPolicy"], "Always");
    let args: Vec<&str> = front["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let upstream = args.iter().position(|a| *a == "--upstream").unwrap();
    assert_eq!(args[upstream + 1], "http://127.0.0.1:8080/mcp");
    assert!(
        args.windows(2)
            .any(|w| w == ["--caller-header", "sub=X-Forwarded-User"])
    );
    assert!(args.contains(&"--client-ca") && args.contains(&"--config"));
    assert_eq!(front["ports"][0]["containerPort"], 15310);
}
