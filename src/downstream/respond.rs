//! HTTP responses to clients: JSON bodies, SSE streams, and error statuses per protocol era.

use crate::jsonrpc;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use std::convert::Infallible;
use tokio::sync::mpsc;

/// Body type of every downstream response.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Which era's status rules apply to a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEra {
    /// Session-era client: JSON-RPC errors travel with HTTP 200.
    Legacy,
    /// 2026-07-28 client: some errors map to 400/404.
    Modern,
}

/// A JSON response with the status the era prescribes for its error code (if it is an error).
pub fn json(era: ClientEra, message: &Value) -> Response<Body> {
    let status = match (era, jsonrpc::error_of(message)) {
        (ClientEra::Modern, Some((code, _))) => match code {
            jsonrpc::HEADER_MISMATCH
            | jsonrpc::MISSING_CLIENT_CAPABILITY
            | jsonrpc::UNSUPPORTED_PROTOCOL_VERSION
            | jsonrpc::PARSE_ERROR
            | jsonrpc::INVALID_REQUEST => StatusCode::BAD_REQUEST,
            jsonrpc::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        },
        (ClientEra::Legacy, Some((jsonrpc::PARSE_ERROR | jsonrpc::INVALID_REQUEST, _))) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    json_with_status(status, message)
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

/// A 200 response whose JSON body is already encoded.
pub fn json_bytes(body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response could not be built"))
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

/// An SSE response whose events come from `events` (already encoded).
pub fn sse(events: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures_util::stream::unfold(events, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream.boxed())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    response
}
