//! Outbound identity: each target receives only the projected token minted for its own audience, never
//! another target's and never the agent's; a target whose audience has no token in the pod is down with
//! an error that says the pod must be restarted.

use crate::support::common::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// Stands in for the cluster's ServiceAccount token issuer: tokens are signed with it, targets verify with it.
const ISSUER_KEY: &[u8] = b"cluster service account issuer key";

fn projected_token(audience: &str, subject: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = json!({"iss": "https://kubernetes.default.svc", "aud": [audience], "sub": subject, "exp": exp});
    let key = jsonwebtoken::EncodingKey::from_secret(ISSUER_KEY);
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

/// A modern-era target that accepts only bearer tokens signed by the issuer for `audience` (HTTP 401
/// otherwise), records every `Authorization` it is sent, and answers `who` with the token's subject.
async fn audience_checking_target(audience: Option<&'static str>) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = seen.clone();
    let url = scripted_target(Arc::new(move |headers: &http::HeaderMap, _: &Value| {
        let presented = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("<not text>").to_owned());
        recorder.lock().unwrap().push(presented.clone());
        let Some(audience) = audience else {
            return Ok("anonymous".to_owned());
        };
        let token = presented.as_deref().and_then(|h| h.strip_prefix("Bearer "));
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_audience(&[audience]);
        let key = jsonwebtoken::DecodingKey::from_secret(ISSUER_KEY);
        token
            .and_then(|token| jsonwebtoken::decode::<Value>(token, &key, &validation).ok())
            .and_then(|data| data.claims["sub"].as_str().map(str::to_owned))
            .ok_or(http::StatusCode::UNAUTHORIZED)
    }))
    .await;
    (url, seen)
}

#[tokio::test]
async fn each_target_gets_only_the_token_minted_for_its_audience() {
    // The pod's projection: one token per audience, plus the kubelet's own bookkeeping entries.
    let tokens = tempfile::tempdir().unwrap();
    let math_token = projected_token("math-mcp", "system:serviceaccount:agents:math-caller");
    let date_token = projected_token("date-mcp", "system:serviceaccount:agents:date-caller");
    std::fs::write(tokens.path().join("aud-math-mcp"), format!("{math_token}\n")).unwrap();
    std::fs::write(tokens.path().join("aud-date-mcp"), &date_token).unwrap();
    std::fs::create_dir(tokens.path().join("..2026_11_25_00_00_00.1")).unwrap();
    let (math_url, math_seen) = audience_checking_target(Some("math-mcp")).await;
    let (date_url, date_seen) = audience_checking_target(Some("date-mcp")).await;
    let (plain_url, plain_seen) = audience_checking_target(None).await;
    let (search_url, search_seen) = audience_checking_target(Some("search-mcp")).await;
    let auth = |audience: &str| {
        format!(
            "auth: {{ serviceAccountToken: {{ audience: {audience}, path: {} }} }}",
            tokens.path().display()
        )
    };
    let yaml = config(&[
        ("math", &math_url, &auth("math-mcp")),
        ("date", &date_url, &auth("date-mcp")),
        ("plain", &plain_url, ""),
        ("search", &search_url, &auth("search-mcp")),
    ]);
    let harness = Harness::start(&yaml).await;

    for (tool, subject) in [
        ("math_who", "system:serviceaccount:agents:math-caller"),
        ("date_who", "system:serviceaccount:agents:date-caller"),
        ("plain_who", "anonymous"),
    ] {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "_meta": modern_meta()}}).to_string();
        let mut headers = modern_headers("tools/call", Some(tool));
        headers.push(("authorization", "Bearer agent-secret"));
        let (status, _, text) = post(&harness.url(), &headers, &body).await;
        assert_eq!(status, 200, "{text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["result"]["content"][0]["text"], subject, "{text}");
    }

    let bearer = |token: &str| Some(format!("Bearer {token}"));
    let math_seen = math_seen.lock().unwrap().clone();
    assert!(!math_seen.is_empty());
    assert!(math_seen.iter().all(|h| *h == bearer(&math_token)), "{math_seen:?}");
    let date_seen = date_seen.lock().unwrap().clone();
    assert!(!date_seen.is_empty());
    assert!(date_seen.iter().all(|h| *h == bearer(&date_token)), "{date_seen:?}");
    let plain_seen = plain_seen.lock().unwrap().clone();
    assert!(!plain_seen.is_empty());
    assert!(plain_seen.iter().all(Option::is_none), "{plain_seen:?}");
    // The target whose audience the pod has no token for is never contacted with anything.
    assert!(search_seen.lock().unwrap().is_empty());

    let status = harness.status().await;
    let search = target_status(&status, "search");
    assert_eq!(search["up"], false, "{search}");
    let error = search["error"].as_str().unwrap();
    assert!(
        error.contains("`search-mcp`") && error.contains("restart the pod"),
        "{error}"
    );
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "math_who", "_meta": modern_meta()}}).to_string();
    let (status, _, _) = post(&harness.url(), &modern_headers("tools/call", Some("math_who")), &body).await;
    assert_eq!(status, 200, "the other targets keep working");
}

#[tokio::test]
async fn a_token_file_minted_for_another_audience_is_never_sent() {
    let tokens = tempfile::tempdir().unwrap();
    let file = tokens.path().join("token");
    std::fs::write(&file, projected_token("date-mcp", "system:serviceaccount:agents:x")).unwrap();
    let (math_url, math_seen) = audience_checking_target(Some("math-mcp")).await;
    let yaml = config(&[(
        "math",
        &math_url,
        &format!(
            "auth: {{ serviceAccountToken: {{ audience: math-mcp, path: {} }} }}",
            file.display()
        ),
    )]);
    let harness = Harness::start(&yaml).await;
    assert!(math_seen.lock().unwrap().is_empty(), "nothing reached the target");
    let status = harness.status().await;
    let error = status["targets"][0]["error"].as_str().unwrap().to_owned();
    assert!(error.contains("date-mcp") && error.contains("`math-mcp`"), "{error}");
}

#[test]
fn passthrough_of_the_agents_token_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let yaml = "targets:\n  - name: math\n    url: http://127.0.0.1:1/mcp\n    auth: { passthrough: true }\n";
    std::fs::write(&path, yaml).unwrap();
    let error = mcplex::config::load(&path).unwrap_err().to_string();
    assert!(error.contains("targets[0].auth.passthrough"), "{error}");
    assert!(error.contains("never forwards the agent's own token"), "{error}");
}
