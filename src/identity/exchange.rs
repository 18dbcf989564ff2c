//! On-Behalf-Of: RFC 8693 token exchange of the caller's token for one meant for a target, cached per
//! (caller token, target) until shortly before the exchanged token (or the caller's) expires.
//! Any failure is final for that call: mcplex never falls back to another credential.

use crate::config::schema::{TlsSpec, TokenExchangeSpec};
use crate::identity::fetch::{self, FetchError};
use crate::net::{HttpClient, build_client};
use crate::sync::lock;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::Full;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;

/// The RFC 8693 grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The RFC 6749 §4.4 grant type: a token for the client itself.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";
/// The cache key of mcplex's own client token. Subjects are keyed by the SHA-256 of their token, which
/// this value (no token's digest in practice) never collides with.
const OWN_CLIENT: [u8; 32] = [0xff; 32];
/// Token type of an OAuth access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Token type of a JWT (the projected ServiceAccount token sent as the actor).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Exchanged tokens kept at most (per target); past that, expired ones go first, then any.
pub const MAX_CACHED: usize = 4096;
/// A failed exchange is not retried for the same caller sooner than this.
pub const FAILURE_PAUSE: Duration = Duration::from_secs(1);
/// Lifetime assumed when the server gives no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// The longest an exchanged token is kept, whatever `expires_in` says.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Why no token could be had for a target.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The token endpoint gave no answer.
    #[error("token exchange failed: {0}")]
    Fetch(#[from] FetchError),
    /// The token endpoint refused (RFC 6749 error answer).
    #[error("the token endpoint refused the exchange (HTTP {status}): {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        /// HTTP status.
        status: u16,
        /// The `error` code.
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The answer is not a token response.
    #[error("the token endpoint answered HTTP {status} with something that is not a token response: {reason}")]
    Garbage {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
    /// The client secret file could not be read.
    #[error("cannot read client secret file {path}: {source}")]
    Secret {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The https client could not be built (bad CA file).
    #[error("cannot set up TLS for the token endpoint: {0}")]
    Tls(#[from] crate::net::tls::TlsError),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Clone)]
struct Exchanged {
    header: HeaderValue,
    valid_until: Instant,
}

type Round = Arc<OnceCell<Result<Exchanged, Arc<ExchangeError>>>>;

struct Entry {
    started: Instant,
    round: Round,
}

/// Exchanges tokens for one target.
pub struct TokenExchanger {
    spec: TokenExchangeSpec,
    endpoint: http::Uri,
    client: HttpClient,
    cache: Mutex<HashMap<[u8; 32], Entry>>,
}

/// What to exchange.
pub struct Subject<'a> {
    /// The token to exchange (the caller's, or the pod's own for background work).
    pub token: &'a str,
    /// Its cache key (a digest of it).
    pub key: [u8; 32],
    /// Its expiry (seconds since the epoch; 0 when unknown): a cached token is not used past it.
    pub expires_at: u64,
}

impl TokenExchanger {
    /// An exchanger for `spec` (validation has checked the endpoint URL).
    pub fn new(spec: TokenExchangeSpec) -> Result<Self, ExchangeError> {
        let endpoint: http::Uri = spec.token_endpoint.parse().map_err(|e| ExchangeError::Garbage {
            status: 0,
            reason: format!("tokenEndpoint is not a URL: {e}"),
        })?;
        let tls = TlsSpec {
            ca: spec.ca.clone(),
            cert: None,
            key: None,
            server_name: None,
        };
        let client = build_client(Some(&tls), endpoint.scheme_str() == Some("https"))?;
        Ok(Self {
            spec,
            endpoint,
            client,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The `Authorization` value for `subject`: cached, or exchanged now (concurrent callers for the
    /// same subject share one exchange; no lock is held while it runs).
    pub async fn authorization(
        &self,
        subject: Subject<'_>,
        actor_token: Option<&str>,
    ) -> Result<HeaderValue, Arc<ExchangeError>> {
        self.obtain(subject.key, subject.expires_at, || self.form(&subject, actor_token))
            .await
    }

    /// A token for mcplex's own client (the client credentials grant, RFC 6749 §4.4) for the same audience,
    /// resource and scope, for work no caller asked for; cached like an exchange.
    pub async fn client_credentials(&self) -> Result<HeaderValue, Arc<ExchangeError>> {
        self.obtain(OWN_CLIENT, 0, || self.own_client_form()).await
    }

    /// The token cached under `key`, or one requested now with the form `body` writes (concurrent askers
    /// of one key share one request; no lock is held while it runs). `expires_at` (Unix seconds, 0 for
    /// none) caps how long it is reused.
    async fn obtain(
        &self,
        key: [u8; 32],
        expires_at: u64,
        body: impl FnOnce() -> String,
    ) -> Result<HeaderValue, Arc<ExchangeError>> {
        let round = {
            let mut cache = lock(&self.cache);
            let now = Instant::now();
            let usable = cache.get(&key).and_then(|entry| match entry.round.get() {
                Some(Ok(token)) if token.valid_until > now => Some(entry.round.clone()),
                Some(Err(_)) if entry.started.elapsed() < FAILURE_PAUSE => Some(entry.round.clone()),
                Some(_) => None,
                None => Some(entry.round.clone()),
            });
            match usable {
                Some(round) => round,
                None => {
                    if cache.len() >= MAX_CACHED {
                        evict(&mut cache, now);
                    }
                    let round = Round::default();
                    cache.insert(
                        key,
                        Entry {
                            started: now,
                            round: round.clone(),
                        },
                    );
                    round
                }
            }
        };
        if let Some(exchanged) = round.get() {
            return exchanged.as_ref().map(|e| e.header.clone()).map_err(Arc::clone);
        }
        // An exchange is rare next to the calls its token serves: its future lives on the heap, so every
        // call to the target stays small.
        let body = body();
        let exchanged =
            Box::pin(round.get_or_init(|| async { self.request_token(body, expires_at).await.map_err(Arc::new) }))
                .await;
        exchanged.as_ref().map(|e| e.header.clone()).map_err(Arc::clone)
    }

    /// Posts `body` to the token endpoint and reads the token it answers.
    async fn request_token(&self, body: String, expires_at: u64) -> Result<Exchanged, ExchangeError> {
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.endpoint.clone();
        let headers = request.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(basic) = self.client_authentication()? {
            headers.insert(header::AUTHORIZATION, basic);
        }
        let started = Instant::now();
        let (status, body) = fetch::send(&self.client, request).await?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorResponse>(&body) {
                Ok(refusal) => ExchangeError::Refused {
                    status: status.as_u16(),
                    error: refusal.error,
                    description: refusal.error_description,
                },
                Err(_) => ExchangeError::Garbage {
                    status: status.as_u16(),
                    reason: format!("`{}`", String::from_utf8_lossy(&body[..body.len().min(200)])),
                },
            });
        }
        let answer: TokenResponse = serde_json::from_slice(&body).map_err(|e| ExchangeError::Garbage {
            status: status.as_u16(),
            reason: e.to_string(),
        })?;
        // `N_A` (RFC 8693 §2.2.1) marks a token that is not for the Authorization header.
        if let Some(kind) = &answer.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(ExchangeError::Garbage {
                status: status.as_u16(),
                reason: format!("token_type `{kind}` is not Bearer"),
            });
        }
        let mut header =
            HeaderValue::from_str(&format!("Bearer {}", answer.access_token)).map_err(|_| ExchangeError::Garbage {
                status: status.as_u16(),
                reason: "access_token holds characters not allowed in a header".into(),
            })?;
        header.set_sensitive(true);
        let lifetime = answer
            .expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs)
            .min(MAX_LIFETIME);
        // Renewed a little before it expires: a tenth of its life, at most 30 s.
        let margin = (lifetime / 10).min(Duration::from_secs(30));
        let caller_left = if expires_at == 0 {
            lifetime
        } else {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            Duration::from_secs(expires_at.saturating_sub(now))
        };
        Ok(Exchanged {
            header,
            valid_until: started + lifetime.saturating_sub(margin).min(caller_left),
        })
    }

    /// The form of the exchange request (RFC 8693 §2.1), built before any await: the serializer is not `Send`.
    fn own_client_form(&self) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", CLIENT_CREDENTIALS);
        self.append_target(&mut form);
        form.finish()
    }

    /// The audience, resource and scope asked for, as the config gives them.
    fn append_target(&self, form: &mut form_urlencoded::Serializer<'_, String>) {
        for (key, value) in [
            ("audience", &self.spec.audience),
            ("resource", &self.spec.resource),
            ("scope", &self.spec.scope),
        ] {
            if let Some(value) = value {
                form.append_pair(key, value);
            }
        }
    }

    fn form(&self, subject: &Subject<'_>, actor_token: Option<&str>) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", GRANT_TYPE)
            .append_pair("subject_token", subject.token)
            .append_pair("subject_token_type", ACCESS_TOKEN_TYPE)
            .append_pair("requested_token_type", ACCESS_TOKEN_TYPE);
        self.append_target(&mut form);
        if let Some(actor) = actor_token {
            form.append_pair("actor_token", actor)
                .append_pair("actor_token_type", JWT_TOKEN_TYPE);
        }
        form.finish()
    }

    fn client_authentication(&self) -> Result<Option<HeaderValue>, ExchangeError> {
        let (Some(id), Some(file)) = (&self.spec.client_id, &self.spec.client_secret_file) else {
            return Ok(None);
        };
        let secret = std::fs::read_to_string(file).map_err(|source| ExchangeError::Secret {
            path: file.clone(),
            source,
        })?;
        // RFC 6749 §2.3.1: both parts form-encoded before they are joined and base64-encoded.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", encode(id), encode(secret.trim()));
        let text = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
        let mut value = HeaderValue::from_str(&text).map_err(|_| ExchangeError::Garbage {
            status: 0,
            reason: "client credentials hold characters not allowed in a header".into(),
        })?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// Exchanged tokens cached now (for `/status`).
    pub fn cached(&self) -> usize {
        lock(&self.cache).len()
    }
}

fn evict(cache: &mut HashMap<[u8; 32], Entry>, now: Instant) {
    cache.retain(|_, entry| match entry.round.get() {
        Some(Ok(token)) => token.valid_until > now,
        Some(Err(_)) => false,
        None => true,
    });
    if cache.len() >= MAX_CACHED
        && let Some(key) = cache.keys().next().copied()
    {
        cache.remove(&key);
    }
}
