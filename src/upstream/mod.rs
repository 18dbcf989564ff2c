//! Talking to targets: links over the pooled clients of `net`, credentials, era detection, legacy sessions, and
//! when a stream is reopened.
//! Knows nothing of the agent side: what to send where is decided in `route`.

pub mod credentials;
pub mod error;
pub mod legacy_session;
pub mod link;
mod pool;
pub mod reopen;
pub mod reply;
pub mod target;

pub use error::UpstreamError;
pub use legacy_session::LegacySession;
pub use link::{ExchangeGuard, Link, Payload};
pub use reply::{MessageStream, PendingReply, Received, Reply};
pub use target::{Dialects, Target};

use crate::protocol::jsonrpc::{Kind, Message};
use serde_json::Value;

/// Largest single message (a JSON body or one SSE event) mcplex reads from a target. A larger one is
/// refused with an error naming the target instead of being buffered.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Reads a reply to its final response (the message whose id is `id`), skipping anything else, as a
/// tree (for mcplex's own small exchanges: initialize). Callers bound it with the target's deadline.
pub async fn final_response(reply: Reply, id: &Value, target: &str) -> Result<Value, UpstreamError> {
    final_answer(reply, target, |received| {
        let value = received.message.value().map_err(|e| not_json(target, e))?;
        let is_answer = value.get("id") == Some(id) && value.get("method").is_none();
        Ok((value, is_answer))
    })
    .await
}

/// [`final_response`] kept as text with its envelope indexed, for answers too large to hold as a tree
/// (list pages: a tree of a thousand tools takes ten times their text).
pub async fn final_message(reply: Reply, id: &Value, target: &str) -> Result<Message, UpstreamError> {
    final_answer(reply, target, |received| {
        let message =
            Message::parse(received.message.into_bytes()).map_err(|e| UpstreamError::unreadable(target, e))?;
        let is_answer = message.kind == Kind::Response && message.id() == Some(id);
        Ok((message, is_answer))
    })
    .await
}

/// The answer in a reply, which must have `result` or `error`: a single message as it is, or the first
/// message of a stream that `read` says is the answer (it returns each message read and whether it
/// is). A stream that ends without it is an error naming the target.
async fn final_answer<T: AsJsonRpcAnswer>(
    reply: Reply,
    target: &str,
    mut read: impl FnMut(Received) -> Result<(T, bool), UpstreamError>,
) -> Result<T, UpstreamError> {
    let garbage = |reason: &str| UpstreamError::Garbage {
        target: target.into(),
        reason: reason.into(),
    };
    let checked = |found: T| {
        if found.has_outcome() {
            Ok(found)
        } else {
            Err(garbage("the JSON answer has neither `result` nor `error`"))
        }
    };
    match reply {
        Reply::Single(received) => checked(read(received)?.0),
        Reply::Accepted => Err(UpstreamError::no_response(target)),
        Reply::Stream(mut stream) => {
            while let Some(received) = stream.next().await {
                if let (found, true) = read(received?)? {
                    return checked(found);
                }
            }
            Err(garbage("the stream ended before the response"))
        }
    }
}

/// An answer read as a tree or as indexed text.
trait AsJsonRpcAnswer {
    /// True when it has `result` or `error`.
    fn has_outcome(&self) -> bool;
}

impl AsJsonRpcAnswer for Value {
    fn has_outcome(&self) -> bool {
        self.get("result").is_some() || self.get("error").is_some()
    }
}

impl AsJsonRpcAnswer for Message {
    fn has_outcome(&self) -> bool {
        self.range("result").is_some() || self.range("error").is_some()
    }
}

fn not_json(target: &str, error: serde_json::Error) -> UpstreamError {
    UpstreamError::unreadable(target, error)
}
