//! The client of a sentence-embedding endpoint (`toolSearch.embeddings`): an OpenAI-compatible
//! `POST /v1/embeddings` the platform runs. Each request is bounded (deadline, answer size, texts per
//! request) and each answer is checked (one finite vector per text, all of one dimension) before it is used.

use crate::budget::ReadError;
use crate::config::Embeddings;
use crate::net::exchange::{ExchangeError, exchange};
use crate::net::{HttpClient, build_client};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

/// Texts sent in one request: endpoints bound their batches (text-embeddings-inference: 32 by default).
pub const BATCH: usize = 32;
/// Largest answer read: 32 vectors of 4,096 dimensions written out as decimals fit.
const MAX_ANSWER: usize = 8 << 20;
/// Largest vector accepted.
const MAX_DIMENSIONS: usize = 4096;

/// Why the endpoint gave no usable vectors.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The client could not be built (TLS files).
    #[error("the client for {url} could not be built: {source}")]
    Client {
        /// The endpoint.
        url: String,
        /// What was wrong.
        source: crate::net::tls::TlsError,
    },
    /// The API key file could not be read.
    #[error("cannot read the API key file `{path}`: {source}")]
    ApiKey {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// No connection, or it broke.
    #[error("{url} is unreachable: {reason}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// The cause chain.
        reason: String,
    },
    /// No complete answer in time.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout {
        /// The endpoint.
        url: String,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The answer was too long or broke off.
    #[error("the answer of {url} could not be read: {source}")]
    Body {
        /// The endpoint.
        url: String,
        /// What went wrong.
        source: ReadError,
    },
    /// The endpoint refused the request.
    #[error("{url} answered {status}: {message}")]
    Refused {
        /// The endpoint.
        url: String,
        /// Its status.
        status: StatusCode,
        /// The start of its answer.
        message: String,
    },
    /// A query was not sent: the last one failed, and queries skip the endpoint for a while.
    #[error("{url} failed a query's embedding {since:?} ago; queries skip it for {rest:?} after a failure")]
    Resting {
        /// The endpoint.
        url: String,
        /// How long ago the failure was.
        since: Duration,
        /// How long queries skip the endpoint after it.
        rest: Duration,
    },
    /// The answer is not the vectors asked for.
    #[error("{url} answered something other than {asked} embeddings: {reason}")]
    Malformed {
        /// The endpoint.
        url: String,
        /// How many texts were sent.
        asked: usize,
        /// What was wrong.
        reason: String,
    },
}

impl EmbedError {
    /// True when the endpoint refused what it was sent (400, 413, 422) rather than failing as a whole:
    /// other queries may still get their vectors.
    fn is_about_this_text(&self) -> bool {
        matches!(self, EmbedError::Refused { status, .. }
            if [StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE, StatusCode::UNPROCESSABLE_ENTITY].contains(status))
    }
}

/// How long queries skip the endpoint after a query's embedding failed; each failure in a row doubles it.
const FIRST_REST: Duration = Duration::from_secs(1);
/// The longest such rest.
const LONGEST_REST: Duration = Duration::from_secs(30);

/// One embedding endpoint and the pooled connection to it.
pub struct EmbeddingClient {
    settings: Embeddings,
    client: HttpClient,
    /// Queries wait for their embedding, so a hung endpoint would cost every search its whole `timeout`;
    /// after a failure the next queries rank by words at once, and one query a rest later tries again.
    query_rest: std::sync::Mutex<QueryRest>,
}

/// When the last query's embedding failed and how long queries skip the endpoint since.
#[derive(Default)]
struct QueryRest {
    failed_at: Option<Instant>,
    rest: Duration,
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Datum>,
}

#[derive(Deserialize)]
struct Datum {
    index: usize,
    embedding: Vec<f32>,
}

impl EmbeddingClient {
    /// A client for `settings`.
    pub fn new(settings: &Embeddings) -> Result<Self, EmbedError> {
        let https = settings.url.scheme_str() == Some("https");
        let client = build_client(settings.tls.as_ref(), https).map_err(|source| EmbedError::Client {
            url: settings.url.to_string(),
            source,
        })?;
        Ok(Self {
            settings: settings.clone(),
            client,
            query_rest: std::sync::Mutex::default(),
        })
    }

    /// The unit-length vector of one search query. After a failure of the endpoint (not a refusal of one
    /// query's text), queries fail at once with [`EmbedError::Resting`] for a rest (1 s, doubling with each
    /// failure in a row up to 30 s); the first query after it is sent, and a success ends the rests.
    pub async fn embed_query(&self, query: &str) -> Result<Vec<f32>, EmbedError> {
        {
            let rest = crate::sync::lock(&self.query_rest);
            if let Some(failed_at) = rest.failed_at
                && failed_at.elapsed() < rest.rest
            {
                return Err(EmbedError::Resting {
                    url: self.settings.url.to_string(),
                    since: failed_at.elapsed(),
                    rest: rest.rest,
                });
            }
        }
        let embedded = self.embed(&[query.to_owned()]).await;
        let mut rest = crate::sync::lock(&self.query_rest);
        match embedded {
            Ok(mut vectors) => {
                *rest = QueryRest::default();
                // `embed` checked that there is one vector per text.
                vectors.pop().ok_or_else(|| EmbedError::Malformed {
                    url: self.settings.url.to_string(),
                    asked: 1,
                    reason: "no vector".to_owned(),
                })
            }
            Err(error) if error.is_about_this_text() => Err(error),
            Err(error) => {
                rest.rest = if rest.failed_at.is_some() {
                    (rest.rest * 2).min(LONGEST_REST)
                } else {
                    FIRST_REST
                };
                rest.failed_at = Some(Instant::now());
                Err(error)
            }
        }
    }

    /// The settings it was built from (a config edit that changes them needs a new client and new vectors).
    pub fn settings(&self) -> &Embeddings {
        &self.settings
    }

    /// The unit-length vectors of `texts` (at most [`BATCH`]), in their order.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let url = self.settings.url.to_string();
        let body = json!({"input": texts, "model": self.settings.model, "encoding_format": "float"});
        let mut request = Request::post(&self.settings.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json");
        if let Some(path) = &self.settings.api_key_file {
            let key = std::fs::read_to_string(path).map_err(|source| EmbedError::ApiKey {
                path: path.display().to_string(),
                source,
            })?;
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", key.trim()));
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| EmbedError::Unreachable {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let timeout = self.settings.timeout;
        let (status, body) = exchange(&self.client, request, timeout, MAX_ANSWER)
            .await
            .map_err(|e| match e {
                ExchangeError::Unreachable(reason) => EmbedError::Unreachable {
                    url: url.clone(),
                    reason,
                },
                ExchangeError::Timeout(_) => EmbedError::Timeout {
                    url: url.clone(),
                    timeout,
                },
                ExchangeError::Body(source) => EmbedError::Body {
                    url: url.clone(),
                    source,
                },
            })?;
        if !status.is_success() {
            let message: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            return Err(EmbedError::Refused { url, status, message });
        }
        unit_vectors(&body, texts.len()).map_err(|reason| EmbedError::Malformed {
            url,
            asked: texts.len(),
            reason,
        })
    }
}

/// The vectors of an answer, put in input order, checked and scaled to unit length.
fn unit_vectors(body: &[u8], asked: usize) -> Result<Vec<Vec<f32>>, String> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| format!("not an embeddings list: {e}"))?;
    if answer.data.len() != asked {
        return Err(format!("{} vectors came back", answer.data.len()));
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; asked];
    let mut dimensions = None;
    for datum in answer.data {
        let length = datum.embedding.len();
        if length == 0 || length > MAX_DIMENSIONS {
            return Err(format!("a vector has {length} dimensions"));
        }
        if *dimensions.get_or_insert(length) != length {
            return Err("the vectors differ in dimension".into());
        }
        let slot = vectors
            .get_mut(datum.index)
            .ok_or_else(|| format!("index {} is out of range", datum.index))?;
        if slot.is_some() {
            return Err(format!("index {} came twice", datum.index));
        }
        let norm = datum.embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !norm.is_finite() || norm == 0.0 {
            return Err(format!("vector {} is zero or not finite", datum.index));
        }
        *slot = Some(datum.embedding.into_iter().map(|x| x / norm).collect());
    }
    // Every index was in range and none came twice, so each slot is filled.
    Ok(vectors.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_put_in_order_and_scaled() {
        let body = br#"{"data":[{"index":1,"embedding":[0,2]},{"index":0,"embedding":[3,4]}]}"#;
        let vectors = unit_vectors(body, 2).unwrap();
        assert_eq!(vectors, vec![vec![0.6, 0.8], vec![0.0, 1.0]]);
    }

    #[test]
    fn answers_that_are_not_the_vectors_asked_for_are_refused() {
        for (body, says) in [
            (&br#"{"data":[{"index":0,"embedding":[1]}]}"#[..], "1 vectors came back"),
            (
                br#"{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[1]}]}"#,
                "came twice",
            ),
            (
                br#"{"data":[{"index":0,"embedding":[1]},{"index":5,"embedding":[1]}]}"#,
                "out of range",
            ),
            (
                br#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[1,2]}]}"#,
                "differ in dimension",
            ),
            (
                br#"{"data":[{"index":0,"embedding":[0]},{"index":1,"embedding":[1]}]}"#,
                "zero or not finite",
            ),
            (
                br#"{"data":[{"index":0,"embedding":[]},{"index":1,"embedding":[1]}]}"#,
                "0 dimensions",
            ),
            (br#"{"object":"error"}"#, "not an embeddings list"),
        ] {
            let error = unit_vectors(body, 2).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
    }
}
