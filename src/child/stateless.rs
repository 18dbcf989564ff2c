//! The 2026-07-28 side of `mcplex serve -- COMMAND`: requests without a session, checked as the sidecar
//! checks them ([`crate::downstream::modern`]) and served by the warm pool; `subscriptions/listen` gets a
//! process of its own ([`super::listen`]). `server/discover` is answered from what the server said to
//! `initialize`. A request that gives a progress token gets an SSE answer when
//! the process reports progress or logs before it answers; otherwise the answer is plain JSON.

use super::front::{Caller, StdioFront, answer_outcome};
use super::pool::{Call, PoolError};
use crate::downstream::modern;
use crate::downstream::respond::{self, Body};
use crate::protocol::sse::encode_event;
use crate::protocol::{self, Era, SSE_MEDIA_TYPE, cache, jsonrpc, meta, method};
use futures_util::StreamExt;
use http::{HeaderMap, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// The label audit lines and logs give requests served by the pool (they have no session).
const POOL_SESSION: &str = "-";

impl StdioFront {
    /// Answers one 2026-07-28 POST; `message` already carries the caller in its `_meta`.
    pub(super) async fn stateless(
        self: Arc<Self>,
        headers: &HeaderMap,
        raw: &jsonrpc::Message,
        message: Value,
        caller: Option<Caller>,
    ) -> Response<Body> {
        if raw.kind != jsonrpc::Kind::Request {
            // Nothing to pass it to: no process holds a conversation with this client.
            return respond::empty(StatusCode::ACCEPTED);
        }
        if let Err(refusal) = modern::check_request(headers, raw) {
            return *refusal;
        }
        let id = message["id"].clone();
        if let Err(reason) = self.accounting.admit(caller.as_ref(), POOL_SESSION, &message) {
            return respond::error_with_status(StatusCode::OK, Some(id), jsonrpc::DENIED_BY_POLICY, &reason);
        }
        match raw.method() {
            method::DISCOVER => {
                return match self.pool.initialize_result().await {
                    Ok(initialized) => {
                        respond::json_with_status(StatusCode::OK, &jsonrpc::result(id, discover_result(&initialized)))
                    }
                    Err(error) => failure(id, &error),
                };
            }
            method::LISTEN => return self.listen(&message, caller.as_ref()).await,
            _ => {}
        }
        let wants_events = !message["params"]["_meta"][meta::PROGRESS_TOKEN].is_null() && accepts_sse(headers);
        let (events, mut received) = mpsc::channel(super::limits::STREAM_BACKLOG);
        let call = Call {
            capabilities: message["params"]["_meta"][meta::CLIENT_CAPABILITIES].clone(),
            subject: caller.as_ref().map(|c| c.key.clone()),
            progress: wants_events.then(|| events.clone()),
            request: message,
        };
        let front = self.clone();
        let served = async move {
            let begun = Instant::now();
            let answer = front.pool.serve(&call).await;
            let outcome = match &answer {
                Ok(answer) => answer_outcome(answer),
                Err(error) => error.outcome(),
            };
            front
                .accounting
                .ended(caller.as_ref(), POOL_SESSION, &call.request, outcome, begun.elapsed());
            answer.map_err(|error| (call.request["id"].clone(), error))
        };
        if !wants_events {
            return match served.await {
                Ok(answer) => respond::json_with_status(StatusCode::OK, &answer),
                Err((id, error)) => failure(id, &error),
            };
        }
        // The answer goes last on the same channel, so whichever comes first decides the response's kind.
        tokio::spawn(async move {
            let last = match served.await {
                Ok(answer) => answer,
                Err((id, error)) => jsonrpc::error(Some(id), error.code(), error.to_string()),
            };
            let _ = events.send(last).await;
        });
        let Some(first) = received.recv().await else {
            return respond::error_with_status(StatusCode::OK, None, jsonrpc::INTERNAL_ERROR, "the request was lost");
        };
        if first.get("method").is_none() {
            return respond::json_with_status(StatusCode::OK, &first);
        }
        let rest = futures_util::stream::poll_fn(move |cx| received.poll_recv(cx));
        let events = futures_util::stream::iter([first])
            .chain(rest)
            .map(|message| Ok::<_, Infallible>(Frame::data(encode_event(message.to_string().as_bytes()))));
        let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(events)));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(SSE_MEDIA_TYPE));
        response
    }
}

/// The JSON-RPC error for a request the pool could not serve (503 when it is only busy).
fn failure(id: Value, error: &PoolError) -> Response<Body> {
    let status = match error {
        PoolError::Busy { .. } | PoolError::NoneFree(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    respond::error_with_status(status, Some(id), error.code(), &error.to_string())
}

fn accepts_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(SSE_MEDIA_TYPE))
}

/// The `server/discover` result from the server's `initialize` result (list changes and resource
/// subscriptions are offered as the server offers them: a listen stream has a process of its own).
fn discover_result(initialized: &Value) -> Value {
    let capabilities = initialized.get("capabilities").cloned().unwrap_or_else(|| json!({}));
    let mut result = json!({
        "supportedVersions": protocol::supported_versions(),
        "capabilities": capabilities,
        // As the sidecar says of its own: the answer may change when the server does.
        cache::TTL_MS: 0,
        cache::SCOPE: cache::PRIVATE,
        "_meta": { meta::SERVER_INFO: initialized.get("serverInfo").cloned().unwrap_or(Value::Null) },
    });
    if let Some(instructions) = initialized.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    protocol::own_result(Era::Modern, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discover_offers_what_the_server_said() {
        let initialized = json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {"listChanged": true}, "resources": {"subscribe": true, "listChanged": true}, "logging": {}},
            "serverInfo": {"name": "time", "version": "1"},
            "instructions": "Tells the time.",
        });
        let result = discover_result(&initialized);
        assert_eq!(result["capabilities"], initialized["capabilities"]);
        assert_eq!(result["_meta"][meta::SERVER_INFO]["name"], "time");
        assert_eq!(result["instructions"], "Tells the time.");
        assert_eq!(result["resultType"], "complete");
        assert!(
            result["supportedVersions"]
                .as_array()
                .unwrap()
                .contains(&json!(protocol::MODERN_VERSION))
        );
    }
}
