//! Validation of the caller's bearer JWT: signature by one of the issuer's keys, issuer, audience,
//! expiry and not-before with a small leeway, and a subject.

use crate::clock::unix_now;
use crate::config::inbound::InboundJwt;
use crate::identity::Principal;
use crate::identity::keys::{KeyCache, KeysError};
use crate::jwks::RSA_ALGORITHMS;
use crate::sync::lock;
use http::{HeaderMap, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why a request's token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("the request carries no bearer token")]
    Missing,
    /// An `Authorization` header of another scheme, or not text.
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    /// The token is not a JWT.
    #[error("the bearer token is not a JWT: {0}")]
    Malformed(#[source] jsonwebtoken::errors::Error),
    /// No key of the issuer matches the token's `kid` and `alg`, even after fetching the keys again.
    #[error("no key of the issuer matches the token (kid {kid}, alg {alg:?})")]
    UnknownKey {
        /// The token's `kid`, or `none`.
        kid: String,
        /// The token's algorithm.
        alg: Algorithm,
    },
    /// Signature, issuer, audience or time checks failed.
    #[error("the bearer token was rejected: {}", describe(.0))]
    Rejected(#[source] jsonwebtoken::errors::Error),
    /// The token has no `sub`.
    #[error("the bearer token has no `sub` claim")]
    NoSubject,
    /// The issuer's keys cannot be had now (the JWKS URL is down, the file became unreadable).
    #[error("the issuer's keys are unavailable: {0}")]
    KeysUnavailable(#[source] Arc<KeysError>),
}

fn describe(error: &jsonwebtoken::errors::Error) -> String {
    match error.kind() {
        ErrorKind::ExpiredSignature => "it has expired".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "wrong issuer".into(),
        ErrorKind::InvalidAudience => "it is not meant for this server (aud)".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the `{claim}` claim is missing"),
        other => format!("{other:?}"),
    }
}

/// Tokens remembered as valid at most; past that, expired ones go first, then any.
pub const MAX_REMEMBERED: usize = 4096;

/// Validates bearer tokens for one `inbound.jwt` config.
pub struct JwtValidator {
    config: InboundJwt,
    keys: Arc<KeyCache>,
    validations: Vec<(Algorithm, Validation)>,
    /// Tokens whose signature and claims were checked, by digest, until they expire: an agent sends the
    /// same token with every call, and checking a signature costs tens of microseconds.
    verified: Mutex<HashMap<[u8; 32], Arc<Principal>>>,
}

/// Every algorithm a token may name: the asymmetric ones (an HMAC token could be forged with a key the
/// issuer publishes).
fn accepted() -> impl Iterator<Item = Algorithm> {
    RSA_ALGORITHMS
        .into_iter()
        .chain([Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA])
}

impl JwtValidator {
    /// A validator for `config`; a key file is read now.
    pub fn new(config: InboundJwt) -> Result<Self, KeysError> {
        let keys = KeyCache::new(config.keys.clone())?;
        let validations = accepted()
            .map(|alg| {
                let mut validation = Validation::new(alg);
                validation.set_issuer(&[&config.issuer]);
                validation.set_audience(&config.audiences);
                validation.leeway = config.leeway.as_secs();
                validation.validate_nbf = true;
                validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                (alg, validation)
            })
            .collect();
        Ok(Self {
            config,
            keys,
            validations,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// The config this validator was built from.
    pub fn config(&self) -> &InboundJwt {
        &self.config
    }

    /// Validates the request's bearer token (a token seen before is taken from memory until it expires).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Principal>, AuthError> {
        let token = bearer(headers)?;
        let key = Principal::digest(token);
        let now = unix_now();
        if let Some(known) = lock(&self.verified).get(&key)
            && known.expires_at.saturating_add(self.config.leeway.as_secs()) > now
        {
            return Ok(known.clone());
        }
        let principal = self.verify(token).await?;
        let mut verified = lock(&self.verified);
        if verified.len() >= MAX_REMEMBERED {
            let leeway = self.config.leeway.as_secs();
            verified.retain(|_, p| p.expires_at.saturating_add(leeway) > now);
            if verified.len() >= MAX_REMEMBERED {
                verified.clear();
            }
        }
        verified.insert(key, principal.clone());
        Ok(principal)
    }

    async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(AuthError::Malformed)?;
        let Some((_, validation)) = self.validations.iter().find(|(alg, _)| *alg == header.alg) else {
            return Err(AuthError::Rejected(ErrorKind::InvalidAlgorithm.into()));
        };
        let kid = header.kid.as_deref();
        let mut keys = self.keys.current();
        if keys.candidates(kid, header.alg).next().is_none() {
            // A key the cache does not hold: the issuer may have rotated (rate-limited inside).
            self.keys.refresh().await.map_err(AuthError::KeysUnavailable)?;
            keys = self.keys.current();
        }
        let mut last = None;
        for key in keys.candidates(kid, header.alg) {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation) {
                Ok(data) => {
                    return Principal::new(token.to_owned(), data.claims)
                        .map(Arc::new)
                        .ok_or(AuthError::NoSubject);
                }
                // Without a kid several keys may fit; only a bad signature means "try the next".
                Err(error) if *error.kind() == ErrorKind::InvalidSignature => last = Some(error),
                Err(error) => return Err(AuthError::Rejected(error)),
            }
        }
        Err(last.map(AuthError::Rejected).unwrap_or_else(|| AuthError::UnknownKey {
            kid: kid.unwrap_or("none").to_owned(),
            alg: header.alg,
        }))
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let text = value.to_str().map_err(|_| AuthError::NotBearer)?;
    let (scheme, token) = text.split_once(' ').ok_or(AuthError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::NotBearer);
    }
    Ok(token.trim())
}
