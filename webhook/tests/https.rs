//! The webhook over real HTTPS: AdmissionReview v1 bodies in, decisions and JSON Patches out, certificate rotation.

use mcplex_webhook::server::{ReloadingCert, serve};
use mcplex_webhook::settings::Defaults;
use rcgen::{CertificateParams, KeyPair};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Writes a self-signed serving certificate for 127.0.0.1 and returns its PEM.
fn write_cert(dir: &Path) -> String {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "mcplex-webhook.mcplex-system.svc".to_string(),
    ])
    .unwrap()
    .self_signed(&key)
    .unwrap();
    std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    cert.pem()
}

fn client_trusting(pem: &str) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

async fn start(dir: &Path) -> String {
    let cert = ReloadingCert::load(&dir.join("tls.crt"), &dir.join("tls.key")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        cert,
        Arc::new(Defaults {
            image: "ghcr.io/mcplex/mcplex:test".into(),
            ..Defaults::default()
        }),
        CancellationToken::new(),
    ));
    format!("https://127.0.0.1:{}", addr.port())
}

/// The webhook's `/metrics` page.
async fn metrics_page(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(format!("{url}/metrics")).send().await.unwrap();
    response.text().await.unwrap()
}

/// An AdmissionReview for a pod created by a ReplicaSet: generateName, no name, as the API server sends it.
fn review(uid: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "requestKind": { "group": "", "version": "v1", "kind": "Pod" },
            "requestResource": { "group": "", "version": "v1", "resource": "pods" },
            "namespace": "agents",
            "operation": "CREATE",
            "userInfo": { "username": "system:serviceaccount:kube-system:replicaset-controller", "groups": ["system:serviceaccounts"] },
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": "agent-5f7c9-",
                    "namespace": "agents",
                    "labels": { "app": "agent" },
                    "annotations": annotations,
                    "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "agent-5f7c9", "uid": "6c1b", "controller": true }]
                },
                "spec": {
                    "containers": [{ "name": "agent", "image": "agent:1", "resources": {}, "x-future-field": { "kept": true } }],
                    "serviceAccountName": "agent",
                    "volumes": [{ "name": "kube-api-access-abcde", "projected": { "sources": [{ "serviceAccountToken": { "path": "token" } }] } }]
                }
            },
            "oldObject": null,
            "dryRun": false,
            "options": { "apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions" }
        }
    })
}

/// The patch of a response, whether kube wrote it as base64 (Go webhooks) or as a byte array (kube-rs).
fn patch_of(response: &Value) -> Option<json_patch::Patch> {
    let bytes: Vec<u8> = match &response["response"]["patch"] {
        Value::Array(bytes) => bytes.iter().map(|b| b.as_u64().unwrap() as u8).collect(),
        Value::Null => return None,
        other => panic!("unexpected patch encoding: {other}"),
    };
    Some(serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn admission_reviews_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let pem = write_cert(dir.path());
    let url = start(dir.path()).await;
    let client = client_trusting(&pem);
    let post = |body: Value| client.post(format!("{url}/mutate")).json(&body).send();

    // Annotated: allowed with a JSON Patch that yields the injected pod.
    let request = review("uid-1", json!({ "mcplex.dev/inject": "true" }));
    let response: Value = post(request.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(response["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(response["kind"], "AdmissionReview");
    assert_eq!(response["response"]["uid"], "uid-1");
    assert_eq!(response["response"]["allowed"], true);
    assert_eq!(response["response"]["patchType"], "JSONPatch");
    let mut pod = request["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch_of(&response).unwrap()).unwrap();
    assert_eq!(pod["spec"]["initContainers"][0]["name"], "mcplex");
    assert_eq!(pod["spec"]["containers"][0]["env"][0]["name"], "MCP_SERVER_URL");
    assert_eq!(pod["spec"]["containers"][0]["x-future-field"]["kept"], true);
    assert_eq!(pod["spec"]["volumes"][0]["name"], "kube-api-access-abcde");
    assert_eq!(
        pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"],
        "agent"
    );
    assert!(
        pod["metadata"]["annotations"]["mcplex.dev/status"]
            .as_str()
            .unwrap()
            .contains("\"initContainers\":[\"mcplex\"]")
    );

    // Already injected (reinvocation): allowed, no patch.
    let mut again = request.clone();
    again["request"]["object"] = pod;
    let response: Value = post(again).await.unwrap().json().await.unwrap();
    assert_eq!(response["response"]["allowed"], true);
    assert!(patch_of(&response).is_none());

    // Not annotated: allowed, no patch.
    let response: Value = post(review("uid-2", json!({}))).await.unwrap().json().await.unwrap();
    assert_eq!(
        (response["response"]["allowed"].as_bool(), patch_of(&response).is_none()),
        (Some(true), true)
    );

    // A bad override: denied with a message naming the annotation.
    let response: Value = post(review(
        "uid-3",
        json!({ "mcplex.dev/inject": "true", "mcplex.dev/memory": "lots" }),
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(response["response"]["allowed"], false);
    let message = response["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("mcplex.dev/memory") && message.contains("lots"),
        "{message}"
    );

    // Malformed bodies: HTTP 400 with a reason, and the server keeps serving.
    for body in [
        "not json",
        "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\"}",
        "[]",
    ] {
        let response = client.post(format!("{url}/mutate")).body(body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        assert!(!response.text().await.unwrap().is_empty());
    }
    assert_eq!(client.get(format!("{url}/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_rotated_serving_certificate_is_used_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = write_cert(dir.path());
    let url = start(dir.path()).await;
    assert_eq!(
        client_trusting(&old)
            .get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let new = write_cert(dir.path());
    // The webhook tells the files apart by their modification time: the new ones are dated later than any
    // it has seen, however fast this machine wrote them.
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    for file in ["tls.crt", "tls.key"] {
        let file = std::fs::File::options()
            .write(true)
            .open(dir.path().join(file))
            .unwrap();
        file.set_modified(later).unwrap();
    }
    // Waits for the condition with one generous deadline: a slow machine makes this slower, never wrong.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A fresh client: a new TLS handshake each time.
        if let Ok(response) = client_trusting(&new).get(format!("{url}/healthz")).send().await {
            assert_eq!(response.status(), 200);
            break;
        }
        assert!(Instant::now() < deadline, "the rotated certificate was never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = metrics_page(&client_trusting(&new), &url).await;
    assert!(
        metrics.contains(r#"mcplex_webhook_certificate_reloads_total{result="ok"} 1"#),
        "{metrics}"
    );
}

/// Each pod the injector cannot make safe, as the API server would send it: the spec change, and words
/// the refusal must contain (the reason and the fix).
fn unsafe_pods() -> Vec<(&'static str, Value, &'static [&'static str])> {
    vec![
        (
            "host network",
            json!({ "hostNetwork": true }),
            &["hostNetwork", "node's loopback", "without hostNetwork"],
        ),
        ("windows", json!({ "os": { "name": "windows" } }), &["Windows", "Linux"]),
        (
            "mcp port taken",
            json!({ "containers": [{ "name": "agent", "image": "agent:1", "ports": [{ "containerPort": 15301 }] }] }),
            &["`agent`", "15301", "mcplex.dev/port"],
        ),
        (
            "admin port taken by an init container",
            json!({ "initContainers": [{ "name": "warmup", "image": "w:1", "ports": [{ "containerPort": 15302 }] }] }),
            &["`warmup`", "15302", "admin port is fixed"],
        ),
        (
            "volume name taken",
            json!({ "volumes": [{ "name": "mcplex-config", "emptyDir": {} }] }),
            &["`mcplex-config`", "rename that volume"],
        ),
        (
            "container named mcplex without the marker",
            json!({ "containers": [{ "name": "agent", "image": "agent:1" }, { "name": "mcplex", "image": "someone-elses:1" }] }),
            &[
                "spec.containers",
                "`mcplex`",
                "mcplex.dev/status",
                "rename that container",
            ],
        ),
    ]
}

#[tokio::test]
async fn pods_that_cannot_be_made_safe_are_denied_with_reason_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let pem = write_cert(dir.path());
    let url = start(dir.path()).await;
    let client = client_trusting(&pem);
    let decide = |request: &Value| {
        let call = client.post(format!("{url}/mutate")).json(request).send();
        async move { call.await.unwrap().json::<Value>().await.unwrap() }
    };
    for (case, change, words) in unsafe_pods() {
        let mut request = review(case, json!({ "mcplex.dev/inject": "true" }));
        let spec = request["request"]["object"]["spec"].as_object_mut().unwrap();
        for (key, value) in change.as_object().unwrap() {
            spec.insert(key.clone(), value.clone());
        }
        let response = decide(&request).await;
        assert_eq!(response["response"]["uid"], case);
        assert_eq!(response["response"]["allowed"], false, "{case}: {response}");
        assert!(patch_of(&response).is_none(), "{case}");
        let message = response["response"]["status"]["message"].as_str().unwrap();
        for word in words {
            assert!(message.contains(word), "{case}: {message:?} lacks {word:?}");
        }
    }
    // A ConfigMap outside the names the platform allows.
    let request = review(
        "config",
        json!({ "mcplex.dev/inject": "true", "mcplex.dev/config": "my-own-targets" }),
    );
    let response = decide(&request).await;
    assert_eq!(response["response"]["allowed"], false);
    let message = response["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("my-own-targets") && message.contains("`mcplex-*`"),
        "{message}"
    );
    // Allowed names: the default and the prefix followed by `-`.
    for allowed in ["mcplex", "mcplex-sre"] {
        let request = review(
            allowed,
            json!({ "mcplex.dev/inject": "true", "mcplex.dev/config": allowed }),
        );
        let response = decide(&request).await;
        assert_eq!(response["response"]["allowed"], true, "{allowed}");
    }
    // Every decision above is counted by outcome and reason.
    let metrics = metrics_page(&client, &url).await;
    for (outcome, reason, count) in [
        ("denied", "host_network", 1),
        ("denied", "windows", 1),
        ("denied", "port_taken", 2),
        ("denied", "volume_taken", 1),
        ("denied", "container_name_taken", 1),
        ("denied", "config_map_not_allowed", 1),
        ("injected", "annotated", 2),
    ] {
        let series = format!(r#"mcplex_webhook_admissions_total{{outcome="{outcome}",reason="{reason}"}} {count}"#);
        assert!(metrics.contains(&series), "{series} missing: {metrics}");
    }
    assert!(
        metrics.contains("mcplex_webhook_decision_duration_seconds_count 9"),
        "{metrics}"
    );
}

#[test]
fn inject_refuses_the_same_pods_and_names_the_document() {
    for (case, change, words) in unsafe_pods() {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "agent", "annotations": { "mcplex.dev/inject": "true" } },
            "spec": { "containers": [{ "name": "agent", "image": "agent:1" }] }
        });
        let spec = pod["spec"].as_object_mut().unwrap();
        for (key, value) in change.as_object().unwrap() {
            spec.insert(key.clone(), value.clone());
        }
        let yaml = yaml_serde::to_string(&pod).unwrap();
        let Err(error) = mcplex_webhook::inject::inject(&yaml, &Defaults::default()) else {
            panic!("{case}: injected")
        };
        let error = error.to_string();
        assert!(error.contains("agent"), "{case}: {error}");
        for word in words {
            assert!(error.contains(word), "{case}: {error:?} lacks {word:?}");
        }
    }
}

#[tokio::test]
async fn a_served_stdio_server_over_https_gets_mcplex_serve_or_the_reason_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let pem = write_cert(dir.path());
    let url = start(dir.path()).await;
    let client = client_trusting(&pem);
    let decide = |request: Value| {
        let call = client.post(format!("{url}/mutate")).json(&request).send();
        async move { call.await.unwrap().json::<Value>().await.unwrap() }
    };
    let serve = json!({ "mcplex.dev/serve": "stdio", "mcplex.dev/serve-tls-secret": "time-tls" });
    let mut request = review("uid-s", serve);
    request["request"]["object"]["spec"]["containers"][0]["command"] = json!(["uvx", "mcp-server-time"]);
    let response = decide(request.clone()).await;
    assert_eq!(response["response"]["allowed"], true, "{response}");
    let mut pod = request["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch_of(&response).unwrap()).unwrap();
    let command = &pod["spec"]["containers"][0]["command"];
    assert_eq!(command[0], "/mcplex-bin/mcplex");
    assert_eq!(command[command.as_array().unwrap().len() - 1], "mcp-server-time");
    assert_eq!(pod["spec"]["initContainers"][0]["name"], "mcplex-install");
    // Unknown fields of the pod survive.
    assert_eq!(pod["spec"]["containers"][0]["x-future-field"]["kept"], true);

    // The same pod without a command: denied, with the reason and the fix.
    let mut request = review(
        "uid-t",
        json!({ "mcplex.dev/serve": "stdio", "mcplex.dev/serve-tls-secret": "t" }),
    );
    request["request"]["object"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("command");
    let response = decide(request).await;
    assert_eq!(response["response"]["allowed"], false, "{response}");
    let message = response["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("no command") && message.contains("set command"),
        "{message}"
    );

    // `http`: mcplex serve fronts the container's port as a native sidecar; a pod whose port is unclear
    // is denied, naming the annotation that settles it.
    let mut request = review(
        "uid-h",
        json!({ "mcplex.dev/serve": "http", "mcplex.dev/serve-config": "c", "mcplex.dev/serve-upstream-port": "8080" }),
    );
    let response = decide(request.clone()).await;
    assert_eq!(response["response"]["allowed"], true, "{response}");
    let mut pod = request["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch_of(&response).unwrap()).unwrap();
    let front = &pod["spec"]["initContainers"][0];
    assert_eq!(front["name"], "mcplex-serve");
    assert!(
        front["args"]
            .as_array()
            .unwrap()
            .contains(&json!("http://127.0.0.1:8080/mcp"))
    );
    request["request"]["object"]["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("mcplex.dev/serve-upstream-port");
    request["request"]["object"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 8080}, {"containerPort": 9090}]);
    let response = decide(request).await;
    assert_eq!(response["response"]["allowed"], false, "{response}");
    let message = response["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("mcplex.dev/serve-upstream-port"), "{message}");
}
