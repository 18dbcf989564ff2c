//! Upstream TLS and mTLS with certificates made for the test, and rotation of the client certificate.

use crate::support::common::*;
use crate::support::pki::Pki;
use mcplex_examples::everything::Everything;
use rcgen::ExtendedKeyUsagePurpose;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

async fn mtls_server(dir: &Path, pki: &Pki) -> String {
    pki.leaf(
        dir,
        "server",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    pki.write_ca(&dir.join("server-trusts.crt"));
    let tls = mcplex_examples::server_tls::server_config(
        &dir.join("server.crt"),
        &dir.join("server.key"),
        Some(&dir.join("server-trusts.crt")),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Everything::new();
    tokio::spawn(mcplex_examples::serve_handler(
        listener,
        Some(tls),
        move || server.clone(),
        CancellationToken::new(),
    ));
    format!("https://127.0.0.1:{}/mcp", addr.port())
}

#[tokio::test]
async fn mtls_targets_work_and_a_missing_client_certificate_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let url = mtls_server(dir.path(), &pki).await;
    pki.write_ca(&dir.path().join("ca.crt"));
    pki.leaf(dir.path(), "client", &["agent"], ExtendedKeyUsagePurpose::ClientAuth);
    let d = dir.path().display();
    let yaml = config(&[
        (
            "secure",
            &url,
            &format!("tls: {{ ca: {d}/ca.crt, cert: {d}/client.crt, key: {d}/client.key }}"),
        ),
        ("anonymous", &url, &format!("tls: {{ ca: {d}/ca.crt }}\ntimeout: 2s")),
    ]);
    let harness = Harness::start(&yaml).await;
    let client = harness.legacy_client().await;
    assert_eq!(
        call_text(&client, "secure_test_simple_text", json!({})).await,
        "This is a simple text response for testing."
    );
    assert_down(&harness.status().await, 1, "target `anonymous`");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_rotated_client_certificate_is_picked_up_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let url = mtls_server(dir.path(), &pki).await;
    pki.write_ca(&dir.path().join("ca.crt"));
    // Start with a client certificate from a CA the server does not trust.
    Pki::new().leaf(dir.path(), "client", &["agent"], ExtendedKeyUsagePurpose::ClientAuth);
    let d = dir.path().display();
    let harness = Harness::start(&config(&[(
        "secure",
        &url,
        &format!("tls: {{ ca: {d}/ca.crt, cert: {d}/client.crt, key: {d}/client.key }}"),
    )]))
    .await;
    assert_eq!(harness.status().await["targets"][0]["up"], false);
    pki.leaf(dir.path(), "client", &["agent"], ExtendedKeyUsagePurpose::ClientAuth);
    // The files are told apart by their modification time: the new ones are dated later than any the
    // sidecar has seen, however fast this machine wrote them.
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    for file in ["client.crt", "client.key"] {
        std::fs::File::options()
            .write(true)
            .open(dir.path().join(file))
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
    until("the new certificate is used", || async {
        harness.status().await["targets"][0]["up"] == true
    })
    .await;
    let client = harness.modern_client().await;
    assert_eq!(
        call_text(&client, "secure_test_simple_text", json!({})).await,
        "This is a simple text response for testing."
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_server_certificate_the_target_does_not_trust_is_a_tls_handshake_failure() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let url = mtls_server(dir.path(), &pki).await;
    // Trust another CA than the one that signed the server's certificate.
    let stranger = Pki::new();
    stranger.write_ca(&dir.path().join("other-ca.crt"));
    let d = dir.path().display();
    let yaml = config(&[("distrustful", &url, &format!("tls: {{ ca: {d}/other-ca.crt }}"))]);
    let harness = Harness::start(&yaml).await;
    assert_down(&harness.status().await, 0, "failed the TLS handshake");
    let metrics = harness.metrics().await;
    assert!(
        metrics.contains(r#"mcplex_upstream_errors_total{target="distrustful",kind="tls_handshake"}"#),
        "{metrics}"
    );
}
