//! A target's connection pool and the TLS files it was built from, so that a rotated certificate is
//! noticed and only then a new pool is built.

use crate::config::TargetConfig;
use crate::net::tls::{FileStamps, TlsError};
use crate::net::{HttpClient, build_client};

/// The pool of one target.
pub struct Pool {
    client: HttpClient,
    stamps: FileStamps,
}

impl Pool {
    /// A pool for `config`, reading its TLS files.
    pub fn build(config: &TargetConfig) -> Result<Self, TlsError> {
        Ok(Self {
            client: build_client(config.tls.as_ref(), config.url.scheme_str() == Some("https"))?,
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
}
