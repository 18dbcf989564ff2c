//! Forwards one client request to a target and carries the answer back: one message as one message,
//! a stream as a stream, with ids mapped both ways and progress extending the deadline.

use crate::metrics::{CallOutcome, CallRecord, Delivery};
use crate::protocol::raw::RawMessage;
use crate::protocol::{Era, jsonrpc, meta, method};
use crate::route::adapt::{AdaptError, Outgoing, rewrite_response};
use crate::route::bridge::{Bridge, BridgeError, asks_for_input};
use crate::route::channel::Channel;
use crate::route::message::{Chunk, Outcome};
use crate::route::park::{self, Parked, ParkedCalls, close_own_session};
use crate::route::session::{ClientSession, refuse_server_request};
use crate::route::side::SideStream;
use crate::route::streams::ClientStreams;
use crate::telemetry::TraceContext;
use crate::upstream::{ExchangeGuard, MessageStream, PendingReply, Received, Reply, UpstreamError};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{Instrument, Span};

/// Messages a streamed answer may have queued for a client that reads slowly.
const STREAM_BUFFER: usize = 32;

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
    /// The request as sent, kept when the target may ask for input that must be bridged (a session-era
    /// client calling a 2026-07-28 target): the bridge retries it with the answers.
    pub original: Option<Value>,
    /// For a 2026-07-28 client calling a session-era target: where the call is parked when the target
    /// asks for input mid-call, what the client can answer, and the session the call opened for itself.
    /// Boxed: few calls need it, and `Forward` lives in every call's future.
    pub parking: Option<Box<Parking>>,
    /// The `Mcp-Param-*` headers the called tool declares, for a 2026-07-28 target (also on bridged retries).
    pub param_headers: Vec<(HeaderName, HeaderValue)>,
    /// The `_meta.progressToken` the client gave (for a resumed call, the one of the call first parked):
    /// the token the target may report this call's progress under.
    pub progress_token: Option<Value>,
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
    pub side: Option<SideStream>,
}

impl Parking {
    /// Whether the client can answer this request from the target.
    fn can_answer(&self, request: &Value) -> bool {
        let method = request["method"].as_str().unwrap_or_default();
        crate::protocol::mrtr::capability_for(method).is_some_and(|c| self.capabilities.get(c).is_some())
    }
}

impl Forward {
    /// The bridge for a target's request for input, when this call can have one.
    fn bridge<'a>(&'a self, tx: &'a mpsc::Sender<Chunk>) -> Option<Bridge<'a>> {
        Some(Bridge {
            channel: &self.channel,
            session: self.session.as_ref()?,
            original: self.original.as_ref()?,
            tx,
            trace: self.trace.as_ref(),
            params: &self.param_headers,
        })
    }

    /// Runs the input rounds of a bridged call and turns its outcome into the client's final message.
    async fn bridged_answer(&mut self, first: RawMessage, tx: &mpsc::Sender<Chunk>) -> Chunk {
        let outcome = match self.bridge(tx) {
            Some(bridge) => bridge.run(first).await,
            None => {
                return Chunk::of(&jsonrpc::error(
                    Some(self.client_id.clone()),
                    jsonrpc::INTERNAL_ERROR,
                    "no bridge",
                ));
            }
        };
        match outcome {
            Ok(last) => match self.client_response(&last) {
                Ok((json, _)) => Chunk {
                    json,
                    hold: crate::budget::Hold::none(),
                },
                Err(error) => Chunk::of(&error),
            },
            Err(error) => {
                tracing::info!(target_name = self.channel.target().name(), %error, "bridged call failed");
                let code = error.code();
                self.finish_with(if matches!(error, BridgeError::ClientGone) {
                    CallOutcome::ClientGone
                } else {
                    CallOutcome::of_error(code)
                });
                Chunk::of(&jsonrpc::error(Some(self.client_id.clone()), code, error.to_string()))
            }
        }
    }

    /// Whether the target's final answer asks for input that mcplex must bridge for this client.
    fn must_bridge(&self, answer: &RawMessage) -> bool {
        self.original.is_some() && asks_for_input(answer)
    }

    /// Whether a request the target sent mid-call is to park the call (a 2026-07-28 client that can answer it).
    fn parks_for(&self, request: &Value) -> bool {
        self.session.is_none() && self.parking.as_ref().is_some_and(|p| p.can_answer(request))
    }

    /// True when progress under `token` (`None`: it named none) is from neither this call nor another call
    /// its client has in flight at this target: a target reporting on work it was not asked about, or on
    /// another client's call, is not passed on (client SDKs report progress under an unknown token as an error).
    fn is_stray_progress(&self, token: Option<&Value>) -> bool {
        let Some(token) = token else { return true };
        if self.progress_token.as_ref() == Some(token) {
            return false;
        }
        let awaited = self
            .session
            .as_ref()
            .is_some_and(|session| session.awaits_progress(&self.channel, token));
        if !awaited {
            tracing::debug!(target_name = self.channel.target().name(), %token, "dropped progress under a token no call gave");
        }
        !awaited
    }

    /// Sends the call as a future that owns what it needs, so it can outlive this function's frame (be
    /// raced, moved to a task or read as a stream). Only the slower paths pay for the box.
    fn send_owned(&self, message: Outgoing) -> PendingReply {
        let (channel, trace, params) = (self.channel.clone(), self.trace.clone(), self.param_headers.clone());
        Box::pin(async move { channel.send_call(message, trace.as_ref(), &params).await })
    }

    /// Ends the upstream session the call opened for itself, if it did.
    fn close_own_session(&self) {
        if self.parking.is_some() {
            close_own_session(&self.channel);
        }
    }

    fn finish(&self) {
        if let Some(session) = &self.session {
            session.end_call(&self.client_id);
        }
    }

    /// Records how the call ended, in the metrics and on its span.
    fn finish_with(&mut self, outcome: CallOutcome) {
        self.span.record("mcplex.outcome", outcome.as_str());
        self.record.finish(outcome);
    }

    /// The target's final response as the client must see it, or the error that replaces it; the
    /// outcome is recorded either way.
    fn client_response(&mut self, response: &RawMessage) -> Result<(Bytes, Option<i64>), Value> {
        match rewrite_response(response, &self.client_id, self.era, self.channel.target().name()) {
            Ok(rewritten) => {
                self.finish_with(match rewritten.error_code {
                    Some(code) => CallOutcome::of_error(code),
                    None if rewritten.tool_error => CallOutcome::ToolError,
                    None => CallOutcome::Ok,
                });
                Ok((rewritten.json, rewritten.error_code))
            }
            Err(error) => {
                let code = match error {
                    AdaptError::NotJson { .. } | AdaptError::NotResponse { .. } => jsonrpc::TARGET_UNAVAILABLE,
                    AdaptError::InputRequired { .. } => jsonrpc::INTERNAL_ERROR,
                };
                self.finish_with(CallOutcome::of_error(code));
                Err(jsonrpc::error(Some(self.client_id.clone()), code, error.to_string()))
            }
        }
    }

    /// The error answer for a failed exchange, with its outcome recorded.
    fn error(&mut self, error: &UpstreamError) -> Value {
        self.finish_with(CallOutcome::of_error(error.code()));
        jsonrpc::error(Some(self.client_id.clone()), error.code(), error.to_string())
    }
}

/// Sends the request and turns the target's answer into the client's. Not an `async fn`: that would hold
/// `forward` twice in every call's future, as its argument and as a local.
#[expect(clippy::manual_async_fn, reason = "an async fn would hold `forward` twice")]
pub fn forward(mut forward: Forward) -> impl Future<Output = Outcome> {
    async move {
        let target = forward.channel.target().clone();
        let exchange = target.begin_exchange();
        let upstream_id = forward.message.id();
        if let Some(session) = &forward.session {
            session.start_call(
                &forward.client_id,
                &forward.channel,
                &upstream_id,
                forward.progress_token.as_ref(),
            );
        }
        let message = std::mem::replace(&mut forward.message, Outgoing::Tree(Value::Null));
        if forward.era == Era::Legacy && forward.session.is_some() && forward.channel.era() == Era::Modern {
            forward.original = Some(message.to_tree(forward.trace.as_ref()));
        }
        let sent = match forward.session.as_ref().map(|s| s.streams.clone()) {
            Some(streams) => {
                // A request a target sends on its own GET stream while no stream of the client's is open is
                // parked for the next call stream. A target that answers calls with plain JSON may hold this
                // call until the client has answered that request, and a call to any other target may be the
                // client's only one, so the first request parked turns the call's answer into a stream at
                // once rather than leave it parked until a deadline.
                let mut send = forward.send_owned(message);
                tokio::select! {
                    biased;
                    sent = &mut send => sent,
                    () = streams.parked() => {
                        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                        let span = forward.span.clone();
                        let answer = answer_as_stream(forward, send, streams, upstream_id, tx, exchange);
                        tokio::spawn(answer.instrument(span));
                        return Outcome::Stream(rx);
                    }
                }
            }
            _ if forward.parking.as_ref().is_some_and(|p| p.side.is_some()) => {
                // The call's own session has a GET stream, where the target may ask for input while it holds
                // this call's answer (a target answering in JSON sends nothing of it before): the answer is
                // read as a stream beside the GET stream from the start, so such a request parks the call.
                Ok(Reply::Stream(target.stream_of_reply(forward.send_owned(message))))
            }
            _ => {
                forward
                    .channel
                    .send_call(message, forward.trace.as_ref(), &forward.param_headers)
                    .await
            }
        };
        match sent {
            Ok(Reply::Single(Received { message, hold })) if forward.must_bridge(&message) => {
                // The client's answers arrive as requests on the call's stream, so the answer becomes a stream.
                drop(hold);
                let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                let span = forward.span.clone();
                tokio::spawn(
                    async move {
                        let _exchange = exchange;
                        let chunk = forward.bridged_answer(message, &tx).await;
                        forward.finish();
                        let _ = tx.send(chunk).await;
                    }
                    .instrument(span),
                );
                Outcome::Stream(rx)
            }
            Ok(Reply::Single(Received { message, hold })) => {
                forward.finish();
                forward.close_own_session();
                let answer = forward.client_response(&message);
                // The target's text is no longer needed; its budget now covers the copy that goes out.
                drop(message);
                match answer {
                    Ok((json, error_code)) => Outcome::Encoded { json, error_code, hold },
                    Err(error) => Outcome::Message(error),
                }
            }
            Ok(Reply::Stream(stream)) => {
                let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                let span = forward.span.clone();
                let side = forward.parking.as_mut().and_then(|p| p.side.take());
                tokio::spawn(relay_stream(forward, stream, side, upstream_id, tx, exchange).instrument(span));
                Outcome::Stream(rx)
            }
            Ok(Reply::Accepted) => {
                forward.finish();
                forward.close_own_session();
                let error = UpstreamError::no_response(target.name());
                Outcome::Message(forward.error(&error))
            }
            Err(error) => {
                forward.finish();
                forward.close_own_session();
                tracing::warn!(target_name = target.name(), %error, "call failed");
                Outcome::Message(forward.error(&error))
            }
        }
    }
}

/// Finishes a session-era call whose answer became a stream before the target answered: the requests
/// parked for a call stream go out on it first, then the target's answer, whatever its form.
async fn answer_as_stream(
    mut forward: Forward,
    send: PendingReply,
    streams: Arc<ClientStreams>,
    upstream_id: Value,
    tx: mpsc::Sender<Chunk>,
    exchange: ExchangeGuard,
) {
    let target = forward.channel.target().clone();
    let _listed = streams.open_call(&target, &tx);
    let chunk = match send.await {
        Ok(Reply::Stream(stream)) => return relay_stream(forward, stream, None, upstream_id, tx, exchange).await,
        Ok(Reply::Single(Received { message, hold })) if forward.must_bridge(&message) => {
            drop(hold);
            let chunk = forward.bridged_answer(message, &tx).await;
            forward.finish();
            chunk
        }
        Ok(Reply::Single(Received { message, hold })) => {
            forward.finish();
            match forward.client_response(&message) {
                Ok((json, _)) => Chunk { json, hold },
                Err(error) => Chunk::of(&error),
            }
        }
        Ok(Reply::Accepted) => {
            forward.finish();
            let error = UpstreamError::no_response(target.name());
            Chunk::of(&forward.error(&error))
        }
        Err(error) => {
            forward.finish();
            tracing::warn!(target_name = target.name(), %error, "call failed");
            Chunk::of(&forward.error(&error))
        }
    };
    let _ = tx.send(chunk).await;
}

/// Why a relayed stream ended.
enum StreamEnd {
    /// The final response reached the client.
    Answered,
    /// The target asked for input the client can give; the call is to be parked.
    Park(Value),
    /// The client went away first.
    ClientGone,
    /// The target failed.
    Failed(UpstreamError),
}

/// The next message on a call's side stream; never, when there is none (or it is gone for good). A side
/// stream that breaks is reopened; while it is closed only requests tied to no call wait, the call goes on.
async fn next_on(side: &mut Option<SideStream>) -> Received {
    match side.as_mut() {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// Relays the rest of a parked call after its client's retry (`forward` is the retry's).
pub fn resume(forward: Forward, parked: Parked) -> Outcome {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let span = forward.span.clone();
    let Parked {
        stream,
        side,
        upstream_id,
        exchange,
        ..
    } = parked;
    tokio::spawn(relay_stream(forward, stream, side, upstream_id, tx, exchange).instrument(span));
    Outcome::Stream(rx)
}

async fn relay_stream(
    mut forward: Forward,
    mut stream: MessageStream,
    mut side: Option<SideStream>,
    upstream_id: Value,
    tx: mpsc::Sender<Chunk>,
    exchange: ExchangeGuard,
) {
    let target = forward.channel.target().clone();
    let deadline = target.config.timeout;
    // While this stream is read, requests the target sends outside the call can reach the client here.
    let _listed = forward.session.as_ref().map(|s| s.streams.open_call(&target, &tx));
    let end = loop {
        // Any message from the target (progress included) restarts the deadline.
        let next = tokio::select! {
            biased;
            _ = tx.closed() => break StreamEnd::ClientGone,
            next = tokio::time::timeout(deadline, stream.next()) => next,
            aside = next_on(&mut side) => {
                // The session is this call's own: what arrives on its GET stream belongs to the call.
                let Ok(request) = aside.message.value() else { continue };
                let is_request = request.get("method").is_some() && request.get("id").is_some();
                if is_request && forward.parks_for(&request) {
                    break StreamEnd::Park(request);
                }
                if is_request {
                    let id = request["id"].clone();
                    refuse_server_request(&forward.channel, id, "the client did not declare the capability this request needs".into());
                    continue;
                }
                // A cancellation names a request of the target's that this client (2026-07-28) never saw by that id.
                match request.get("method").and_then(Value::as_str) {
                    Some(method::CANCELLED) => continue,
                    Some(method::PROGRESS) if forward.is_stray_progress(progress_token(&request)) => continue,
                    _ => {}
                }
                if tx.send(Chunk { json: aside.message.into_bytes(), hold: aside.hold }).await.is_err() {
                    break StreamEnd::ClientGone;
                }
                continue;
            }
        };
        let message = match next {
            Err(_) => {
                break StreamEnd::Failed(UpstreamError::Timeout {
                    target: target.name().into(),
                    after: deadline,
                });
            }
            Ok(None) => {
                break StreamEnd::Failed(UpstreamError::Garbage {
                    target: target.name().into(),
                    reason: "the stream ended before the response".into(),
                });
            }
            Ok(Some(Err(error))) => break StreamEnd::Failed(error),
            Ok(Some(Ok(received))) => received,
        };
        let Received { message, hold } = message;
        // Read once: what the message is, and for a notification what mcplex must do with it.
        let (has_method, id, notice) = match message.object() {
            Ok(object) => {
                let notice = match object.str("method").as_deref() {
                    Some(method::PROGRESS) => {
                        let params = object.value("params");
                        let token = params.as_ref().and_then(|p| p.get(meta::PROGRESS_TOKEN));
                        Notice::Progress {
                            stray: forward.is_stray_progress(token),
                        }
                    }
                    Some(method::CANCELLED) => Notice::Cancellation,
                    _ => Notice::Other,
                };
                (object.has("method"), object.value("id"), notice)
            }
            Err(e) => break StreamEnd::Failed(stream.garbage(format!("an SSE event is not a JSON object: {e}"))),
        };
        let is_final = !has_method && id.as_ref() == Some(&upstream_id);
        let outgoing = if is_final && forward.must_bridge(&message) {
            drop(hold);
            forward.bridged_answer(message, &tx).await
        } else if is_final {
            match forward.client_response(&message) {
                Ok((json, _)) => Chunk { json, hold },
                Err(error) => Chunk::of(&error),
            }
        } else if has_method && id.is_some() {
            let Ok(request) = message.value() else { continue };
            if forward.parks_for(&request) {
                break StreamEnd::Park(request);
            }
            let registered = match &forward.session {
                Some(session) => {
                    session.count_server_request(&forward.channel, Delivery::PostStream);
                    session.register_server_request(&forward.channel, request)
                }
                None => {
                    refuse_server_request(
                        &forward.channel,
                        id.unwrap_or(Value::Null),
                        "the client speaks 2026-07-28 and cannot answer requests mid-call".into(),
                    );
                    None
                }
            };
            match registered {
                Some(request) => Chunk::of(&request),
                None => continue,
            }
        } else if matches!(notice, Notice::Progress { stray: true }) {
            continue;
        } else if matches!(notice, Notice::Cancellation) {
            // The target gave up on a request it sent on this stream: the client knows it by mcplex's id.
            let notice = match (&forward.session, message.value()) {
                (Some(session), Ok(notice)) => session.cancelled_server_request(&forward.channel, notice),
                _ => None,
            };
            match notice {
                Some(notice) => Chunk::of(&notice),
                None => continue,
            }
        } else {
            // Notifications (progress, logs) belong to this call as they are: relayed without a rewrite.
            Chunk {
                json: message.into_bytes(),
                hold,
            }
        };
        // A client that stops reading for a whole deadline is treated as gone, so nothing waits on it for ever.
        if !matches!(tokio::time::timeout(deadline, tx.send(outgoing)).await, Ok(Ok(()))) {
            break StreamEnd::ClientGone;
        }
        if is_final {
            break StreamEnd::Answered;
        }
    };
    forward.finish();
    match end {
        StreamEnd::Answered => forward.close_own_session(),
        StreamEnd::Park(request) => park(forward, request, stream, side, upstream_id, tx, exchange).await,
        StreamEnd::ClientGone => {
            forward.close_own_session();
            forward.finish_with(CallOutcome::ClientGone);
            cancel_upstream(&forward.channel, &upstream_id, "the client went away");
        }
        StreamEnd::Failed(error) => {
            forward.close_own_session();
            tracing::warn!(target_name = target.name(), %error, "streamed call failed");
            let answer = forward.error(&error);
            let _ = tokio::time::timeout(deadline, tx.send(Chunk::of(&answer))).await;
            if error.is_unreachable() {
                cancel_upstream(&forward.channel, &upstream_id, "mcplex gave up waiting");
            }
        }
    }
}

/// Parks a call whose target asked for input, and answers the client with `input_required`.
async fn park(
    mut forward: Forward,
    request: Value,
    stream: MessageStream,
    side: Option<SideStream>,
    upstream_id: Value,
    tx: mpsc::Sender<Chunk>,
    exchange: ExchangeGuard,
) {
    let Some(parking) = forward.parking.take() else { return };
    let name = "input";
    let parked = Parked {
        channel: forward.channel.clone(),
        stream,
        side,
        upstream_id,
        asked: vec![(name.to_owned(), request["id"].clone())],
        exchange,
        subject: parking.subject.clone(),
        progress_token: forward.progress_token.clone(),
    };
    let answer = match parking.parks.park(parked) {
        Ok(state) => {
            forward.finish_with(CallOutcome::Ok);
            jsonrpc::result(forward.client_id.clone(), park::input_required(name, &request, &state))
        }
        Err(refused) => {
            let (error, parked) = *refused;
            refuse_server_request(&parked.channel, request["id"].clone(), error.to_string());
            cancel_upstream(&parked.channel, &parked.upstream_id, "mcplex cannot park the call");
            close_own_session(&parked.channel);
            forward.finish_with(CallOutcome::of_error(error.code()));
            jsonrpc::error(Some(forward.client_id.clone()), error.code(), error.to_string())
        }
    };
    let deadline = forward.channel.target().config.timeout;
    let _ = tokio::time::timeout(deadline, tx.send(Chunk::of(&answer))).await;
}

/// What a target's message on a call's stream is, as far as mcplex treats notifications apart.
enum Notice {
    /// `notifications/progress`; `stray` when no call of this client's at the target gave its token.
    Progress { stray: bool },
    /// `notifications/cancelled`: the target gave up on a request of its own.
    Cancellation,
    /// Anything else.
    Other,
}

/// The token a progress notification reports under (`params.progressToken`).
fn progress_token(notification: &Value) -> Option<&Value> {
    notification.get("params")?.get(meta::PROGRESS_TOKEN)
}

/// Tells the target to stop work nobody waits for any more (in the background).
fn cancel_upstream(channel: &Channel, upstream_id: &Value, reason: &str) {
    let cancel = json!({ "jsonrpc": "2.0", "method": method::CANCELLED, "params": { "requestId": upstream_id, "reason": reason } });
    channel.send_detached(cancel, method::CANCELLED);
}
