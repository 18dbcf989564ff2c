//! rustls client configs for targets: CA bundle, optional client certificate, and change detection.

use crate::config::schema::TlsSpec;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why a target's TLS settings could not be turned into a client config.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or held no usable item.
    #[error("{what} file {path}: {reason}")]
    Pem {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the certificate or key.
    #[error("rustls rejected the TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Installs the one crypto provider the whole process uses (aws-lc-rs); safe to call twice.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// TLS sessions a target's client keeps for resumption (one server name, sometimes a few addresses).
const TLS_SESSIONS_PER_TARGET: usize = 4;

/// Builds the client config for a target; without a CA file an `https` target trusts the system roots.
/// A plain `http` target gets an empty trust store: it never handshakes, so loading roots would only cost memory.
pub fn client_config(tls: Option<&TlsSpec>, https: bool) -> Result<rustls::ClientConfig, TlsError> {
    install_crypto_provider();
    let roots = match tls.and_then(|t| t.ca.as_deref()) {
        Some(ca) => roots_from_file(ca)?,
        None if https => system_roots(),
        None => RootCertStore::empty(),
    };
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match tls.and_then(|t| t.cert.as_deref().zip(t.key.as_deref())) {
        Some((cert, key)) => {
            let chain = read_certs(cert, "client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
                what: "private key",
                path: key.to_owned(),
                reason: e.to_string(),
            })?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    // rustls's default keeps sessions for 256 servers, in tables allocated up front, in every config; a
    // config here reaches one target, so a few entries do, and a plain `http` target needs none.
    config.resumption = if https {
        rustls::client::Resumption::in_memory_sessions(TLS_SESSIONS_PER_TARGET)
    } else {
        rustls::client::Resumption::disabled()
    };
    Ok(config)
}

/// The command-line flags of a server that may speak TLS, and with a client CA mTLS (`mcplex serve` and the
/// example servers take the same ones).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerTlsFlags {
    /// Serve over TLS with this certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Accept only clients with a certificate this CA signed (mTLS).
    #[arg(long, requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
}

impl ServerTlsFlags {
    /// The server config the flags ask for; `None` without `--tls-cert` (plain HTTP).
    pub fn config(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, TlsError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        server_config(cert, key, self.client_ca.as_deref()).map(|c| Some(std::sync::Arc::new(c)))
    }
}

/// Builds a server config from a certificate chain and key; with `client_ca`, every client must present a
/// certificate that CA signed (mTLS), which is how `mcplex serve` checks its callers at the TLS layer.
pub fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<rustls::ServerConfig, TlsError> {
    install_crypto_provider();
    let chain = read_certs(cert, "certificate")?;
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
        what: "private key",
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder(std::sync::Arc::new(roots_from_file(ca)?))
                .build()
                .map_err(|e| TlsError::Pem {
                    what: "client CA",
                    path: ca.to_owned(),
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, private_key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path, "CA bundle")? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            what: "CA bundle",
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |reason: String| TlsError::Pem {
        what,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("holds no CERTIFICATE block".into()));
    }
    Ok(certs)
}

fn system_roots() -> RootCertStore {
    static SYSTEM_ROOTS: std::sync::OnceLock<RootCertStore> = std::sync::OnceLock::new();
    SYSTEM_ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            roots
        })
        .clone()
}

/// Modification times of a target's TLS files, compared to notice rotation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileStamps(Vec<Option<SystemTime>>);

impl FileStamps {
    /// Reads the current modification times of every file named in `tls`.
    pub fn read(tls: Option<&TlsSpec>) -> Self {
        let Some(tls) = tls else { return Self::default() };
        let stamp = |p: &Option<PathBuf>| {
            p.as_ref()
                .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        };
        Self(vec![stamp(&tls.ca), stamp(&tls.cert), stamp(&tls.key)])
    }
}
