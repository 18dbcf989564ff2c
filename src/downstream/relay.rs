//! Forwards one client request to a target and relays the answer: JSON as JSON, SSE as SSE,
//! with ids mapped both ways and progress extending the deadline.

use crate::downstream::adapt::response_for;
use crate::downstream::respond::{self, Body, ClientEra};
use crate::downstream::session::Session;
use crate::jsonrpc;
use crate::sse::{KEEP_ALIVE, encode_event};
use crate::upstream::{Channel, MessageStream, Reply, UpstreamError};
use bytes::Bytes;
use http::{HeaderValue, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often an idle SSE stream gets a keep-alive comment.
pub const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(15);

/// One request on its way to a target.
pub struct Forward {
    /// Where it goes.
    pub channel: Channel,
    /// The message with the target's names and mcplex's upstream id written in.
    pub message: Value,
    /// The id the client used.
    pub client_id: Value,
    /// The client's era.
    pub era: ClientEra,
    /// The client's session (legacy clients).
    pub session: Option<Arc<Session>>,
    /// The agent's Authorization header (forwarded only to passthrough targets).
    pub authorization: Option<HeaderValue>,
}

/// Sends the request and turns the target's answer into the client's response.
pub async fn forward(mut forward: Forward) -> Response<Body> {
    let target = forward.channel.target().clone();
    let upstream_id = forward.message.get("id").cloned().unwrap_or(Value::Null);
    if let Some(session) = &forward.session {
        session.start_call(&forward.client_id, &forward.channel, &upstream_id);
    }
    let message = std::mem::take(&mut forward.message);
    let reply = forward.channel.send(message, forward.authorization.as_ref()).await;
    match reply {
        Ok(Reply::Single(response)) => {
            finish(&forward);
            respond::json(forward.era, &client_response(&forward, response, target.name()))
        }
        Ok(Reply::Stream(stream)) => {
            let (tx, rx) = mpsc::channel(32);
            tokio::spawn(relay_stream(forward, stream, upstream_id, tx));
            respond::sse(rx)
        }
        Ok(Reply::Accepted) => {
            finish(&forward);
            let error = UpstreamError::Garbage {
                target: target.name().into(),
                reason: "a request was answered with 202 and no response".into(),
            };
            respond::json(forward.era, &upstream_error(&forward.client_id, &error))
        }
        Err(error) => {
            finish(&forward);
            tracing::warn!(target_name = target.name(), %error, "call failed");
            respond::json(forward.era, &upstream_error(&forward.client_id, &error))
        }
    }
}

fn finish(forward: &Forward) {
    if let Some(session) = &forward.session {
        session.end_call(&forward.client_id);
    }
}

fn client_response(forward: &Forward, mut response: Value, target: &str) -> Value {
    response["id"] = forward.client_id.clone();
    response_for(forward.era, response, target)
}

/// The JSON-RPC error a client gets when its target failed.
pub fn upstream_error(client_id: &Value, error: &UpstreamError) -> Value {
    jsonrpc::error(Some(client_id.clone()), error.code(), error.to_string())
}

async fn relay_stream(forward: Forward, mut stream: MessageStream, upstream_id: Value, tx: mpsc::Sender<Bytes>) {
    let target = forward.channel.target().clone();
    let deadline = target.config.timeout;
    let mut waited = Duration::ZERO;
    let outcome = loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = tokio::time::sleep(KEEP_ALIVE_EVERY.min(deadline - waited)) => {
                waited += KEEP_ALIVE_EVERY.min(deadline - waited);
                if waited >= deadline {
                    break Err(UpstreamError::Timeout { target: target.name().into(), after: deadline });
                }
                if tx.send(Bytes::from_static(KEEP_ALIVE)).await.is_err() {
                    break Ok(None);
                }
                continue;
            }
        };
        // Any message from the target (progress included) restarts the deadline.
        waited = Duration::ZERO;
        let message = match next {
            None => {
                break Err(UpstreamError::Garbage {
                    target: target.name().into(),
                    reason: "the stream ended before the response".into(),
                });
            }
            Some(Err(error)) => break Err(error),
            Some(Ok(message)) => message,
        };
        let is_final = message.get("method").is_none() && message.get("id") == Some(&upstream_id);
        let outgoing = if is_final {
            client_response(&forward, message, target.name())
        } else if message.get("method").is_some() && message.get("id").is_some() {
            match &forward.session {
                Some(session) => session.register_server_request(&forward.channel, message),
                None => {
                    tracing::warn!(
                        target_name = target.name(),
                        "a target sent a request to a client that cannot answer it; dropped"
                    );
                    continue;
                }
            }
        } else {
            message
        };
        if tx
            .send(encode_event(&serde_json::to_vec(&outgoing).unwrap_or_default()))
            .await
            .is_err()
        {
            break Ok(None);
        }
        if is_final {
            break Ok(Some(()));
        }
    };
    finish(&forward);
    match outcome {
        Ok(Some(())) => {}
        Ok(None) => cancel_upstream(&forward, &upstream_id).await,
        Err(error) => {
            tracing::warn!(target_name = target.name(), %error, "streamed call failed");
            let _ = tx
                .send(encode_event(
                    &serde_json::to_vec(&upstream_error(&forward.client_id, &error)).unwrap_or_default(),
                ))
                .await;
            if error.is_unreachable() {
                cancel_upstream(&forward, &upstream_id).await;
            }
        }
    }
}

/// Tells the target to stop work nobody waits for any more.
async fn cancel_upstream(forward: &Forward, upstream_id: &Value) {
    let cancel = json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": upstream_id, "reason": "the client went away" } });
    let _ = forward.channel.send(cancel, None).await;
}
