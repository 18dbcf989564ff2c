//! What an HTTP server's answer says of the request it answers, read as the answer streams past to the
//! client: its audit line and metrics then say `error` for a JSON-RPC error, as they do for stdio servers,
//! instead of `ok` for any 200. Only the start of a JSON answer and events up to a size are read; a larger
//! answer is a result (errors are small), and the answer is never held back.

use crate::child::answer_outcome;
use crate::protocol::sse::{SseDecoder, SseError};
use serde_json::Value;

/// The most of an answer read to find its outcome: a JSON body's first bytes, or one event of a stream.
const READ_AT_MOST: usize = 64 * 1024;

/// Follows one answer's bytes to the JSON-RPC response in them.
#[derive(Debug)]
pub struct AnswerWatch {
    /// Set for an event stream; a JSON body is gathered in `json`.
    events: Option<SseDecoder>,
    json: Vec<u8>,
    /// The answer grew past what is read, or could not be read: it counts as a result.
    unread: bool,
    outcome: Option<&'static str>,
}

impl AnswerWatch {
    /// A watch for an answer of this `Content-Type`.
    pub fn new(content_type: Option<&str>) -> Self {
        let sse = content_type.is_some_and(|t| t.trim_start().starts_with("text/event-stream"));
        Self {
            events: sse.then(|| SseDecoder::with_limit(READ_AT_MOST)),
            json: Vec::new(),
            unread: false,
            outcome: None,
        }
    }

    /// Reads one chunk of the answer.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.outcome.is_some() || self.unread {
            return;
        }
        let Some(decoder) = &mut self.events else {
            if self.json.len() + chunk.len() > READ_AT_MOST {
                self.unread = true;
                self.json = Vec::new();
            } else {
                self.json.extend_from_slice(chunk);
            }
            return;
        };
        let mut events = Vec::new();
        if let Err(SseError::EventTooLarge | SseError::NotUtf8) = decoder.feed(chunk, &mut events) {
            self.unread = true;
        }
        // The first response in the stream answers the request (one message per POST): notifications and
        // the server's own requests before it say nothing of it.
        self.outcome = events.iter().find_map(|event| outcome_of(event.as_bytes()));
    }

    /// The outcome of the response an event stream has carried so far, if it has.
    pub fn seen(&self) -> Option<&'static str> {
        self.outcome
    }

    /// The outcome once the answer is complete: `error` for a JSON-RPC error, else `ok`.
    pub fn finish(&self) -> &'static str {
        self.outcome
            .or_else(|| {
                (self.events.is_none() && !self.unread)
                    .then(|| outcome_of(&self.json))
                    .flatten()
            })
            .unwrap_or("ok")
    }
}

/// The outcome a response says (`error` for a JSON-RPC error, `ok` for a result); `None` for any other
/// message.
fn outcome_of(json: &[u8]) -> Option<&'static str> {
    let message: Value = serde_json::from_slice(json).ok()?;
    let is_response = message.get("error").is_some() || message.get("result").is_some();
    is_response.then(|| answer_outcome(&message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(content_type: &str, chunks: &[&str]) -> &'static str {
        let mut watch = AnswerWatch::new(Some(content_type));
        for chunk in chunks {
            watch.feed(chunk.as_bytes());
        }
        watch.finish()
    }

    #[test]
    fn a_json_answer_is_read_whole_when_small() {
        let error = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}"#;
        assert_eq!(fed("application/json", &[&error[..20], &error[20..]]), "error");
        assert_eq!(
            fed("application/json", &[r#"{"jsonrpc":"2.0","id":1,"result":{}}"#]),
            "ok"
        );
        let large = format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":{{"text":"{}"}}}}"#,
            "x".repeat(READ_AT_MOST)
        );
        assert_eq!(fed("application/json", &[&large]), "ok");
        assert_eq!(fed("application/json", &["not json"]), "ok");
    }

    #[test]
    fn a_stream_is_read_to_its_first_response() {
        let stream = [
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n",
            "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"err",
            "or\":{\"code\":-1,\"message\":\"no\"}}\n\n",
        ];
        assert_eq!(fed("text/event-stream", &stream), "error");
        let result = ["data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\ndata: {\"error\":{}}\n\n"];
        assert_eq!(fed("text/event-stream; charset=utf-8", &result), "ok");
        let large = format!("data: {}\n\n", "x".repeat(READ_AT_MOST));
        assert_eq!(fed("text/event-stream", &[&large, "data: {\"error\":{}}\n\n"]), "ok");
    }
}
