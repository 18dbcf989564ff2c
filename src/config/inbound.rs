//! The checked `inbound.jwt` settings: who may call the sidecar and where the issuer's keys are. Pure data;
//! `identity/` validates tokens with it.

use std::path::PathBuf;
use std::time::Duration;

/// Leeway on `exp` and `nbf` when the config sets none.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The checked `inbound.jwt` config.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundJwt {
    /// The required `iss`.
    pub issuer: String,
    /// One of these must be in `aud`.
    pub audiences: Vec<String>,
    /// The issuer's keys.
    pub keys: KeySource,
    /// The resource identifier announced in the metadata, when the config fixes it.
    pub resource: Option<String>,
    /// Tolerated clock skew.
    pub leeway: Duration,
    /// Scopes announced in the metadata.
    pub scopes: Vec<String>,
}

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// A mounted file.
    File(PathBuf),
    /// An `http(s)` URL, with an optional CA bundle.
    Url {
        /// The JWKS URL.
        url: http::Uri,
        /// PEM CA bundle for https.
        ca: Option<PathBuf>,
        /// A bearer token file presented with each fetch.
        token_file: Option<PathBuf>,
    },
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "JWKS file {}", path.display()),
            Self::Url { url, .. } => write!(f, "JWKS {url}"),
        }
    }
}
