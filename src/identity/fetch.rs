//! One bounded HTTP exchange with an authorization server: a deadline over the whole exchange and a
//! size limit on the answer.

use crate::net::HttpClient;
use crate::net::exchange::{ExchangeError, exchange};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::time::Duration;

/// Deadline of one exchange with an authorization server.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Largest answer read from an authorization server.
pub const MAX_ANSWER: usize = 256 * 1024;

/// Why an authorization server gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No connection, or it broke.
    #[error("{url} is unreachable: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// The cause chain.
        reason: String,
    },
    /// No complete answer within [`DEADLINE`].
    #[error("{url} did not answer within {DEADLINE:?}")]
    Timeout {
        /// The URL asked.
        url: String,
    },
    /// The answer was too long or broke off.
    #[error("the answer of {url} could not be read: {source}")]
    Body {
        /// The URL asked.
        url: String,
        /// What went wrong.
        source: crate::budget::ReadError,
    },
}

/// Sends `request` and reads the whole answer.
pub async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), FetchError> {
    let url = request.uri().to_string();
    exchange(client, request, DEADLINE, MAX_ANSWER)
        .await
        .map_err(|e| match e {
            ExchangeError::Unreachable(reason) => FetchError::Unreachable { url, reason },
            ExchangeError::Timeout(_) => FetchError::Timeout { url },
            ExchangeError::Body(source) => FetchError::Body { url, source },
        })
}
