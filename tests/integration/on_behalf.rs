//! Inbound identity, On-Behalf-Of token exchange and per-tool policy against a real authorization
//! server (npm `oidc-provider`): callers present its JWTs, mcplex validates them with its JWKS and
//! exchanges them at its token endpoint, and targets verify what they receive with the same keys.

use crate::authz::{self, ACTOR_AUDIENCE, AuthorizationServer, EXCHANGER, MCPLEX_AUDIENCE};
use crate::support::common::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// A modern `tools/call` or `tools/list` with an optional bearer token: status, headers, message.
async fn request(
    url: &str,
    token: Option<&str>,
    method: &str,
    tool: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut params = json!({ "_meta": modern_meta() });
    if let Some(tool) = tool {
        params["name"] = json!(tool);
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = modern_headers(method, tool);
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer));
    }
    let (status, headers, text) = post(url, &headers, &body).await;
    (status, headers, message_of(&text))
}

async fn tools_as(url: &str, token: &str) -> Vec<String> {
    let (status, _, answer) = request(url, Some(token), "tools/list", None).await;
    assert_eq!(status, 200, "{answer}");
    let mut names: Vec<String> = answer["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn text_of(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A target that records every `Authorization` it gets and answers `who` with what it can verify:
/// `<sub>/<act.sub>` of a token the authorization server signed for `audience`, else HTTP 401.
async fn verifying_target(
    server: &AuthorizationServer,
    audience: &'static str,
) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let keys = server.keys().await;
    let issuer = server.issuer.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = seen.clone();
    let url = scripted_target(Arc::new(move |headers: &http::HeaderMap, _: &Value| {
        let presented = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("").to_owned());
        recorder.lock().unwrap().push(presented.clone());
        let token = presented.as_deref().and_then(|h| h.strip_prefix("Bearer "));
        let claims = token
            .and_then(|t| authz::verify(&keys, t, &issuer, audience))
            .ok_or(http::StatusCode::UNAUTHORIZED)?;
        Ok(format!(
            "{}/{}",
            claims["sub"].as_str().unwrap_or("?"),
            claims["act"]["sub"].as_str().unwrap_or("-")
        ))
    }))
    .await;
    (url, seen)
}

#[tokio::test]
async fn callers_without_a_valid_token_are_challenged_and_sessions_stay_with_their_caller() {
    let server = AuthorizationServer::start(json!({"alice": {}, "bob": {}}), &[]).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = seen.clone();
    let url = scripted_target(Arc::new(move |headers: &http::HeaderMap, _: &Value| {
        recorder.lock().unwrap().push(headers.get("authorization").cloned());
        Ok("plain".to_owned())
    }))
    .await;
    let yaml = format!("{}{}", config(&[("plain", &url, "")]), server.inbound_yaml());
    let harness = Harness::start(&yaml).await;
    let endpoint = harness.url();
    let metadata_url = endpoint.replace("/mcp", "/.well-known/oauth-protected-resource/mcp");

    // No token: 401 with a challenge that points at the metadata, which names the issuer.
    let (status, headers, _) = request(&endpoint, None, "tools/list", None).await;
    assert_eq!(status, 401);
    let challenge = headers["www-authenticate"].to_str().unwrap().to_owned();
    assert_eq!(challenge, format!("Bearer resource_metadata=\"{metadata_url}\""));
    let metadata: Value = reqwest::get(&metadata_url).await.unwrap().json().await.unwrap();
    assert_eq!(metadata["resource"], endpoint);
    assert_eq!(metadata["authorization_servers"], json!([server.issuer]));

    // Not a JWT, and a real token minted for another audience: 401 invalid_token, saying why.
    let (status, headers, _) = request(&endpoint, Some("not-a-jwt"), "tools/list", None).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    let elsewhere = server.token("alice", "urn:some-other-api").await;
    let (status, headers, _) = request(&endpoint, Some(&elsewhere), "tools/list", None).await;
    assert_eq!(status, 401);
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("not meant for this server (aud)"), "{challenge}");

    // A valid token: the call goes through, and the target never sees the caller's token.
    let alice = server.token("alice", MCPLEX_AUDIENCE).await;
    let (status, _, answer) = request(&endpoint, Some(&alice), "tools/call", Some("plain_who")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(text_of(&answer), "plain", "{answer}");
    assert!(
        seen.lock().unwrap().iter().all(Option::is_none),
        "a target without auth got a credential"
    );

    // A session-era session belongs to the caller who opened it.
    let bob = server.token("bob", MCPLEX_AUDIENCE).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string();
    let alice_bearer = format!("Bearer {alice}");
    let (status, headers, _) = post(&endpoint, &[("authorization", &alice_bearer)], &initialize).await;
    assert_eq!(status, 200);
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    let bob_bearer = format!("Bearer {bob}");
    let as_bob = [
        ("authorization", bob_bearer.as_str()),
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let (status, _, text) = post(&endpoint, &as_bob, &list).await;
    assert_eq!(status, 403, "{text}");
    let as_alice = [
        ("authorization", alice_bearer.as_str()),
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let (status, _, text) = post(&endpoint, &as_alice, &list).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("plain_who"), "{text}");
}

#[tokio::test]
async fn each_target_gets_a_token_exchanged_for_the_caller_and_nothing_else() {
    let server = AuthorizationServer::start(json!({"alice": {}, "bob": {}, "carol": {}, "pod": {}}), &["carol"]).await;
    let (math_url, math_seen) = verifying_target(&server, "math-mcp").await;
    let (date_url, date_seen) = verifying_target(&server, "date-mcp").await;
    let dir = tempfile::tempdir().unwrap();
    // The pod's own projected token for the authorization server, sent as the exchange's actor.
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    std::fs::write(tokens.join("aud-sts"), server.token("pod", ACTOR_AUDIENCE).await).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, EXCHANGER.1).unwrap();
    let exchange = |audience: &str, endpoint: &str| {
        format!(
            "auth:\n  tokenExchange:\n    tokenEndpoint: {endpoint}\n    audience: {audience}\n    clientId: {}\n    clientSecretFile: {}\n    actorAudience: \"{ACTOR_AUDIENCE}\"\n    actorPath: {}\n",
            EXCHANGER.0,
            secret.display(),
            tokens.display()
        )
    };
    let endpoint = server.token_endpoint();
    let down = silent_url().await.replace("/mcp", "/token");
    let (spare_url, spare_seen) = verifying_target(&server, "spare-mcp").await;
    // A token endpoint that answers 200 with something that is not a token response.
    let liar = scripted_target(Arc::new(|_: &http::HeaderMap, _: &Value| Ok(String::new()))).await;
    let (odd_url, odd_seen) = verifying_target(&server, "odd-mcp").await;
    let yaml = format!(
        "{}{}",
        config(&[
            ("math", &math_url, &exchange("math-mcp", &endpoint)),
            ("date", &date_url, &exchange("date-mcp", &endpoint)),
            ("spare", &spare_url, &exchange("spare-mcp", &down)),
            ("odd", &odd_url, &exchange("odd-mcp", &liar)),
        ]),
        server.inbound_yaml()
    );
    let harness = Harness::start(&yaml).await;
    let url = harness.url();
    let alice = server.token("alice", MCPLEX_AUDIENCE).await;
    let bob = server.token("bob", MCPLEX_AUDIENCE).await;

    // Each target sees the caller as the subject and the pod as the actor, in a token for its own audience.
    let (_, _, answer) = request(&url, Some(&alice), "tools/call", Some("math_who")).await;
    assert_eq!(text_of(&answer), "alice/pod", "{answer}");
    let before = server.exchanges().await;
    let (_, _, answer) = request(&url, Some(&alice), "tools/call", Some("math_who")).await;
    assert_eq!(text_of(&answer), "alice/pod", "{answer}");
    assert_eq!(
        server.exchanges().await,
        before,
        "the second call reuses the cached exchange"
    );
    let (_, _, answer) = request(&url, Some(&alice), "tools/call", Some("date_who")).await;
    assert_eq!(text_of(&answer), "alice/pod", "{answer}");
    let (_, _, answer) = request(&url, Some(&bob), "tools/call", Some("math_who")).await;
    assert_eq!(text_of(&answer), "bob/pod", "{answer}");
    assert_eq!(
        server.exchanges().await,
        before + 2,
        "one exchange per new (caller, target)"
    );

    // A refused exchange fails closed with an error naming the target; the others keep working.
    let carol = server.token("carol", MCPLEX_AUDIENCE).await;
    let (_, _, answer) = request(&url, Some(&carol), "tools/call", Some("math_who")).await;
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(answer["error"]["code"], -32030, "{answer}");
    assert!(
        message.contains("math") && message.contains("invalid_grant"),
        "{message}"
    );
    let (_, _, answer) = request(&url, Some(&alice), "tools/call", Some("date_who")).await;
    assert_eq!(text_of(&answer), "alice/pod", "{answer}");
    // A token endpoint that never answers: that target is down, naming the endpoint; nothing was sent.
    let status = harness.status().await;
    let spare = target_status(&status, "spare");
    assert_eq!(spare["up"], false, "{spare}");
    assert!(spare_seen.lock().unwrap().is_empty());
    let odd = target_status(&status, "odd");
    assert_eq!(odd["up"], false, "{odd}");
    assert!(odd["error"].as_str().unwrap().contains("not a token response"), "{odd}");
    assert!(odd_seen.lock().unwrap().is_empty());

    // No target ever saw a caller's own token or a token meant for another target.
    let keys = server.keys().await;
    for (seen, audience) in [(&math_seen, "math-mcp"), (&date_seen, "date-mcp")] {
        let seen = seen.lock().unwrap().clone();
        assert!(!seen.is_empty());
        for header in seen {
            let token = header
                .as_deref()
                .and_then(|h| h.strip_prefix("Bearer "))
                .expect("a bearer token");
            assert!(token != alice && token != bob && token != carol);
            assert!(
                authz::verify(&keys, token, &server.issuer, audience).is_some(),
                "{audience} got a token for another audience"
            );
        }
    }
}

#[tokio::test]
async fn policy_hides_and_denies_by_caller_claims_and_follows_config_edits() {
    let server = AuthorizationServer::start(
        json!({"alice": {"claims": {"groups": ["sre"]}}, "bob": {"claims": {"groups": ["dev"]}}}),
        &[],
    )
    .await;
    let ops = scripted_target(Arc::new(|_: &http::HeaderMap, _: &Value| Ok("ops".to_owned()))).await;
    let public = scripted_target(Arc::new(|_: &http::HeaderMap, _: &Value| Ok("public".to_owned()))).await;
    let targets = config(&[("ops", &ops, ""), ("public", &public, "")]);
    let policy = |text: &str| {
        format!(
            "policy:\n  cedar: |\n{}",
            text.lines().map(|l| format!("    {l}\n")).collect::<String>()
        )
    };
    let strict = policy(
        "@id(\"sre-runs-ops\")\npermit(principal, action == Action::\"tools/call\", resource)\nwhen { context.target == \"ops\" && context.claims has groups && context.claims.groups.contains(\"sre\") };\n@id(\"public-for-all\")\npermit(principal, action, resource) when { context.target == \"public\" };",
    );
    let yaml = format!("{targets}{}{strict}", server.inbound_yaml());
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let audit = audit_path.clone();
    let harness = Harness::start_with(&yaml, move |options| {
        options.audit.sink = Some(mcplex::audit::AuditSink::File(audit));
    })
    .await;
    let url = harness.url();
    let alice = server.token("alice", MCPLEX_AUDIENCE).await;
    let bob = server.token("bob", MCPLEX_AUDIENCE).await;

    assert_eq!(tools_as(&url, &alice).await, ["ops_who", "public_who"]);
    assert_eq!(tools_as(&url, &bob).await, ["public_who"]);
    let (_, _, answer) = request(&url, Some(&alice), "tools/call", Some("ops_who")).await;
    assert_eq!(text_of(&answer), "ops", "{answer}");
    let (_, _, answer) = request(&url, Some(&bob), "tools/call", Some("ops_who")).await;
    assert_eq!(answer["error"]["code"], -32032, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no permit matched"),
        "{answer}"
    );
    assert!(harness.metrics().await.contains("outcome=\"denied\""));

    // The audit trail says who was refused and by what.
    let denied = eventually("an audit line for the denied call", || async {
        let text = std::fs::read_to_string(&audit_path).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["decision"] == "deny")
    })
    .await;
    assert_eq!(denied["caller"]["subject"], "bob", "{denied}");
    assert_eq!(denied["rule"], "no permit matched", "{denied}");
    assert!(
        !std::fs::read_to_string(&audit_path).unwrap().contains(&bob),
        "a token reached the audit trail"
    );

    // An edit with a syntax error is rejected with its place; the last good policy stays.
    std::fs::write(
        &harness.config_path,
        format!(
            "{targets}{}{}",
            server.inbound_yaml(),
            policy("permit(principal, action resource);")
        ),
    )
    .unwrap();
    until("the broken policy is rejected", || async {
        harness
            .metrics()
            .await
            .contains("mcplex_config_reloads_total{result=\"rejected\"} 1")
    })
    .await;
    assert_eq!(tools_as(&url, &bob).await, ["public_who"]);
    // A good edit applies live.
    std::fs::write(
        &harness.config_path,
        format!(
            "{targets}{}{}",
            server.inbound_yaml(),
            policy("permit(principal, action, resource);")
        ),
    )
    .unwrap();
    let names = eventually("the good policy applies", || async {
        let names = tools_as(&url, &bob).await;
        (names.len() == 2).then_some(names)
    })
    .await;
    assert_eq!(names, ["ops_who", "public_who"]);
}

#[tokio::test]
async fn a_key_file_is_read_again_when_a_token_names_a_key_it_lacks() {
    let server = AuthorizationServer::start(json!({"alice": {}}), &[]).await;
    let target = scripted_target(Arc::new(|_: &http::HeaderMap, _: &Value| Ok("ok".to_owned()))).await;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    // Before the issuer's rotation reaches the mounted file: the same key material under an old id.
    let mut stale = serde_json::to_value(server.keys().await).unwrap();
    stale["keys"][0]["kid"] = json!("retired-key");
    std::fs::write(&jwks, stale.to_string()).unwrap();
    let inbound = format!(
        "inbound:\n  jwt:\n    issuer: {}\n    audiences: [\"{MCPLEX_AUDIENCE}\"]\n    jwks: {{ file: {} }}\n",
        server.issuer,
        jwks.display()
    );
    let harness = Harness::start(&format!("{}{inbound}", config(&[("t", &target, "")]))).await;
    let alice = server.token("alice", MCPLEX_AUDIENCE).await;
    let (status, headers, _) = request(&harness.url(), Some(&alice), "tools/list", None).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("no key of the issuer")
    );
    // The kubelet updates the file; the next token with the unknown kid reads it again (after the
    // refresh pause that keeps forged kids from hammering the source).
    std::fs::write(&jwks, serde_json::to_string(&server.keys().await).unwrap()).unwrap();
    eventually("a token with the new key id is accepted", || async {
        let (status, _, _) = request(&harness.url(), Some(&alice), "tools/list", None).await;
        (status == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn keys_that_cannot_be_had_refuse_with_503_and_name_the_problem() {
    // A JWKS URL that answers JSON which is not a key set.
    let not_keys = scripted_target(Arc::new(|_: &http::HeaderMap, _: &Value| Ok(String::new()))).await;
    let target = scripted_target(Arc::new(|_: &http::HeaderMap, _: &Value| Ok("ok".to_owned()))).await;
    let inbound = format!(
        "inbound:\n  jwt:\n    issuer: https://idp.example\n    audiences: [\"{MCPLEX_AUDIENCE}\"]\n    jwks: {{ url: {not_keys} }}\n"
    );
    let harness = Harness::start(&format!("{}{inbound}", config(&[("t", &target, "")]))).await;
    // A well-formed RS256 token (its signature never gets checked: there are no keys to check it with).
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let token = format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({"alg": "RS256", "kid": "k1"})),
        b64(json!({"iss": "https://idp.example", "sub": "x", "aud": MCPLEX_AUDIENCE, "exp": 4_000_000_000u64}))
    );
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_meta()}}).to_string();
    let bearer = format!("Bearer {token}");
    let mut headers = modern_headers("tools/list", None);
    headers.push(("authorization", &bearer));
    let (status, _, text) = post(&harness.url(), &headers, &body).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("not a JSON Web Key Set"), "{text}");
}

#[tokio::test]
async fn a_parked_call_is_resumed_only_by_the_caller_it_was_parked_for() {
    let server = AuthorizationServer::start(json!({"alice": {}, "bob": {}}), &[]).await;
    let target = everything(mcplex_examples::everything::Versions::LegacyOnly).await;
    let yaml = format!("{}{}", config(&[("old", &target.url(), "")]), server.inbound_yaml());
    let harness = Harness::start(&yaml).await;
    let alice = server.token("alice", MCPLEX_AUDIENCE).await;
    let bob = server.token("bob", MCPLEX_AUDIENCE).await;
    let call = |token: &str, extra: Value| {
        let mut meta = modern_meta();
        meta["io.modelcontextprotocol/clientCapabilities"] = json!({"elicitation": {}});
        let mut params = json!({"name": "old_test_elicitation", "arguments": {"message": "Who?"}, "_meta": meta});
        for (key, value) in extra.as_object().unwrap() {
            params[key] = value.clone();
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).to_string();
        let bearer = format!("Bearer {token}");
        let url = harness.url();
        async move {
            let mut headers = modern_headers("tools/call", Some("old_test_elicitation"));
            headers.push(("authorization", &bearer));
            message_of(&post(&url, &headers, &body).await.2)
        }
    };
    let asked = call(&alice, json!({})).await;
    let state = asked["result"]["requestState"].clone();
    assert!(state.as_str().is_some(), "{asked}");
    let answers = json!({"input": {"action": "accept", "content": {"username": "ada", "email": "a@example.com"}}});
    let stolen = call(&bob, json!({"requestState": state, "inputResponses": answers})).await;
    assert_eq!(stolen["error"]["code"], -32602, "{stolen}");
    assert!(
        stolen["error"]["message"].as_str().unwrap().contains("another caller"),
        "{stolen}"
    );
    let done = call(&alice, json!({"requestState": state, "inputResponses": answers})).await;
    assert!(text_of(&done).contains("ada"), "{done}");
}

#[tokio::test]
async fn work_no_caller_asked_for_uses_the_credential_without_caller_names() {
    // An authorization server that exchanges only callers' tokens, as one that trusts its own tokens does:
    // the pod's token is a fine actor but never a subject.
    let server =
        AuthorizationServer::accepting_subjects(json!({"alice": {}, "pod": {}}), &[], &[MCPLEX_AUDIENCE]).await;
    let (math_url, _) = verifying_target(&server, "math-mcp").await;
    // The client credentials grant of this server takes the target as an RFC 8707 resource (a URI).
    let (date_url, date_seen) = verifying_target(&server, "urn:date-mcp").await;
    let (spare_url, spare_seen) = verifying_target(&server, "urn:spare-mcp").await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    std::fs::write(tokens.join("aud-sts"), server.token("pod", ACTOR_AUDIENCE).await).unwrap();
    // The pod's projected token for the spare target's own audience.
    std::fs::write(tokens.join("aud-spare"), server.token("pod", "urn:spare-mcp").await).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, EXCHANGER.1).unwrap();
    let exchange = |target: &str, without_caller: &str| {
        format!(
            "auth:\n  tokenExchange:\n    tokenEndpoint: {}\n    {target}\n    scope: mcp\n    clientId: {}\n    clientSecretFile: {}\n    actorAudience: \"{ACTOR_AUDIENCE}\"\n    actorPath: {}\n{without_caller}",
            server.token_endpoint(),
            EXCHANGER.0,
            secret.display(),
            tokens.display()
        )
    };
    let spare_token = format!(
        "    withoutCaller: {{ serviceAccountToken: {{ audience: \"urn:spare-mcp\", path: {} }} }}\n",
        tokens.display()
    );
    let yaml = format!(
        "{}{}",
        config(&[
            ("math", &math_url, &exchange("audience: math-mcp", "")),
            (
                "date",
                &date_url,
                &exchange("resource: \"urn:date-mcp\"", "    withoutCaller: clientCredentials\n")
            ),
            (
                "spare",
                &spare_url,
                &exchange("resource: \"urn:spare-mcp\"", &spare_token)
            ),
        ]),
        server.inbound_yaml()
    );
    let harness = Harness::start(&yaml).await;
    let status = harness.status().await;
    // As today: the pod's token exchanged as the subject is refused, and the status says why and what to set.
    let math = target_status(&status, "math");
    assert_eq!(math["up"], false, "{math}");
    let error = math["error"].as_str().unwrap();
    for part in [
        "withoutCaller: exchange",
        "invalid_grant",
        "set auth.tokenExchange.withoutCaller to clientCredentials",
    ] {
        assert!(error.contains(part), "{part} missing from {error}");
    }
    for up in ["date", "spare"] {
        assert_eq!(target_status(&status, up)["up"], true, "{status}");
    }
    // Lists went with mcplex's own client token for the date target, and the pod's own token for the spare one.
    let keys = server.keys().await;
    let subject_of = |header: &Option<String>, audience: &str| {
        let token = header
            .as_deref()
            .and_then(|h| h.strip_prefix("Bearer "))
            .expect("a bearer token");
        authz::verify(&keys, token, &server.issuer, audience).expect("a token for the target")["sub"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let subjects = |seen: &Arc<Mutex<Vec<Option<String>>>>, audience: &str| -> Vec<String> {
        seen.lock().unwrap().iter().map(|h| subject_of(h, audience)).collect()
    };
    for (seen, audience, subject) in [
        (&date_seen, "urn:date-mcp", EXCHANGER.0),
        (&spare_seen, "urn:spare-mcp", "pod"),
    ] {
        let listed_with = subjects(seen, audience);
        assert!(
            !listed_with.is_empty() && listed_with.iter().all(|sub| sub == subject),
            "{audience}: {listed_with:?}"
        );
    }
    // A caller's own call is still exchanged for the caller, with the pod as actor.
    let alice = server.token("alice", MCPLEX_AUDIENCE).await;
    let (_, _, answer) = request(&harness.url(), Some(&alice), "tools/call", Some("date_who")).await;
    assert_eq!(text_of(&answer), "alice/pod", "{answer}");
    let (_, _, answer) = request(&harness.url(), Some(&alice), "tools/call", Some("spare_who")).await;
    assert_eq!(text_of(&answer), "alice/pod", "{answer}");
}

/// Serves `keys` on loopback only to requests with `Authorization: Bearer <token>`, as a Kubernetes API
/// server serves its ServiceAccount issuer's keys only to callers with a token.
async fn jwks_behind_a_token(keys: String, token: &'static str) -> String {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/openid/v1/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let keys = keys.clone();
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let allowed = request
                    .headers()
                    .get("authorization")
                    .is_some_and(|v| v.as_bytes() == format!("Bearer {token}").as_bytes());
                let (status, body) = if allowed {
                    (200, keys.clone())
                } else {
                    (401, "Unauthorized".to_owned())
                };
                let response = http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap();
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
        }
    });
    url
}

#[tokio::test]
async fn a_jwks_url_that_wants_a_token_gets_the_one_in_token_file() {
    let server = AuthorizationServer::start(json!({"alice": {}}), &[]).await;
    let keys = serde_json::to_string(&server.keys().await).unwrap();
    let jwks = jwks_behind_a_token(keys, "pod-token").await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "pod-token\n").unwrap();
    let target = everything(mcplex_examples::everything::Versions::LegacyOnly).await;
    let alice = server.token("alice", MCPLEX_AUDIENCE).await;
    for (token_line, expected) in [
        (format!(", tokenFile: {}", token_file.display()), 200),
        (String::new(), 503),
    ] {
        let inbound = format!(
            "inbound:\n  jwt:\n    issuer: {}\n    audiences: [\"{MCPLEX_AUDIENCE}\"]\n    jwks: {{ url: {jwks}{token_line} }}\n",
            server.issuer
        );
        let harness = Harness::start(&format!("{}{inbound}", config(&[("t", &target.url(), "")]))).await;
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_meta()}});
        let bearer = format!("Bearer {alice}");
        let mut headers = modern_headers("tools/list", None);
        headers.push(("authorization", &bearer));
        let (status, _, text) = post(&harness.url(), &headers, &body.to_string()).await;
        assert_eq!(status, expected, "{token_line}: {text}");
        if expected == 503 {
            assert!(text.contains("401"), "the refusal is named: {text}");
        }
    }
}
