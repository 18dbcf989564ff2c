//! rustls server configs for the example servers (and test fixtures): certificate, key, optional client CA,
//! built by mcplex's own `net::tls::server_config`.

use std::path::Path;
use std::sync::Arc;

/// Why a server TLS config could not be built.
pub type ServerTlsError = mcplex::net::tls::TlsError;

/// Builds a server config; with `client_ca`, clients must present a certificate it signed (mTLS).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, ServerTlsError> {
    mcplex::net::tls::server_config(cert, key, client_ca).map(Arc::new)
}
