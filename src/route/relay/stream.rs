//! Relaying a target's answer stream to the client: ids mapped, the target's requests registered with the
//! client's session (or refused), stray progress dropped, the deadline restarted by every message, and the
//! call parked when its 2026-07-28 client must give input.

use crate::metrics::{CallOutcome, Delivery};
use crate::protocol::{meta, method};
use crate::route::bridge::Parked;
use crate::route::channel::CallGetStream;
use crate::route::message::Outcome;
use crate::route::relay::forward::{Answered, Forward, STREAM_BUFFER, cancel_upstream};
use crate::route::relay::parking::park;

use crate::route::session::{ClientStreams, EncodedMessage, refuse_server_request};
use crate::upstream::{ExchangeGuard, MessageStream, PendingReply, Received, UpstreamError};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Finishes a session-era call whose answer became a stream before the target answered: the requests
/// parked for a call stream go out on it first, then the target's answer, whatever its form.
pub(super) async fn answer_as_stream(
    mut forward: Forward,
    send: PendingReply,
    streams: Arc<ClientStreams>,
    upstream_id: Value,
    tx: mpsc::Sender<EncodedMessage>,
    exchange: ExchangeGuard,
) {
    let target = forward.channel.link().clone();
    let _listed = streams.open_call(&target, &tx);
    let chunk = match forward.answered(send.await) {
        Answered::Stream(stream) => return relay_stream(forward, stream, None, upstream_id, tx, exchange).await,
        Answered::AsksForInput(message) => {
            let chunk = forward.bridged_answer(message, &tx).await;
            forward.finish();
            chunk
        }
        Answered::Final(Ok((json, _)), hold) => EncodedMessage { json, hold },
        Answered::Final(Err(error), _) => EncodedMessage::of(&error),
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

/// The next message on a call's own GET stream; never, when there is none (or it is gone for good). A GET
/// stream that breaks is reopened; while it is closed only requests tied to no call wait, the call goes on.
async fn next_on(get_stream: &mut Option<CallGetStream>) -> Received {
    match get_stream.as_mut() {
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
        get_stream,
        upstream_id,
        exchange,
        ..
    } = parked;
    tokio::spawn(relay_stream(forward, stream, get_stream, upstream_id, tx, exchange).instrument(span));
    Outcome::Stream(rx)
}

pub(super) async fn relay_stream(
    mut forward: Forward,
    mut stream: MessageStream,
    mut get_stream: Option<CallGetStream>,
    upstream_id: Value,
    tx: mpsc::Sender<EncodedMessage>,
    exchange: ExchangeGuard,
) {
    let target = forward.channel.link().clone();
    let deadline = target.config.timeout;
    // While this stream is read, requests the target sends outside the call can reach the client here.
    let _listed = forward.session.as_ref().map(|s| s.streams.open_call(&target, &tx));
    let end = loop {
        // Any message from the target (progress included) restarts the deadline.
        let next = tokio::select! {
            biased;
            _ = tx.closed() => break StreamEnd::ClientGone,
            next = tokio::time::timeout(deadline, stream.next()) => next,
            from_get_stream = next_on(&mut get_stream) => {
                // The session is this call's own: what arrives on its GET stream belongs to the call.
                let Ok(request) = from_get_stream.message.value() else { continue };
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
                    Some(name) if method::is_server_list_changed(name) => target.note_lists_changed(),
                    _ => {}
                }
                if tx.send(EncodedMessage { json: from_get_stream.message.into_bytes(), hold: from_get_stream.hold }).await.is_err() {
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
                    Some(name) if method::is_server_list_changed(name) => {
                        // Relayed as it is, and the target's lists are fetched again, so the merged lists
                        // (and pinning) follow at once.
                        target.note_lists_changed();
                        Notice::Other
                    }
                    _ => Notice::Other,
                };
                (object.has("method"), object.value("id"), notice)
            }
            Err(e) => break StreamEnd::Failed(UpstreamError::unreadable(target.name(), e)),
        };
        let is_final = !has_method && id.as_ref() == Some(&upstream_id);
        let outgoing = if is_final && forward.must_bridge(&message) {
            drop(hold);
            forward.bridged_answer(message, &tx).await
        } else if is_final {
            match forward.client_response(&message) {
                Ok((json, _)) => EncodedMessage { json, hold },
                Err(error) => EncodedMessage::of(&error),
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
                Some(request) => EncodedMessage::of(&request),
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
                Some(notice) => EncodedMessage::of(&notice),
                None => continue,
            }
        } else {
            // Notifications (progress, logs) belong to this call as they are: relayed without a rewrite.
            EncodedMessage {
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
        StreamEnd::Park(request) => park(forward, request, stream, get_stream, upstream_id, tx, exchange).await,
        StreamEnd::ClientGone => {
            forward.close_own_session();
            forward.finish_with(CallOutcome::ClientGone);
            cancel_upstream(&forward.channel, &upstream_id, "the client went away");
        }
        StreamEnd::Failed(error) => {
            forward.close_own_session();
            tracing::warn!(target_name = target.name(), %error, "streamed call failed");
            let answer = forward.error(&error);
            let _ = tokio::time::timeout(deadline, tx.send(EncodedMessage::of(&answer))).await;
            if error.is_unreachable() {
                cancel_upstream(&forward.channel, &upstream_id, "mcplex gave up waiting");
            }
        }
    }
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
