//! The issuer's signing keys (a JWKS from a file or a URL), cached and fetched again when a token
//! names a key the cache does not hold (the issuer rotated its keys), at most once per
//! [`REFRESH_PAUSE`]; a URL's keys are also refreshed in the background after [`MAX_AGE`].

use crate::config::inbound::KeySource;
use crate::identity::fetch::{self, FetchError};
use crate::jwks::{JwksError, Keys};
use crate::net::{HttpClient, build_client};
use crate::sync::lock;
use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// Shortest time between two fetches of a URL caused by unknown key ids (a flood of forged `kid`s
/// must not turn into a flood of requests to the issuer).
pub const REFRESH_PAUSE: Duration = Duration::from_secs(10);
/// The same for a key file: reading it is cheap, but not free.
pub const FILE_REFRESH_PAUSE: Duration = Duration::from_secs(1);
/// Age after which a URL's keys are fetched again in the background.
pub const MAX_AGE: Duration = Duration::from_secs(600);

/// Why keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The file could not be read.
    #[error("cannot read JWKS file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The URL gave no answer.
    #[error("cannot fetch the JWKS: {0}")]
    Fetch(#[from] FetchError),
    /// The URL answered with an error status.
    #[error("the JWKS URL {url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The document is not a usable key set.
    #[error(transparent)]
    Document(#[from] JwksError),
    /// The https client could not be built (bad CA file).
    #[error("cannot set up TLS for the JWKS URL: {0}")]
    Tls(#[from] crate::net::tls::TlsError),
}

type Round = Arc<OnceCell<Result<(), Arc<KeysError>>>>;

/// The cached keys of one issuer.
pub struct KeyCache {
    source: KeySource,
    client: Option<HttpClient>,
    keys: RwLock<(Arc<Keys>, Option<Instant>)>,
    round: Mutex<Option<(Instant, Round)>>,
}

impl KeyCache {
    /// A cache over `source`; a file is read now (so a bad file is reported at once), a URL at first use.
    pub fn new(source: KeySource) -> Result<Arc<Self>, KeysError> {
        let client = match &source {
            KeySource::Url { url, ca, .. } => {
                let tls = crate::config::schema::TlsSpec {
                    ca: ca.clone(),
                    cert: None,
                    key: None,
                    server_name: None,
                };
                Some(build_client(Some(&tls), url.scheme_str() == Some("https"))?)
            }
            KeySource::File(_) => None,
        };
        let cache = Arc::new(Self {
            source,
            client,
            keys: RwLock::new((Arc::default(), None)),
            round: Mutex::new(None),
        });
        if let KeySource::File(path) = &cache.source {
            let keys = read_file(path)?;
            *cache.keys.write().unwrap_or_else(|p| p.into_inner()) = (Arc::new(keys), Some(Instant::now()));
        }
        Ok(cache)
    }

    /// Where the keys come from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The keys held now (none before a URL's first fetch); a URL's old keys are refreshed in the background.
    pub fn current(self: &Arc<Self>) -> Arc<Keys> {
        let (keys, fetched) = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        if matches!(self.source, KeySource::Url { .. }) && fetched.is_some_and(|at| at.elapsed() > MAX_AGE) {
            let cache = self.clone();
            tokio::spawn(async move {
                if let Err(error) = cache.refresh().await {
                    tracing::warn!(%error, "JWKS refresh failed; the keys held are kept");
                }
            });
        }
        keys
    }

    /// Loads the keys again, unless a load started less than [`REFRESH_PAUSE`] (a file:
    /// [`FILE_REFRESH_PAUSE`]) ago; then its result is shared. Concurrent callers wait for one load; no
    /// lock is held while it runs.
    pub async fn refresh(&self) -> Result<(), Arc<KeysError>> {
        let pause = match self.source {
            KeySource::File(_) => FILE_REFRESH_PAUSE,
            KeySource::Url { .. } => REFRESH_PAUSE,
        };
        let round = {
            let mut round = lock(&self.round);
            match &*round {
                Some((started, cell)) if started.elapsed() < pause => cell.clone(),
                _ => {
                    let cell = Round::default();
                    *round = Some((Instant::now(), cell.clone()));
                    cell
                }
            }
        };
        round
            .get_or_init(|| async {
                let keys = self.load().await.map_err(Arc::new)?;
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = (Arc::new(keys), Some(Instant::now()));
                tracing::info!(source = %self.source, "JWKS loaded");
                Ok(())
            })
            .await
            .clone()
    }

    async fn load(&self) -> Result<Keys, KeysError> {
        match (&self.source, &self.client) {
            (KeySource::File(path), _) => read_file(path),
            (KeySource::Url { url, token_file, .. }, Some(client)) => {
                let mut request = Request::new(Full::new(Bytes::new()));
                *request.uri_mut() = url.clone();
                request
                    .headers_mut()
                    .insert(header::ACCEPT, http::HeaderValue::from_static("application/json"));
                if let Some(path) = token_file {
                    // Read for every fetch: a projected token is renewed on disk.
                    let token = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
                        path: path.clone(),
                        source,
                    })?;
                    let value = http::HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
                        KeysError::Read {
                            path: path.clone(),
                            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a token"),
                        }
                    })?;
                    request.headers_mut().insert(header::AUTHORIZATION, value);
                }
                let (status, body) = fetch::send(client, request).await?;
                if !status.is_success() {
                    return Err(KeysError::Status {
                        url: url.to_string(),
                        status: status.as_u16(),
                    });
                }
                Ok(Keys::parse(&body, &self.source.to_string())?)
            }
            (KeySource::Url { .. }, None) => Ok(Keys::default()),
        }
    }
}

fn read_file(path: &PathBuf) -> Result<Keys, KeysError> {
    let text = std::fs::read(path).map_err(|source| KeysError::Read {
        path: path.clone(),
        source,
    })?;
    Ok(Keys::parse(&text, &KeySource::File(path.clone()).to_string())?)
}
