//! Sending a request and turning the target's answer into the client's: one message as one message, a
//! stream as a stream.

use crate::protocol::Era;
use crate::route::channel::Outgoing;
use crate::route::message::Outcome;
use crate::route::relay::forward::{Answered, EraBridge, Forward, STREAM_BUFFER};
use crate::route::relay::stream::{answer_as_stream, relay_stream};
use crate::upstream::Reply;
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
        if forward.era == Era::Legacy
            && forward.channel.era() == Era::Modern
            && let Some(session) = forward.session.clone()
        {
            let original = message.to_tree(forward.trace.as_ref());
            forward.bridging = EraBridge::InputRounds { original, session };
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
            _ if matches!(&forward.bridging, EraBridge::Parking(parking) if parking.get_stream.is_some()) => {
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
        match forward.answered(sent) {
            Answered::AsksForInput(message) => {
                // The client's answers arrive as requests on the call's stream, so the answer becomes a stream.
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
            Answered::Final(Ok((json, error_code)), hold) => Outcome::Encoded { json, error_code, hold },
            Answered::Final(Err(error), _) => Outcome::Message(error),
            Answered::Stream(stream) => {
                let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                let span = forward.span.clone();
                let get_stream = match &mut forward.bridging {
                    EraBridge::Parking(parking) => parking.get_stream.take(),
                    EraBridge::None | EraBridge::InputRounds { .. } => None,
                };
                tokio::spawn(relay_stream(forward, stream, get_stream, upstream_id, tx, exchange).instrument(span));
                Outcome::Stream(rx)
            }
        }
    }
}
