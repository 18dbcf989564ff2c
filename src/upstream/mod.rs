//! Talking to targets: pooled HTTP(S) clients, credentials, era detection and legacy sessions.
//! Knows nothing of the agent side: what to send where is decided in `route`.

pub mod credentials;
pub mod error;
pub mod http;
pub mod link;
pub mod reply;
pub mod session;
pub mod target;
pub mod tls;

pub use error::UpstreamError;
pub use link::{ExchangeGuard, Link, Payload};
pub use reply::{MessageStream, Received, Reply};
pub use session::LegacySession;
pub use target::{Dialects, Target};

use serde_json::Value;

/// Largest single message (a JSON body or one SSE event) mcplex reads from a target. A larger one is
/// refused with an error naming the target instead of being buffered.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Reads a reply to its final response (the message whose id is `id`), skipping anything else, as a
/// tree (for mcplex's own small exchanges: lists, initialize). Callers bound it with the target's deadline.
pub async fn final_response(reply: Reply, id: &Value, target: &str) -> Result<Value, UpstreamError> {
    let garbage = |e: serde_json::Error| UpstreamError::Garbage {
        target: target.into(),
        reason: format!("the answer is not JSON: {e}"),
    };
    let response = |value: Value| {
        if value.get("result").is_some() || value.get("error").is_some() {
            Ok(value)
        } else {
            Err(UpstreamError::Garbage {
                target: target.into(),
                reason: "the JSON answer has neither `result` nor `error`".into(),
            })
        }
    };
    match reply {
        Reply::Single(received) => response(received.message.value().map_err(garbage)?),
        Reply::Accepted => Err(UpstreamError::Garbage {
            target: target.into(),
            reason: "a request was answered with 202 and no response".into(),
        }),
        Reply::Stream(mut stream) => {
            while let Some(message) = stream.next().await {
                let message = message?.message.value().map_err(garbage)?;
                if message.get("id") == Some(id) && message.get("method").is_none() {
                    return response(message);
                }
            }
            Err(UpstreamError::Garbage {
                target: target.into(),
                reason: "the stream ended before the response".into(),
            })
        }
    }
}
