//! Sending a request and turning the target's answer into the client's: one message as one message, a
//! stream as a stream.

use crate::protocol::Era;
use crate::route::channel::Outgoing;
use crate::route::message::Outcome;
use crate::route::relay::forward::{Forward, STREAM_BUFFER};
use crate::route::relay::stream::{answer_as_stream, relay_stream};
use crate::upstream::{Received, Reply, UpstreamError};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Sends the request and turns the target's answer into the client's. Not an `async fn`: that would hold
/// `forward` twice in every call's future, as its argument and as a local.
#[expect(clippy::manual_async_fn, reason = "an async fn would hold `forward` twice")]
pub fn forward(mut forward: Forward) -> impl Future<Output = Outcome> {
    async move {
        let target = forward.channel.link().clone();
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
