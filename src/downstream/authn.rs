//! Inbound identity on the agent's side: the bearer token of each request is validated when the config
//! has `inbound.jwt`; failures get 401 with a `WWW-Authenticate` challenge pointing at the protected
//! resource metadata (RFC 9728), which is served here too. Session-era sessions stay bound to the
//! subject that opened them.

use crate::config::inbound::InboundJwt;
use crate::downstream::respond::{self, Body};
use crate::identity::keys::KeysError;
use crate::identity::{AuthError, JwtValidator, Principal};
use crate::protocol::{ENDPOINT_PATH, RESOURCE_METADATA_PATH};
use crate::sync::lock;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::json;
use std::sync::{Arc, Mutex};

/// Why a request was not let in.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The token is missing or not acceptable.
    #[error(transparent)]
    Token(#[from] AuthError),
    /// The configured keys could not be loaded.
    #[error("inbound identity is unavailable: {0}")]
    Keys(#[from] KeysError),
    /// A session-era request with another subject's token than the one that opened the session.
    #[error("the session belongs to another caller; open a session of your own")]
    OtherSubject,
}

/// The validator for the live config, rebuilt when `inbound.jwt` changes.
#[derive(Default)]
pub struct Authenticator {
    current: Mutex<Option<Arc<JwtValidator>>>,
}

impl Authenticator {
    /// The caller of a request: `None` when inbound identity is off.
    pub async fn authenticate(
        &self,
        config: Option<&InboundJwt>,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Principal>>, Refusal> {
        let Some(config) = config else { return Ok(None) };
        let validator = self.validator(config)?;
        Ok(Some(validator.authenticate(headers).await?))
    }

    fn validator(&self, config: &InboundJwt) -> Result<Arc<JwtValidator>, KeysError> {
        let mut current = lock(&self.current);
        if let Some(validator) = current.as_ref().filter(|v| v.config() == config) {
            return Ok(validator.clone());
        }
        // A key file is read here, once per config change; it is small and local.
        let validator = Arc::new(JwtValidator::new(config.clone())?);
        *current = Some(validator.clone());
        Ok(validator)
    }
}

/// The resource identifier: the configured one, or the URL the agent used.
fn resource(config: &InboundJwt, headers: &HeaderMap) -> String {
    config.resource.clone().unwrap_or_else(|| {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        format!("http://{host}{ENDPOINT_PATH}")
    })
}

/// Where the metadata of `resource` is served (RFC 9728 §3.1: the well-known path goes between the
/// origin and the resource's path).
fn metadata_url(resource: &str) -> String {
    let (scheme, rest) = resource.split_once("://").unwrap_or(("http", resource));
    let (origin, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    format!("{scheme}://{origin}{RESOURCE_METADATA_PATH}{path}")
}

/// The answer to a refused request: 401 with a challenge for token problems, 403 for another
/// subject's session, 503 when the keys cannot be had.
pub fn refusal_response(refusal: &Refusal, config: Option<&InboundJwt>, headers: &HeaderMap) -> Response<Body> {
    tracing::info!(%refusal, "request refused: inbound identity");
    let status = match refusal {
        Refusal::Token(AuthError::KeysUnavailable(_)) | Refusal::Keys(_) => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::OtherSubject => StatusCode::FORBIDDEN,
        Refusal::Token(_) => StatusCode::UNAUTHORIZED,
    };
    let mut response = respond::plain(status, &refusal.to_string());
    if status == StatusCode::UNAUTHORIZED
        && let Some(config) = config
    {
        let mut challenge = format!(
            "Bearer resource_metadata=\"{}\"",
            metadata_url(&resource(config, headers))
        );
        if !config.scopes.is_empty() {
            challenge.push_str(&format!(", scope=\"{}\"", config.scopes.join(" ")));
        }
        // RFC 6750 §3.1: a request without a token gets no error code.
        if !matches!(refusal, Refusal::Token(AuthError::Missing)) {
            let description: String = refusal
                .to_string()
                .chars()
                .filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c))
                .collect();
            challenge.push_str(&format!(
                ", error=\"invalid_token\", error_description=\"{description}\""
            ));
        }
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

/// Whether `path` asks for the protected resource metadata (at the root or for `/mcp`).
pub fn is_metadata_path(path: &str) -> bool {
    path.strip_prefix(RESOURCE_METADATA_PATH)
        .is_some_and(|rest| rest.is_empty() || rest == ENDPOINT_PATH)
}

/// The protected resource metadata document (RFC 9728 §2), or 404 when inbound identity is off.
pub fn metadata_response(config: Option<&InboundJwt>, headers: &HeaderMap) -> Response<Body> {
    let Some(config) = config else {
        return respond::plain(
            StatusCode::NOT_FOUND,
            "not found: inbound identity is off (the config has no inbound.jwt)",
        );
    };
    let mut document = json!({
        "resource": resource(config, headers),
        "authorization_servers": [config.issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": "mcplex",
    });
    if !config.scopes.is_empty() {
        document["scopes_supported"] = json!(config.scopes);
    }
    respond::with_type(StatusCode::OK, "application/json", document.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_puts_the_well_known_path_after_the_origin() {
        assert_eq!(
            metadata_url("http://127.0.0.1:15301/mcp"),
            "http://127.0.0.1:15301/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("https://agent.example"),
            "https://agent.example/.well-known/oauth-protected-resource"
        );
        assert!(is_metadata_path("/.well-known/oauth-protected-resource"));
        assert!(is_metadata_path("/.well-known/oauth-protected-resource/mcp"));
        assert!(!is_metadata_path("/.well-known/oauth-protected-resource/other"));
    }
}
