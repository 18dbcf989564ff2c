//! One client request on its way to a target, and what the relay does with the target's answer: the
//! client's response written, the outcome recorded, the bridge run for input a session-era client must give.

use crate::budget::Hold;
use crate::metrics::{CallOutcome, CallRecord};
use crate::protocol::Era;
use crate::protocol::method;
use crate::protocol::raw::RawMessage;
use crate::route::bridge::ParkedCalls;
use crate::route::bridge::close_own_session;
use crate::route::bridge::{Bridge, BridgeError, asks_for_input};
use crate::route::channel::CallGetStream;
use crate::route::channel::Channel;
use crate::route::channel::{Outgoing, rewrite_response};
use crate::route::failure;
use crate::route::session::ClientSession;
use crate::route::session::EncodedMessage;
use crate::telemetry::TraceContext;
use crate::upstream::{MessageStream, PendingReply, Received, Reply, UpstreamError};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde_json::Value;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::Span;

/// Messages a streamed answer may have queued for a client that reads slowly.
pub(super) const STREAM_BUFFER: usize = 32;

/// One request on its way to a target.
pub struct Forward {
    /// Where it goes.
    pub channel: Channel,
    /// The message, with the target's names and mcplex's upstream id written in (or to be, as it is sent).
    pub message: Outgoing,
    /// The id the client used.
    pub client_id: Value,
    /// The client's era.
    pub era: Era,
    /// The client's session (session-era clients).
    pub session: Option<Arc<ClientSession>>,
    /// Counts and times the request until its answer reaches the client.
    pub record: CallRecord,
    /// The trace context the target receives (the call's span, or the client's own when tracing is off).
    pub trace: Option<TraceContext>,
    /// The call's span (`Span::none()` when tracing is off); it ends with the relay.
    pub span: Span,
    /// How the call crosses eras, when the target may ask its client for input the other era's way.
    pub bridging: EraBridge,
    /// The `Mcp-Param-*` headers the called tool declares, for a 2026-07-28 target (also on bridged retries).
    pub param_headers: Vec<(HeaderName, HeaderValue)>,
    /// The `_meta.progressToken` the client gave (for a resumed call, the one of the call first parked):
    /// the token the target may report this call's progress under.
    pub progress_token: Option<Value>,
}

/// What a target's reply to a call leaves the relay to do.
pub(super) enum Answered {
    /// The client's final message, the call finished: the target's answer rewritten (with the budget its
    /// text held, which now covers the copy that goes out), or the error that replaces it.
    Final(Result<(Bytes, Option<i64>), Value>, Hold),
    /// An answer asking for input that this call bridges as requests to its client.
    AsksForInput(RawMessage),
    /// A stream of messages to relay.
    Stream(MessageStream),
}

/// How one call crosses eras when its target asks the client for input.
pub enum EraBridge {
    /// Nothing to bridge (same era, or a client that cannot be asked).
    None,
    /// A session-era client calling a 2026-07-28 target: the target's `input_required` rounds are asked of
    /// the client as requests, and `original` (the request as sent) is retried with the answers.
    InputRounds {
        /// The request as sent.
        original: Value,
        /// The client's session, where the requests go.
        session: Arc<ClientSession>,
    },
    /// A 2026-07-28 client calling a session-era target through a session of the call's own: the call is
    /// parked when the target asks for input mid-call. Boxed: few calls need it, and `Forward` lives in
    /// every call's future.
    Parking(Box<Parking>),
}

/// What a call needs to be parked for its 2026-07-28 client's input.
pub struct Parking {
    /// The sidecar's parked calls.
    pub parks: Arc<ParkedCalls>,
    /// The capabilities the client declared in its request's `_meta`.
    pub capabilities: Value,
    /// The caller's subject, bound into the sealed state.
    pub subject: Option<String>,
    /// The GET stream of the session opened for this call: requests tied to no call arrive there.
    pub get_stream: Option<CallGetStream>,
}

impl Parking {
    /// Whether the client can answer this request from the target.
    pub(super) fn can_answer(&self, request: &Value) -> bool {
        let method = request["method"].as_str().unwrap_or_default();
        crate::protocol::mrtr::capability_for(method).is_some_and(|c| self.capabilities.get(c).is_some())
    }
}

impl Forward {
    /// Runs the input rounds of a call that bridges them and turns the outcome into the client's final
    /// message. Any other call's answer asking for input is given as it is, which its client cannot read:
    /// the error that replaces it says so.
    pub(super) async fn bridged_answer(
        &mut self,
        first: RawMessage,
        tx: &mpsc::Sender<EncodedMessage>,
    ) -> EncodedMessage {
        let outcome = match &self.bridging {
            EraBridge::InputRounds { original, session } => {
                let bridge = Bridge {
                    channel: &self.channel,
                    session,
                    original,
                    tx,
                    trace: self.trace.as_ref(),
                    params: &self.param_headers,
                };
                bridge.run(first).await
            }
            EraBridge::None | EraBridge::Parking(_) => Ok(first),
        };
        match outcome {
            Ok(last) => match self.client_response(&last) {
                Ok((json, _)) => EncodedMessage {
                    json,
                    hold: crate::budget::Hold::none(),
                },
                Err(error) => EncodedMessage::of(&error),
            },
            Err(error) => {
                tracing::info!(target_name = self.channel.link().name(), %error, "bridged call failed");
                self.finish_with(if matches!(error, BridgeError::ClientGone) {
                    CallOutcome::ClientGone
                } else {
                    CallOutcome::of_error(failure::client_code(&error))
                });
                EncodedMessage::of(&failure::error_answer(self.client_id.clone(), &error))
            }
        }
    }

    /// Reads the target's reply to this call: a final answer finishes the call (and ends the session it
    /// opened for itself, if it did).
    pub(super) fn answered(&mut self, sent: Result<Reply, UpstreamError>) -> Answered {
        let failed = match sent {
            Ok(Reply::Single(Received { message, hold })) if self.must_bridge(&message) => {
                drop(hold);
                return Answered::AsksForInput(message);
            }
            Ok(Reply::Single(Received { message, hold })) => {
                self.finish();
                self.close_own_session();
                return Answered::Final(self.client_response(&message), hold);
            }
            Ok(Reply::Stream(stream)) => return Answered::Stream(stream),
            Ok(Reply::Accepted) => UpstreamError::no_response(self.channel.link().name()),
            Err(error) => {
                tracing::warn!(target_name = self.channel.link().name(), %error, "call failed");
                error
            }
        };
        self.finish();
        self.close_own_session();
        Answered::Final(Err(self.error(&failed)), Hold::none())
    }

    /// Whether the target's final answer asks for input that mcplex must bridge for this client.
    pub(super) fn must_bridge(&self, answer: &RawMessage) -> bool {
        matches!(self.bridging, EraBridge::InputRounds { .. }) && asks_for_input(answer)
    }

    /// Whether a request the target sent mid-call is to park the call (a 2026-07-28 client that can answer it).
    pub(super) fn parks_for(&self, request: &Value) -> bool {
        self.session.is_none() && matches!(&self.bridging, EraBridge::Parking(parking) if parking.can_answer(request))
    }

    /// True when progress under `token` (`None`: it named none) is from neither this call nor another call
    /// its client has in flight at this target: a target reporting on work it was not asked about, or on
    /// another client's call, is not passed on (client SDKs report progress under an unknown token as an error).
    pub(super) fn is_stray_progress(&self, token: Option<&Value>) -> bool {
        let Some(token) = token else { return true };
        if self.progress_token.as_ref() == Some(token) {
            return false;
        }
        let awaited = self
            .session
            .as_ref()
            .is_some_and(|session| session.awaits_progress(&self.channel, token));
        if !awaited {
            tracing::debug!(target_name = self.channel.link().name(), %token, "dropped progress under a token no call gave");
        }
        !awaited
    }

    /// Sends the call as a future that owns what it needs, so it can outlive this function's frame (be
    /// raced, moved to a task or read as a stream). Only the slower paths pay for the box.
    pub(super) fn send_owned(&self, message: Outgoing) -> PendingReply {
        let (channel, trace, params) = (self.channel.clone(), self.trace.clone(), self.param_headers.clone());
        Box::pin(async move { channel.send_call(message, trace.as_ref(), &params).await })
    }

    /// Ends the upstream session the call opened for itself, if it did.
    pub(super) fn close_own_session(&self) {
        if matches!(self.bridging, EraBridge::Parking(_)) {
            close_own_session(&self.channel);
        }
    }

    pub(super) fn finish(&self) {
        if let Some(session) = &self.session {
            session.end_call(&self.client_id);
        }
    }

    /// Records how the call ended, in the metrics and on its span.
    pub(super) fn finish_with(&mut self, outcome: CallOutcome) {
        self.span.record("mcplex.outcome", outcome.as_str());
        self.record.finish(outcome);
    }

    /// The target's final response as the client must see it, or the error that replaces it; the
    /// outcome is recorded either way.
    pub(super) fn client_response(&mut self, response: &RawMessage) -> Result<(Bytes, Option<i64>), Value> {
        match rewrite_response(response, &self.client_id, self.era, self.channel.link().name()) {
            Ok(rewritten) => {
                self.finish_with(match rewritten.error_code {
                    Some(code) => CallOutcome::of_error(code),
                    None if rewritten.tool_error => CallOutcome::ToolError,
                    None => CallOutcome::Ok,
                });
                Ok((rewritten.json, rewritten.error_code))
            }
            Err(error) => {
                self.finish_with(CallOutcome::of_error(failure::client_code(&error)));
                Err(failure::error_answer(self.client_id.clone(), &error))
            }
        }
    }

    /// The error answer for a failed exchange, with its outcome recorded.
    pub(super) fn error(&mut self, error: &UpstreamError) -> Value {
        self.finish_with(CallOutcome::of_error(failure::client_code(error)));
        failure::error_answer(self.client_id.clone(), error)
    }
}

/// Tells the target to stop work nobody waits for any more (in the background).
pub(super) fn cancel_upstream(channel: &Channel, upstream_id: &Value, reason: &str) {
    let cancel = json!({ "jsonrpc": "2.0", "method": method::CANCELLED, "params": { "requestId": upstream_id, "reason": reason } });
    channel.send_detached(cancel, method::CANCELLED);
}
