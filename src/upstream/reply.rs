//! What a target sent back for one POST: nothing, one message, or a stream of messages.

use crate::protocol::sse::SseDecoder;
use crate::upstream::MAX_MESSAGE_BYTES;
use crate::upstream::error::UpstreamError;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use std::collections::VecDeque;

/// The answer to one POST.
pub enum Reply {
    /// HTTP 202: a notification or response was taken.
    Accepted,
    /// A single JSON-RPC message.
    Single(Value),
    /// An SSE stream of messages, ending with the response.
    Stream(MessageStream),
}

/// JSON-RPC messages read one by one from an SSE body.
pub struct MessageStream {
    target: String,
    body: Incoming,
    decoder: SseDecoder,
    ready: VecDeque<String>,
}

impl MessageStream {
    /// Wraps an SSE response body of `target`.
    pub fn new(target: &str, body: Incoming) -> Self {
        Self {
            target: target.to_owned(),
            body,
            decoder: SseDecoder::with_limit(MAX_MESSAGE_BYTES),
            ready: VecDeque::new(),
        }
    }

    /// The next message, `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Result<Value, UpstreamError>> {
        loop {
            if let Some(text) = self.ready.pop_front() {
                // Priming events (SEP-1699) carry an id and an empty data line: nothing to relay.
                if text.trim().is_empty() {
                    continue;
                }
                return Some(
                    serde_json::from_str(&text).map_err(|e| self.garbage(format!("an SSE event is not JSON: {e}"))),
                );
            }
            let frame = match self.body.frame().await? {
                Ok(frame) => frame,
                Err(e) => {
                    return Some(Err(UpstreamError::Unreachable {
                        target: self.target.clone(),
                        reason: format!("stream broke: {e}"),
                    }));
                }
            };
            if let Ok(data) = frame.into_data() {
                let mut events = Vec::new();
                if let Err(e) = self.decoder.feed(&data, &mut events) {
                    return Some(Err(match e {
                        crate::protocol::sse::SseError::EventTooLarge => UpstreamError::TooLarge {
                            target: self.target.clone(),
                            limit: MAX_MESSAGE_BYTES,
                        },
                        other => self.garbage(other.to_string()),
                    }));
                }
                self.ready.extend(events);
            }
        }
    }

    fn garbage(&self, reason: String) -> UpstreamError {
        UpstreamError::Garbage {
            target: self.target.clone(),
            reason,
        }
    }
}
