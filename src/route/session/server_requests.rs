//! Requests from targets that wait for a session-era client's answer, and how one is refused when the client
//! cannot be asked.

use crate::protocol::jsonrpc;
use crate::route::channel::Channel;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Requests from targets waiting for this client's answer; more are refused at once.
pub const MAX_PENDING_SERVER_REQUESTS: usize = 256;

/// A request to the client waiting for its answer.
pub enum PendingServerRequest {
    /// A session-era target's own request: the answer goes back to it with the id it used.
    Upstream {
        /// Where the answer goes.
        channel: Channel,
        /// The id the target used.
        upstream_id: Value,
    },
    /// An input a 2026-07-28 target asked for in an `input_required` result: the answer goes to the
    /// call that is bridging it.
    Bridged(oneshot::Sender<Value>),
}

impl PendingServerRequest {
    /// Answers the request with an error at once (the client cannot be asked).
    pub fn refuse(self, reason: String) {
        match self {
            Self::Upstream { channel, upstream_id } => refuse_server_request(&channel, upstream_id, reason),
            Self::Bridged(answer) => {
                drop(answer.send(json!({ "error": { "code": jsonrpc::INTERNAL_ERROR, "message": reason } })))
            }
        }
    }
}

/// The client already has as many unanswered requests as it may.
#[derive(Debug, thiserror::Error)]
#[error("the client has {MAX_PENDING_SERVER_REQUESTS} unanswered requests from targets")]
pub struct TooManyPending;

/// Answers a target's request with an error at once (the client cannot or will not answer it).
pub fn refuse_server_request(channel: &Channel, upstream_id: Value, reason: String) {
    tracing::warn!(target_name = channel.link().name(), %reason, "a request from the target was refused");
    let error = jsonrpc::error(Some(upstream_id), jsonrpc::INTERNAL_ERROR, reason);
    channel.send_detached(error, "refusal of a server request");
}
