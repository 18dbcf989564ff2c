//! Outbound credentials: the projected ServiceAccount token minted for a target's own audience, a
//! header value read from a file, or a token exchanged (RFC 8693) on behalf of the caller. All are
//! cached and renewed before they go stale.
//!
//! A token is only ever sent to the target whose audience it names: its `aud` claim is checked every
//! time the file is read, so a token meant for one target can never be replayed by another.

use crate::clock::unix_now;
use crate::config::schema::{AuthSpec, WithoutCaller};
use crate::identity::exchange::Subject;
use crate::identity::{Acting, ExchangeError, TokenExchanger};
use crate::sync::lock;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the webhook projects the pod's ServiceAccount tokens, one file per audience.
pub const DEFAULT_TOKEN_DIR: &str = "/var/run/secrets/mcplex";

/// How long a credential is used before its file is read again (the kubelet rotates tokens, Secrets change).
const REFRESH_AFTER: Duration = Duration::from_secs(30);

/// A token this close to its expiry is read again on every use until the kubelet has replaced it.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// Why a target's credential could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The file or directory could not be read.
    #[error("cannot read credential file {path}: {source}")]
    Read {
        /// The file or directory.
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
    /// The file named for a token does not hold a JWT whose claims can be read.
    #[error("token file {path} does not hold a readable JWT: {source}")]
    NotAToken {
        /// The file.
        path: PathBuf,
        /// What the JWT decoder found.
        source: jsonwebtoken::errors::Error,
    },
    /// The token was minted for another audience; sending it would let this target replay it elsewhere.
    #[error(
        "token file {path} was minted for audience {found:?}, not `{expected}`; a target only ever gets a token for its own audience"
    )]
    WrongAudience {
        /// The file.
        path: PathBuf,
        /// The target's audience.
        expected: String,
        /// The audiences the token names.
        found: Vec<String>,
    },
    /// The token's `exp` has passed.
    #[error("token file {path} expired; the kubelet has not replaced it")]
    Expired {
        /// The file.
        path: PathBuf,
    },
    /// No token in the projection directory was minted for the target's audience.
    #[error(
        "no projected token for audience `{audience}` in {dir} (it holds tokens for {found:?}); tokens are projected when the pod is created: add `{audience}` to the pod's mcplex.dev/token-audiences annotation and restart the pod"
    )]
    NoTokenForAudience {
        /// The target's audience.
        audience: String,
        /// The directory searched.
        dir: PathBuf,
        /// The audiences of the tokens that are there.
        found: Vec<String>,
    },
    /// The token exchange on behalf of the caller failed; the call is not sent with any other credential.
    #[error("{0}")]
    Exchange(#[source] Arc<ExchangeError>),
    /// The pod's own token, sent as the actor of an exchange, could not be read.
    #[error("the actor token for the exchange: {0}")]
    Actor(#[source] Box<CredentialError>),
    /// The credential of work no caller asked for (list fetches, probes) was refused or unreadable: the
    /// target's items stay unknown although callers' own exchanges may succeed.
    #[error("the credential for requests no caller makes (lists, probes; withoutCaller: {mode}): {source}{}", no_caller_hint(.mode))]
    WithoutCaller {
        /// The `withoutCaller` mode.
        mode: &'static str,
        /// What failed.
        source: Box<CredentialError>,
    },
}

fn no_caller(mode: &'static str, source: CredentialError) -> CredentialError {
    CredentialError::WithoutCaller {
        mode,
        source: Box::new(source),
    }
}

/// What to do when the pod's own token is refused as an exchange's subject.
fn no_caller_hint(mode: &str) -> &'static str {
    if mode == "exchange" {
        "; an authorization server that accepts only its own tokens as subjects refuses the pod's token: set auth.tokenExchange.withoutCaller to clientCredentials, or to serviceAccountToken if the target accepts the pod's own token"
    } else {
        ""
    }
}

/// The claims mcplex reads from a token it is about to send (it does not verify the signature: the
/// kubelet wrote the file, and the target verifies what it receives).
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    aud: Audiences,
    exp: Option<u64>,
}

/// `aud` is a string or a list of strings (RFC 7519 §4.1.3).
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Audiences {
    #[default]
    Absent,
    One(String),
    Many(Vec<String>),
}

impl Audiences {
    fn list(&self) -> Vec<String> {
        match self {
            Self::Absent => Vec::new(),
            Self::One(one) => vec![one.clone()],
            Self::Many(many) => many.clone(),
        }
    }

    fn contains(&self, audience: &str) -> bool {
        match self {
            Self::Absent => false,
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// A token read from a file, with its expiry (seconds since the Unix epoch).
struct Token {
    text: String,
    expires: Option<u64>,
}

/// Where one target's credential comes from.
enum Source {
    /// A projected ServiceAccount token whose `aud` must name `audience`; `path` is the token file or
    /// the directory of projected tokens to search.
    Token { audience: String, path: PathBuf },
    /// A header whose value is the content of a file.
    Header { name: HeaderName, file: PathBuf },
}

struct Cached {
    value: HeaderValue,
    renew_at: Instant,
}

/// A token exchange, the pod's own token sent as its actor, and what is sent when no caller is behind a request.
struct OnBehalf {
    exchanger: TokenExchanger,
    actor: Option<Credentials>,
    without_caller: NoCaller,
}

/// The credential of work no caller asked for (list fetches, probes), as `withoutCaller` says.
enum NoCaller {
    /// The pod's own actor token exchanged as the subject (nothing without an actor token).
    Exchange,
    /// mcplex's own client token, by the client credentials grant.
    ClientCredentials,
    /// A projected ServiceAccount token for the target's audience.
    Token(Credentials),
    /// Nothing.
    Nothing,
}

/// The credential one target presents.
pub struct Credentials {
    source: Option<Source>,
    cached: Mutex<Option<Cached>>,
    on_behalf: Option<Box<OnBehalf>>,
}

impl Credentials {
    /// Prepares the credential named by the target's `auth` (validation has checked its shape).
    pub fn new(auth: Option<&AuthSpec>) -> Self {
        let token = auth
            .and_then(|a| a.service_account_token.as_ref())
            .map(|token| Source::Token {
                audience: token.audience.clone(),
                path: token.path.clone().unwrap_or_else(|| DEFAULT_TOKEN_DIR.into()),
            });
        let header = auth.and_then(|a| a.header.as_ref()).and_then(|h| {
            HeaderName::from_bytes(h.name.as_bytes())
                .ok()
                .map(|name| Source::Header {
                    name,
                    file: h.value_file.clone(),
                })
        });
        Self {
            source: token.or(header),
            cached: Mutex::new(None),
            on_behalf: None,
        }
    }

    /// Prepares the credential named by `auth`, including a token exchange when it asks for one.
    pub fn for_target(auth: Option<&AuthSpec>) -> Result<Self, ExchangeError> {
        let Some(spec) = auth.and_then(|a| a.token_exchange.as_ref()) else {
            return Ok(Self::new(auth));
        };
        let actor = spec.actor_audience.as_ref().map(|audience| {
            Self::new(Some(&AuthSpec {
                service_account_token: Some(crate::config::schema::ServiceAccountTokenAuth {
                    audience: audience.clone(),
                    path: spec.actor_path.clone(),
                }),
                ..AuthSpec::default()
            }))
        });
        let without_caller = match &spec.without_caller {
            None | Some(WithoutCaller::Exchange) => NoCaller::Exchange,
            Some(WithoutCaller::ClientCredentials) => NoCaller::ClientCredentials,
            Some(WithoutCaller::ServiceAccountToken(token)) => NoCaller::Token(Self::new(Some(&AuthSpec {
                service_account_token: Some(token.clone()),
                ..AuthSpec::default()
            }))),
            Some(WithoutCaller::None) => NoCaller::Nothing,
        };
        Ok(Self {
            source: None,
            cached: Mutex::new(None),
            on_behalf: Some(Box::new(OnBehalf {
                exchanger: TokenExchanger::new(spec.clone())?,
                actor,
                without_caller,
            })),
        })
    }

    /// The header to add for a request on behalf of `acting`. With a token exchange, the caller's token
    /// is exchanged (or a cached exchange reused); work of no caller (lists, probes) gets what
    /// `withoutCaller` names: by default the pod's own actor token exchanged, or nothing when there is none.
    pub async fn header_for(
        &self,
        acting: Option<&Acting>,
    ) -> Result<Option<(HeaderName, HeaderValue)>, CredentialError> {
        let Some(on_behalf) = &self.on_behalf else {
            return self.header();
        };
        if acting.is_none() {
            match &on_behalf.without_caller {
                NoCaller::Exchange => {}
                NoCaller::ClientCredentials => {
                    let value = on_behalf.exchanger.client_credentials().await;
                    let value = value.map_err(|e| no_caller("clientCredentials", CredentialError::Exchange(e)))?;
                    return Ok(Some((http::header::AUTHORIZATION, value)));
                }
                NoCaller::Token(token) => {
                    return token.header().map_err(|e| no_caller("serviceAccountToken", e));
                }
                NoCaller::Nothing => return Ok(None),
            }
        }
        let actor = match &on_behalf.actor {
            Some(actor) => Some(actor.bearer_token().map_err(|e| CredentialError::Actor(Box::new(e)))?),
            None => None,
        };
        let principal = acting.map(Acting::current);
        let header = match (&principal, &actor) {
            (Some(principal), _) => {
                let subject = Subject {
                    token: principal.token(),
                    key: principal.token_key(),
                    expires_at: principal.expires_at,
                };
                on_behalf.exchanger.authorization(subject, actor.as_deref()).await
            }
            (None, Some(own)) => {
                let subject = Subject {
                    token: own,
                    key: crate::identity::Principal::digest(own),
                    expires_at: 0,
                };
                let exchanged = on_behalf.exchanger.authorization(subject, None).await;
                return exchanged
                    .map(|value| Some((http::header::AUTHORIZATION, value)))
                    .map_err(|e| no_caller("exchange", CredentialError::Exchange(e)));
            }
            (None, None) => return Ok(None),
        };
        header
            .map(|value| Some((http::header::AUTHORIZATION, value)))
            .map_err(CredentialError::Exchange)
    }

    /// The projected token itself (for use as an actor token), without the `Bearer` scheme.
    fn bearer_token(&self) -> Result<String, CredentialError> {
        let value = self.header()?.map(|(_, value)| value);
        Ok(value
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned())
    }

    /// The header to add, reading the file when the cached value is stale. The files are small and
    /// local (projected volumes), so they are read synchronously under the cache lock.
    pub fn header(&self) -> Result<Option<(HeaderName, HeaderValue)>, CredentialError> {
        let Some(source) = &self.source else {
            return Ok(None);
        };
        let name = match source {
            Source::Token { .. } => http::header::AUTHORIZATION,
            Source::Header { name, .. } => name.clone(),
        };
        let mut cached = lock(&self.cached);
        if let Some(current) = cached.as_ref()
            && Instant::now() < current.renew_at
        {
            return Ok(Some((name, current.value.clone())));
        }
        let (text, path, renew_at) = match source {
            Source::Token { audience, path } => {
                let (token, file) = find_token(audience, path)?;
                let renew_at =
                    Instant::now() + REFRESH_AFTER.min(time_left(token.expires).saturating_sub(EXPIRY_MARGIN));
                (format!("Bearer {}", token.text), file, renew_at)
            }
            Source::Header { file, .. } => (
                read(file)?.trim().to_owned(),
                file.clone(),
                Instant::now() + REFRESH_AFTER,
            ),
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| CredentialError::NotHeaderText { path })?;
        value.set_sensitive(true);
        *cached = Some(Cached {
            value: value.clone(),
            renew_at,
        });
        Ok(Some((name, value)))
    }
}

fn read(path: &Path) -> Result<String, CredentialError> {
    std::fs::read_to_string(path).map_err(|source| CredentialError::Read {
        path: path.to_owned(),
        source,
    })
}

fn time_left(expires: Option<u64>) -> Duration {
    expires.map_or(Duration::MAX, |exp| Duration::from_secs(exp.saturating_sub(unix_now())))
}

fn read_token(path: &Path) -> Result<(Token, Audiences), CredentialError> {
    let text = read(path)?.trim().to_owned();
    let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(&text)
        .map_err(|source| CredentialError::NotAToken {
            path: path.to_owned(),
            source,
        })?
        .claims;
    let expires = claims.exp;
    Ok((Token { text, expires }, claims.aud))
}

fn expired(token: &Token) -> bool {
    token.expires.is_some_and(|exp| exp <= unix_now())
}

/// The token for `audience`: `path` is either the token file itself (its `aud` must match) or a
/// directory searched for a token whose `aud` matches (the one that expires last wins).
fn find_token(audience: &str, path: &Path) -> Result<(Token, PathBuf), CredentialError> {
    let is_dir = std::fs::metadata(path)
        .map_err(|source| CredentialError::Read {
            path: path.to_owned(),
            source,
        })?
        .is_dir();
    if !is_dir {
        let (token, audiences) = read_token(path)?;
        if !audiences.contains(audience) {
            return Err(CredentialError::WrongAudience {
                path: path.to_owned(),
                expected: audience.to_owned(),
                found: audiences.list(),
            });
        }
        if expired(&token) {
            return Err(CredentialError::Expired { path: path.to_owned() });
        }
        return Ok((token, path.to_owned()));
    }
    let entries = std::fs::read_dir(path).map_err(|source| CredentialError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        // The kubelet's own bookkeeping (`..data`, timestamped directories) starts with dots.
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .map(|entry| entry.path())
        .filter(|file| file.is_file())
        .collect();
    files.sort();
    let mut found = Vec::new();
    let mut best: Option<(Token, PathBuf)> = None;
    let mut expired_match = None;
    for file in files {
        // Files that are not tokens (or not readable) are someone else's; they are only named in the error.
        let Ok((token, audiences)) = read_token(&file) else {
            continue;
        };
        found.extend(audiences.list());
        if !audiences.contains(audience) {
            continue;
        }
        if expired(&token) {
            expired_match = Some(file);
            continue;
        }
        let later = best
            .as_ref()
            .is_none_or(|(kept, _)| token.expires.unwrap_or(u64::MAX) > kept.expires.unwrap_or(u64::MAX));
        if later {
            best = Some((token, file));
        }
    }
    match (best, expired_match) {
        (Some(best), _) => Ok(best),
        (None, Some(path)) => Err(CredentialError::Expired { path }),
        (None, None) => {
            found.sort();
            found.dedup();
            Err(CredentialError::NoTokenForAudience {
                audience: audience.to_owned(),
                dir: path.to_owned(),
                found,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::ServiceAccountTokenAuth;
    use serde_json::json;

    fn jwt(claims: serde_json::Value) -> String {
        let key = jsonwebtoken::EncodingKey::from_secret(b"test key");
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
    }

    fn credentials(audience: &str, path: &Path) -> Credentials {
        Credentials::new(Some(&AuthSpec {
            service_account_token: Some(ServiceAccountTokenAuth {
                audience: audience.into(),
                path: Some(path.to_owned()),
            }),
            ..Default::default()
        }))
    }

    fn bearer(credentials: &Credentials) -> Result<String, CredentialError> {
        credentials
            .header()
            .map(|h| h.unwrap().1.to_str().unwrap().trim_start_matches("Bearer ").to_owned())
    }

    #[test]
    fn a_directory_of_projected_tokens_gives_each_audience_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let later = unix_now() + 3600;
        let math = jwt(json!({"aud": ["math-mcp"], "exp": later, "sub": "system:serviceaccount:a:b"}));
        let date = jwt(json!({"aud": "date-mcp", "exp": later}));
        std::fs::write(dir.path().join("aud-math-mcp"), format!("{math}\n")).unwrap();
        std::fs::write(dir.path().join("aud-date-mcp"), &date).unwrap();
        std::fs::create_dir(dir.path().join("..2026_11_25")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a token").unwrap();
        assert_eq!(bearer(&credentials("math-mcp", dir.path())).unwrap(), math);
        assert_eq!(bearer(&credentials("date-mcp", dir.path())).unwrap(), date);
        let missing = bearer(&credentials("search-mcp", dir.path())).unwrap_err().to_string();
        assert!(missing.contains("`search-mcp`"), "{missing}");
        assert!(missing.contains("restart the pod"), "{missing}");
        assert!(
            missing.contains("date-mcp") && missing.contains("math-mcp"),
            "{missing}"
        );
    }

    #[test]
    fn a_token_file_for_another_audience_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, jwt(json!({"aud": ["date-mcp"], "exp": unix_now() + 600}))).unwrap();
        let error = bearer(&credentials("math-mcp", &file)).unwrap_err();
        assert!(
            matches!(error, CredentialError::WrongAudience { ref found, .. } if found == &["date-mcp"]),
            "{error}"
        );
        std::fs::write(&file, "pod-identity-token").unwrap();
        let error = bearer(&credentials("math-mcp", &file)).unwrap_err();
        assert!(matches!(error, CredentialError::NotAToken { .. }), "{error}");
    }

    #[test]
    fn expired_tokens_are_not_sent_and_the_newest_token_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a"),
            jwt(json!({"aud": "math-mcp", "exp": unix_now() - 10})),
        )
        .unwrap();
        let error = bearer(&credentials("math-mcp", dir.path())).unwrap_err();
        assert!(matches!(error, CredentialError::Expired { .. }), "{error}");
        let fresh = jwt(json!({"aud": "math-mcp", "exp": unix_now() + 600}));
        let fresher = jwt(json!({"aud": "math-mcp", "exp": unix_now() + 3600}));
        std::fs::write(dir.path().join("b"), &fresher).unwrap();
        std::fs::write(dir.path().join("c"), &fresh).unwrap();
        assert_eq!(bearer(&credentials("math-mcp", dir.path())).unwrap(), fresher);
    }

    #[test]
    fn a_token_close_to_expiry_is_read_again_on_next_use() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        let soon = jwt(json!({"aud": "math-mcp", "exp": unix_now() + 5}));
        std::fs::write(&file, &soon).unwrap();
        let credentials = credentials("math-mcp", &file);
        assert_eq!(bearer(&credentials).unwrap(), soon);
        let rotated = jwt(json!({"aud": "math-mcp", "exp": unix_now() + 3600}));
        std::fs::write(&file, &rotated).unwrap();
        assert_eq!(bearer(&credentials).unwrap(), rotated);
    }
}
