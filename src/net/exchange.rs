//! One bounded HTTP exchange, for the clients that read a whole answer (authorization servers, the
//! embedding endpoint): a deadline over all of it (connection, headers and body) and a limit on the
//! answer's size. Callers name the peer in their own errors.

use crate::budget::{Hold, ReadError, read_body};
use crate::net::{HttpClient, error_chain};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::time::Duration;

/// Why an exchange gave no complete answer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// No connection, or it broke; the text is the cause chain.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No complete answer by the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer was too long or broke off.
    #[error("the answer could not be read: {0}")]
    Body(#[source] ReadError),
}

/// Sends `request` and reads the whole answer, all within `deadline` and `max_answer` bytes.
pub async fn exchange(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    deadline: Duration,
    max_answer: usize,
) -> Result<(StatusCode, Bytes), ExchangeError> {
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| ExchangeError::Unreachable(error_chain(&e)))?;
        let status = response.status();
        let body = read_body(response.into_body(), max_answer, &mut Hold::none(), 1)
            .await
            .map_err(ExchangeError::Body)?;
        Ok((status, body))
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .unwrap_or(Err(ExchangeError::Timeout(deadline)))
}
