//! What a target sent back for one POST: nothing, one message, or a stream of messages.

use crate::budget::{Budget, Hold};
use crate::protocol::raw::RawMessage;
use crate::protocol::sse::SseDecoder;
use crate::upstream::MAX_MESSAGE_BYTES;
use crate::upstream::error::UpstreamError;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::collections::VecDeque;
use std::sync::Arc;

/// The answer to one POST.
pub enum Reply {
    /// HTTP 202: a notification or response was taken.
    Accepted,
    /// A single JSON-RPC message (a JSON object with `result` or `error`).
    Single(Received),
    /// An SSE stream of messages, ending with the response.
    Stream(MessageStream),
}

/// The messages of a JSON body that holds more than one, one after another (newline-delimited, as some
/// 2026-07-28 servers stream a call's notifications before its response); `None` for a body of one.
pub fn several_messages(body: &[u8]) -> Option<Vec<String>> {
    // A compact single message has no line break before its end; only bodies with one are looked at.
    let end = body.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if !body[..end].contains(&b'\n') {
        return None;
    }
    let values = serde_json::Deserializer::from_slice(body).into_iter::<&serde_json::value::RawValue>();
    let messages: Vec<String> = values
        .map(|v| v.map(|raw| raw.get().to_owned()))
        .collect::<Result<_, _>>()
        .ok()?;
    (messages.len() > 1).then_some(messages)
}

/// A message from a target with the part of the message budget it holds (twice its size: as it came
/// in and as it will go out); the budget is returned when the hold is dropped.
pub struct Received {
    /// The message.
    pub message: RawMessage,
    /// Its share of the budget.
    pub hold: Hold,
}

/// JSON-RPC messages read one by one from an SSE body (or handed over already read).
pub struct MessageStream {
    target: String,
    body: Option<Incoming>,
    decoder: SseDecoder,
    ready: VecDeque<String>,
    budget: Arc<Budget>,
    pending: Hold,
}

impl MessageStream {
    /// Wraps an SSE response body of `target`; buffered events take their share of `budget`.
    pub fn new(target: &str, body: Incoming, budget: &Arc<Budget>) -> Self {
        Self {
            target: target.to_owned(),
            body: Some(body),
            decoder: SseDecoder::with_limit(MAX_MESSAGE_BYTES),
            ready: VecDeque::new(),
            budget: budget.clone(),
            pending: budget.hold(),
        }
    }

    /// Messages already read (a JSON body holding several, one per line), served as a stream that ends
    /// after them; `hold` is the budget their text holds.
    pub fn buffered(target: &str, messages: Vec<String>, budget: &Arc<Budget>, hold: Hold) -> Self {
        Self {
            target: target.to_owned(),
            body: None,
            decoder: SseDecoder::with_limit(MAX_MESSAGE_BYTES),
            ready: messages.into(),
            budget: budget.clone(),
            pending: hold,
        }
    }

    /// The next message, `None` at the end of the stream. It stays raw text: readers parse what they need.
    pub async fn next(&mut self) -> Option<Result<Received, UpstreamError>> {
        loop {
            if let Some(text) = self.ready.pop_front() {
                // Priming events (SEP-1699) carry an id and an empty data line: nothing to relay.
                if text.trim().is_empty() {
                    continue;
                }
                // The first event out takes what was held while the events were buffered.
                let hold = std::mem::replace(&mut self.pending, self.budget.hold());
                return Some(Ok(Received {
                    message: RawMessage::new(text),
                    hold,
                }));
            }
            let frame = match self.body.as_mut()?.frame().await? {
                Ok(frame) => frame,
                Err(e) => {
                    return Some(Err(UpstreamError::Unreachable {
                        target: self.target.clone(),
                        reason: format!("stream broke: {e}"),
                    }));
                }
            };
            if let Ok(data) = frame.into_data() {
                if let Err(source) = self.pending.grow(2 * data.len()) {
                    return Some(Err(UpstreamError::OverBudget {
                        target: self.target.clone(),
                        source,
                    }));
                }
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

    /// The error for an event that is not a JSON-RPC message.
    pub fn garbage(&self, reason: String) -> UpstreamError {
        UpstreamError::Garbage {
            target: self.target.clone(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::several_messages;

    #[test]
    fn a_body_of_several_lines_is_several_messages_and_one_object_is_one() {
        let ndjson = b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n";
        let messages = several_messages(ndjson).unwrap();
        assert_eq!(messages.len(), 2);
        assert!(messages[1].contains("\"id\":1"));
        assert!(several_messages(b"{\"id\":1,\"result\":{}}\n").is_none());
        assert!(
            several_messages(b"{\n  \"id\": 1,\n  \"result\": {}\n}\n").is_none(),
            "pretty-printed is one message"
        );
        assert!(
            several_messages(b"{\"id\":1}\n{broken").is_none(),
            "garbage is left to the usual checks"
        );
    }
}
