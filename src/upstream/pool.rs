//! A target's connection pool, what it connects with (TLS settings, roots, client certificate), and the
//! TLS files it was built from, so that a rotated certificate or a wish for fresh connections needs only
//! what changed.

use crate::config::TargetConfig;
use crate::net::tls::{FileStamps, TlsError};
use crate::net::{Connector, HttpClient, build_connector, pooled};

/// The pool of one target.
pub struct Pool {
    client: HttpClient,
    connector: Connector,
    stamps: FileStamps,
}

impl Pool {
    /// A pool for `config`, reading its TLS files.
    pub fn build(config: &TargetConfig) -> Result<Self, TlsError> {
        let connector = build_connector(config.tls.as_ref(), config.url.scheme_str() == Some("https"))?;
        Ok(Self {
            client: pooled(connector.clone()),
            connector,
            stamps: FileStamps::read(config.tls.as_ref()),
        })
    }

    /// The client (a handle on the pool).
    pub fn client(&self) -> HttpClient {
        self.client.clone()
    }

    /// True when `config`'s TLS files are the ones the pool was built from.
    pub fn is_current(&self, config: &TargetConfig) -> bool {
        self.stamps == FileStamps::read(config.tls.as_ref())
    }

    /// Starts a new, empty pool over the same connector: idle connections close, requests under way
    /// finish on the old one.
    pub fn renew(&mut self) {
        self.client = pooled(self.connector.clone());
    }
}
