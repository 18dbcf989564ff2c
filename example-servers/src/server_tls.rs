//! rustls server configs for the example servers (and test fixtures): certificate, key, optional client CA.

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Why a server TLS config could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {reason}")]
pub struct ServerTlsError {
    what: &'static str,
    path: String,
    reason: String,
}

/// Builds a server config; with `client_ca`, clients must present a certificate it signed (mTLS).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, ServerTlsError> {
    mcplex::net::tls::install_crypto_provider();
    let fail = |what: &'static str, path: &Path, reason: String| ServerTlsError {
        what,
        path: path.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail("certificate", cert, e.to_string()))?;
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| fail("private key", key, e.to_string()))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| fail("client CA", ca, e.to_string()))? {
                roots
                    .add(cert.map_err(|e| fail("client CA", ca, e.to_string()))?)
                    .map_err(|e| fail("client CA", ca, e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| fail("client CA", ca, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, private_key)
        .map_err(|e| fail("certificate and key", cert, e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
