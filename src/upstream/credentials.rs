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

    /// The header to add, reading the file when the cached value is stale.
    pub fn header(&self) -> Result<Option<(HeaderName, HeaderValue)>, String> {
        let Some((name, path, scheme)) = &self.source else {
            return Ok(None);
        };
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((read_at, value)) = cached.as_ref()
            && read_at.elapsed() < REFRESH_AFTER
        {
            return Ok(Some((name.clone(), value.clone())));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read credential file {}: {e}", path.display()))?;
        let mut value = HeaderValue::from_str(&format!("{scheme}{}", text.trim())).map_err(|_| {
            format!(
                "credential file {} holds characters not allowed in a header",
                path.display()
            )
        })?;
        value.set_sensitive(true);
        *cached = Some((Instant::now(), value.clone()));
        Ok(Some((name.clone(), value)))
    }
}
