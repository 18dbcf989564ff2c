//! Outbound credentials: a header value read from a file, cached and re-read periodically.

use crate::config::schema::AuthSpec;
use http::{HeaderName, HeaderValue};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where the webhook projects the pod's ServiceAccount token.
pub const DEFAULT_TOKEN_PATH: &str = "/var/run/secrets/mcplex/token";

/// How long a read credential is used before the file is read again (the kubelet rotates tokens).
const REFRESH_AFTER: Duration = Duration::from_secs(30);

/// Why a credential file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The file could not be read.
    #[error("cannot read credential file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file holds bytes a header value cannot carry.
    #[error("credential file {path} holds characters not allowed in a header")]
    NotHeaderText {
        /// The file.
        path: PathBuf,
    },
}

/// The credential one target presents.
pub struct Credentials {
    source: Option<(HeaderName, PathBuf, &'static str)>,
    passthrough: bool,
    cached: Mutex<Option<(Instant, HeaderValue)>>,
}

impl Credentials {
    /// Prepares the credential named by the target's `auth`.
    pub fn new(auth: Option<&AuthSpec>) -> Self {
        let token = auth.and_then(|a| a.service_account_token.as_ref()).map(|token| {
            (
                http::header::AUTHORIZATION,
                token.path.clone().unwrap_or_else(|| DEFAULT_TOKEN_PATH.into()),
                "Bearer ",
            )
        });
        let header = auth.and_then(|a| a.header.as_ref()).and_then(|h| {
            HeaderName::from_bytes(h.name.as_bytes())
                .ok()
                .map(|name| (name, h.value_file.clone(), ""))
        });
        let passthrough = auth.and_then(|a| a.passthrough).unwrap_or(false);
        Self {
            source: token.or(header),
            passthrough,
            cached: Mutex::new(None),
        }
    }

    /// True when the agent's own `Authorization` header should be forwarded.
    pub fn passthrough(&self) -> bool {
        self.passthrough
    }

    /// The header to add, reading the file when the cached value is stale. The file is small and local
    /// (a projected volume), so it is read synchronously under the cache lock.
    pub fn header(&self) -> Result<Option<(HeaderName, HeaderValue)>, CredentialError> {
        let Some((name, path, scheme)) = &self.source else {
            return Ok(None);
        };
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((read_at, value)) = cached.as_ref()
            && read_at.elapsed() < REFRESH_AFTER
        {
            return Ok(Some((name.clone(), value.clone())));
        }
        let text = std::fs::read_to_string(path).map_err(|source| CredentialError::Read {
            path: path.clone(),
            source,
        })?;
        let mut value = HeaderValue::from_str(&format!("{scheme}{}", text.trim()))
            .map_err(|_| CredentialError::NotHeaderText { path: path.clone() })?;
        value.set_sensitive(true);
        *cached = Some((Instant::now(), value.clone()));
        Ok(Some((name.clone(), value)))
    }
}
