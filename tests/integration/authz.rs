//! A real authorization server on loopback for the identity tests: npm `oidc-provider`, installed by
//! scripts/install-test-tools and configured by tests/authz/server.mjs. Callers get JWT access tokens by
//! client credentials; RFC 8693 exchange is registered as an extension grant.

use crate::support::node::NodeServer;
use serde_json::Value;

/// The audience callers' tokens are minted for (the `inbound.jwt.audiences` of the sidecar).
pub const MCPLEX_AUDIENCE: &str = "urn:mcplex";
/// The audience of the pod's own token that is sent as the exchange's actor.
pub const ACTOR_AUDIENCE: &str = "urn:mcplex:sts";
/// The client mcplex authenticates as at the token endpoint, and its secret.
pub const EXCHANGER: (&str, &str) = ("mcplex", "exchanger-secret");

/// A running authorization server.
pub struct AuthorizationServer {
    /// Its issuer URL (`http://127.0.0.1:<port>`).
    pub issuer: String,
    _server: NodeServer,
}

impl AuthorizationServer {
    /// Starts one with these callers (`{name: {claims}}`) and the subjects it refuses to represent.
    pub async fn start(callers: Value, refuse: &[&str]) -> Self {
        Self::accepting_subjects(callers, refuse, &[MCPLEX_AUDIENCE, ACTOR_AUDIENCE]).await
    }

    /// Starts one that exchanges only subject tokens minted for these audiences (callers' tokens, say, and
    /// not the pod's own).
    pub async fn accepting_subjects(callers: Value, refuse: &[&str], subject_audiences: &[&str]) -> Self {
        let settings = serde_json::json!({
            "callers": callers,
            "exchangers": { EXCHANGER.0: EXCHANGER.1 },
            "subjectAudience": subject_audiences,
            "refuse": refuse,
            "ttl": 300,
        });
        let server = NodeServer::start(
            "tests/authz/server.mjs",
            "oidc",
            "oidc-provider",
            &[("AUTHZ_CONFIG", settings.to_string())],
        )
        .await;
        Self {
            issuer: format!("http://127.0.0.1:{}", server.port),
            _server: server,
        }
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// An access token for `caller` meant for `resource`, by the client credentials grant.
    pub async fn token(&self, caller: &str, resource: &str) -> String {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("resource", resource)
            .append_pair("scope", "mcp")
            .finish();
        let answer: Value = reqwest::Client::new()
            .post(self.token_endpoint())
            .basic_auth(caller, Some(format!("{caller}-secret")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token for {caller}: {answer}"))
            .to_owned()
    }

    /// How many token exchanges the server has handled.
    pub async fn exchanges(&self) -> u64 {
        let stats: Value = reqwest::get(format!("{}/stats", self.issuer))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["exchanges"].as_u64().unwrap()
    }

    /// The server's signing keys, to verify what targets receive.
    pub async fn keys(&self) -> jsonwebtoken::jwk::JwkSet {
        reqwest::get(self.jwks_url()).await.unwrap().json().await.unwrap()
    }

    /// The `inbound:` block of a sidecar config that trusts this server's tokens.
    pub fn inbound_yaml(&self) -> String {
        format!(
            "inbound:\n  jwt:\n    issuer: {}\n    audiences: [\"{MCPLEX_AUDIENCE}\"]\n    jwks: {{ url: {} }}\n",
            self.issuer,
            self.jwks_url()
        )
    }
}

/// Verifies `token` with the server's keys for `audience`; its claims, or `None` when it fails.
pub fn verify(keys: &jsonwebtoken::jwk::JwkSet, token: &str, issuer: &str, audience: &str) -> Option<Value> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    let jwk = keys.find(header.kid.as_deref()?)?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).ok()?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .ok()
        .map(|d| d.claims)
}
