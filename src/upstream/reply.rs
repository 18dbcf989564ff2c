//! What a target sent back for one POST: nothing, one message, or a stream of messages.

use crate::budget::{Budget, Hold};
use crate::net::HttpClient;
use crate::protocol::header::LAST_EVENT_ID;
use crate::protocol::raw::RawMessage;
use crate::protocol::sse::SseDecoder;
use crate::upstream::MAX_MESSAGE_BYTES;
use crate::upstream::error::UpstreamError;
use crate::upstream::reopen::Reopen;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Most times one stream is resumed: a server that polls (SEP-1699) closes a long call's stream now and
/// then, but one that closes it on every reconnect must not keep the call in a loop.
const MAX_RESUMES: u32 = 64;

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

/// How a session's POST stream is resumed when its target closes it before the response (SEP-1699, as
/// TypeScript SDK servers with an event store do): a GET with the POST's session, version and credential
/// headers and `Last-Event-ID`, after the wait the target asked for.
pub struct Resume {
    /// The target's pooled client.
    pub client: HttpClient,
    /// The target's URL.
    pub uri: Uri,
    /// The POST's headers that belong on the GET too.
    pub headers: HeaderMap,
    /// The target's deadline, for each GET's headers and the longest wait before one.
    pub timeout: Duration,
}

/// A target's reply still to come.
pub type PendingReply = Pin<Box<dyn Future<Output = Result<Reply, UpstreamError>> + Send>>;

/// JSON-RPC messages read one by one from an SSE body (or handed over already read, or from a reply still
/// to come).
pub struct MessageStream {
    /// Awaited before anything else: its messages become the stream's (a JSON answer is one message).
    /// Boxed once more so that a thin pointer, not a wide one, is what every stream carries.
    reply: Option<Box<PendingReply>>,
    target: String,
    body: Option<Incoming>,
    decoder: SseDecoder,
    ready: VecDeque<String>,
    budget: Arc<Budget>,
    pending: Hold,
    /// Set on a session's POST stream; taken when the response was read, so nothing resumes after it.
    resume: Option<Box<(Resume, Reopen)>>,
}

impl MessageStream {
    /// Wraps an SSE response body of `target`; buffered events take their share of `budget`.
    pub fn new(target: &str, body: Incoming, budget: &Arc<Budget>) -> Self {
        Self {
            reply: None,
            target: target.to_owned(),
            body: Some(body),
            decoder: SseDecoder::with_limit(MAX_MESSAGE_BYTES),
            ready: VecDeque::new(),
            budget: budget.clone(),
            pending: budget.hold(),
            resume: None,
        }
    }

    /// Makes the stream resume when its target closes it before a response came.
    pub fn resuming(mut self, resume: Resume) -> Self {
        let reopen = Reopen::at_most(MAX_RESUMES).waiting_at_most(resume.timeout);
        self.resume = Some(Box::new((resume, reopen)));
        self
    }

    /// The id of the last event read that had one: where a reopened stream resumes (`Last-Event-ID`).
    pub fn last_event_id(&self) -> Option<&str> {
        self.decoder.last_event_id()
    }

    /// How long the target asked to wait before reconnecting (SSE `retry`), when it said.
    pub fn retry(&self) -> Option<Duration> {
        self.decoder.retry_ms().map(|ms| Duration::from_millis(ms.into()))
    }

    /// Messages already read (a JSON body holding several, one per line), served as a stream that ends
    /// after them; `hold` is the budget their text holds.
    pub fn buffered(target: &str, messages: Vec<String>, budget: &Arc<Budget>, hold: Hold) -> Self {
        Self {
            reply: None,
            target: target.to_owned(),
            body: None,
            decoder: SseDecoder::with_limit(MAX_MESSAGE_BYTES),
            ready: messages.into(),
            budget: budget.clone(),
            pending: hold,
            resume: None,
        }
    }

    /// The messages of `reply`, once it comes: a stream that can be read beside another (a session's GET
    /// stream) before the target has answered at all.
    pub fn awaiting(target: &str, reply: PendingReply, budget: &Arc<Budget>) -> Self {
        let mut stream = Self::buffered(target, Vec::new(), budget, budget.hold());
        stream.reply = Some(Box::new(reply));
        stream
    }

    /// The next message, `None` at the end of the stream. It stays raw text: readers parse what they need.
    /// Cancel-safe: a reply still awaited is kept until it comes.
    pub async fn next(&mut self) -> Option<Result<Received, UpstreamError>> {
        if let Some(reply) = self.reply.as_mut() {
            let outcome = reply.as_mut().await;
            self.reply = None;
            match outcome {
                Ok(Reply::Stream(stream)) => *self = stream,
                Ok(Reply::Single(received)) => return Some(Ok(received)),
                Ok(Reply::Accepted) => return Some(Err(UpstreamError::no_response(&self.target))),
                Err(error) => return Some(Err(error)),
            }
        }
        loop {
            if let Some(text) = self.ready.pop_front() {
                // Priming events (SEP-1699) carry an id and an empty data line: nothing to relay.
                if text.trim().is_empty() {
                    continue;
                }
                // The first event out takes what was held while the events were buffered.
                let hold = std::mem::replace(&mut self.pending, self.budget.hold());
                let message = RawMessage::new(text);
                if self.resume.is_some() && message.object().is_ok_and(|o| o.has("result") || o.has("error")) {
                    // The POST stream carries one response; once it came, an end is the end.
                    self.resume = None;
                }
                return Some(Ok(Received { message, hold }));
            }
            let frame = match self.body.as_mut()?.frame().await {
                Some(Ok(frame)) => frame,
                ended => {
                    let broke = match ended {
                        Some(Err(e)) => Some(e),
                        _ => None,
                    };
                    match self.resume_stream().await {
                        Some(Ok(())) => continue,
                        Some(Err(error)) => return Some(Err(error)),
                        None => {
                            return broke.map(|cause| {
                                Err(UpstreamError::unreachable(
                                    &self.target,
                                    "the stream broke",
                                    Some(Box::new(cause)),
                                ))
                            });
                        }
                    }
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

    /// Reopens a stream that ended before its response, where it left off; `None` when it is not to be
    /// resumed (not a session's POST stream, the response came, or no event gave an id to resume from).
    async fn resume_stream(&mut self) -> Option<Result<(), UpstreamError>> {
        let retry = self.retry();
        let (resume, reopen) = self.resume.as_deref_mut()?;
        let last_event_id = self.decoder.last_event_id()?;
        reopen.ended(Some(last_event_id), retry);
        let Some(wait) = reopen.next_wait() else {
            return Some(Err(self.garbage(format!(
                "the target closed the stream {MAX_RESUMES} times before the response"
            ))));
        };
        let Ok(last_event_id) = HeaderValue::from_str(last_event_id) else {
            return Some(Err(self.garbage("an SSE event id is not a valid header value".into())));
        };
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = resume.uri.clone();
        *request.headers_mut() = resume.headers.clone();
        request.headers_mut().insert(LAST_EVENT_ID, last_event_id);
        tracing::debug!(target_name = %self.target, ?wait, attempt = reopen.attempts(), "the target closed a call's stream before the response; resuming it");
        tokio::time::sleep(wait).await;
        let response = match tokio::time::timeout(resume.timeout, resume.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                return Some(Err(UpstreamError::unreachable(
                    &self.target,
                    "resuming the stream failed",
                    Some(Box::new(e)),
                )));
            }
            Err(_) => {
                return Some(Err(UpstreamError::unreachable(
                    &self.target,
                    "resuming the stream timed out",
                    None,
                )));
            }
        };
        if response.status() != StatusCode::OK || !is_event_stream(response.headers()) {
            let status = response.status().as_u16();
            return Some(Err(self.garbage(format!(
                "the stream ended before the response and resuming it with Last-Event-ID got HTTP {status}"
            ))));
        }
        tracing::debug!(target_name = %self.target, "stream resumed");
        self.decoder.discard_partial();
        self.body = Some(response.into_body());
        Some(Ok(()))
    }

    /// The error for an event that is not a JSON-RPC message.
    pub fn garbage(&self, reason: String) -> UpstreamError {
        UpstreamError::Garbage {
            target: self.target.clone(),
            reason,
        }
    }
}

/// True when a response's `Content-Type` is `text/event-stream`.
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| crate::protocol::is_media_type(v, crate::protocol::SSE_MEDIA_TYPE))
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
