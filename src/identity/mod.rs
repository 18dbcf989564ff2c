//! Who is calling, and the tokens mcplex gets on their behalf: validation of the caller's bearer JWT
//! against the issuer's keys, and RFC 8693 token exchange at an authorization server. This module
//! talks to authorization servers only (JWKS and token endpoints), never to targets.

pub mod exchange;
pub mod fetch;
pub mod jwt;
pub mod keys;

pub use exchange::{ExchangeError, TokenExchanger};
pub use jwt::{AuthError, JwtValidator};

use serde_json::{Map, Value};
use std::sync::{Arc, RwLock};

/// A caller whose bearer token was validated.
pub struct Principal {
    /// The token's `sub`.
    pub subject: String,
    /// `act.sub`: who acts for the subject, when the token says so (a delegated token).
    pub actor: Option<String>,
    /// The token's `exp` (seconds since the epoch).
    pub expires_at: u64,
    /// Every claim of the token, for policy.
    pub claims: Map<String, Value>,
    token: String,
    token_key: [u8; 32],
}

impl std::fmt::Debug for Principal {
    // The token itself never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.subject)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

impl Principal {
    /// A principal from a validated token and its claims.
    pub fn new(token: String, claims: Map<String, Value>) -> Option<Self> {
        let subject = claims.get("sub")?.as_str()?.to_owned();
        let actor = claims
            .get("act")
            .and_then(|a| a.get("sub"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let expires_at = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let token_key = Self::digest(&token);
        Some(Self {
            subject,
            actor,
            expires_at,
            claims,
            token,
            token_key,
        })
    }

    /// The SHA-256 of a token: how tokens are remembered without being compared as text.
    pub fn digest(token: &str) -> [u8; 32] {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut key = [0; 32];
        key.copy_from_slice(digest.as_ref());
        key
    }

    /// The caller's token, to exchange (never to forward).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A digest of the token: the key under which tokens exchanged for it are cached.
    pub fn token_key(&self) -> [u8; 32] {
        self.token_key
    }
}

/// The caller a channel acts for. Session-era clients send a fresh token with each request, so the
/// session's cell is updated as they come; background work of the session uses the latest.
#[derive(Debug)]
pub struct Acting(RwLock<Arc<Principal>>);

impl Acting {
    /// A cell holding `principal`.
    pub fn new(principal: Arc<Principal>) -> Arc<Self> {
        Arc::new(Self(RwLock::new(principal)))
    }

    /// The latest validated principal.
    pub fn current(&self) -> Arc<Principal> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the principal with a newer token of the same subject.
    pub fn update(&self, principal: Arc<Principal>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = principal;
    }
}
