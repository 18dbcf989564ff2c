//! HTTP responses to clients: JSON bodies, SSE streams with keep-alives, and error statuses per era.

use crate::budget::Hold;
use crate::protocol::sse::{EVENT_END, EVENT_START, KEEP_ALIVE, encode_event};
use crate::protocol::{Era, jsonrpc};
use crate::route::EncodedMessage;
use crate::route::Outcome;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, SizeHint};
use serde_json::Value;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// Body type of every downstream response.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// How often an idle SSE stream gets a keep-alive comment.
pub const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(15);

/// The HTTP response for what the router answered; a stream holds `stream_slot` until it ends.
pub fn outcome(
    era: Era,
    outcome: Outcome,
    stream_slot: impl FnOnce() -> Option<OwnedSemaphorePermit>,
) -> Response<Body> {
    match outcome {
        Outcome::Message(message) => json(era, &message),
        Outcome::Encoded { json, error_code, hold } => encoded(status_for(era, error_code), json, hold),
        Outcome::Stream(messages) => match stream_slot() {
            Some(slot) => sse(messages, slot),
            // Dropping the receiver tells the router the client is gone, which cancels the upstream call.
            None => too_busy("open SSE streams"),
        },
        Outcome::Accepted => accepted(),
    }
}

/// HTTP 503 with a JSON-RPC error naming the limit that was reached.
pub fn too_busy(what: &str) -> Response<Body> {
    let mut response = error_with_status(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        jsonrpc::INTERNAL_ERROR,
        &format!("mcplex is at its limit of {what}; retry shortly"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

/// A JSON response with the status the era prescribes for its error code (if it is an error).
pub fn json(era: Era, message: &Value) -> Response<Body> {
    let status = status_for(era, jsonrpc::error_of(message).map(|(code, _)| code));
    json_with_status(status, message)
}

/// The HTTP status for a JSON-RPC answer: 2026-07-28 maps some error codes to 400/404; the session era
/// uses 200 for every answer but malformed requests.
fn status_for(era: Era, error_code: Option<i64>) -> StatusCode {
    match (era, error_code) {
        (Era::Modern, Some(code)) => match code {
            jsonrpc::HEADER_MISMATCH
            | jsonrpc::MISSING_CLIENT_CAPABILITY
            | jsonrpc::UNSUPPORTED_PROTOCOL_VERSION
            | jsonrpc::PARSE_ERROR
            | jsonrpc::INVALID_REQUEST => StatusCode::BAD_REQUEST,
            jsonrpc::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        },
        (Era::Legacy, Some(jsonrpc::PARSE_ERROR | jsonrpc::INVALID_REQUEST)) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// A JSON response with an explicit status.
pub fn json_with_status(status: StatusCode, message: &Value) -> Response<Body> {
    let body = serde_json::to_vec(message).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response could not be built"))
}

/// A response whose JSON body is already encoded; `hold` (its share of the message budget) is returned
/// once the body has been handed to the connection. The length is known, so the client gets a
/// `Content-Length` rather than chunked framing.
pub fn encoded(status: StatusCode, body: Bytes, hold: Hold) -> Response<Body> {
    let body = HeldBody {
        body: Full::new(body),
        hold: Some(hold),
    };
    let mut response = Response::new(BodyExt::boxed_unsync(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// One in-memory body that keeps its message's budget share until the bytes have been taken.
struct HeldBody {
    body: Full<Bytes>,
    hold: Option<Hold>,
}

impl hyper::body::Body for HeldBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if frame.is_ready() {
            self.hold = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A JSON-RPC error sent with an explicit HTTP status (transport-level problems).
pub fn error_with_status(status: StatusCode, id: Option<Value>, code: i64, message: &str) -> Response<Body> {
    json_with_status(status, &jsonrpc::error(id, code, message))
}

/// An empty 202 for notifications and responses.
pub fn accepted() -> Response<Body> {
    empty(StatusCode::ACCEPTED)
}

/// An empty response with a status.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::new().boxed_unsync());
    *response.status_mut() = status;
    response
}

/// A response with a body of the given content type, sent as it is.
pub fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    response
}

/// A plain-text response (for requests that are not MCP at all).
pub fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Messages smaller than this are copied into one SSE frame; larger ones are sent as three frames
/// (event prefix, the message, the terminator) so their bytes are never copied.
const COPY_BELOW: usize = 64 * 1024;

/// An SSE response carrying encoded `messages` as they come, with a keep-alive comment whenever the
/// stream has been quiet for [`KEEP_ALIVE_EVERY`]; it ends when the sender is dropped.
pub fn sse(messages: mpsc::Receiver<EncodedMessage>, slot: OwnedSemaphorePermit) -> Response<Body> {
    // The state keeps the frames of the message being written and its budget hold until they are out.
    let stream = futures_util::stream::unfold(
        (messages, slot, VecDeque::<Bytes>::new(), Hold::none()),
        |(mut rx, slot, mut pending, hold)| async move {
            if let Some(frame) = pending.pop_front() {
                return Some((Ok::<_, Infallible>(Frame::data(frame)), (rx, slot, pending, hold)));
            }
            drop(hold);
            let (frame, hold) = match tokio::time::timeout(KEEP_ALIVE_EVERY, rx.recv()).await {
                Ok(Some(chunk)) if chunk.json.len() < COPY_BELOW => (encode_event(&chunk.json), chunk.hold),
                Ok(Some(chunk)) => {
                    pending.extend([chunk.json, Bytes::from_static(EVENT_END)]);
                    (Bytes::from_static(EVENT_START), chunk.hold)
                }
                Ok(None) => return None,
                Err(_) => (Bytes::from_static(KEEP_ALIVE), Hold::none()),
            };
            Some((Ok::<_, Infallible>(Frame::data(frame)), (rx, slot, pending, hold)))
        },
    );
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream.boxed())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    response
}
