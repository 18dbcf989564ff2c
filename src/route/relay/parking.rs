//! A 2026-07-28 client's call to a session-era target that asks for input mid-call: what the call needs to be
//! parked, parking it with `input_required` for the client, and relaying the rest once the client retries.

use crate::metrics::CallOutcome;
use crate::protocol::jsonrpc;
use crate::route::bridge::{self, Parked, close_own_session};
use crate::route::channel::CallGetStream;
use crate::route::failure;
use crate::route::relay::forward::{EraBridge, Forward, cancel_upstream};

use crate::route::session::{EncodedMessage, refuse_server_request};
use crate::upstream::{ExchangeGuard, MessageStream};
use serde_json::Value;
use tokio::sync::mpsc;

/// Parks a call whose target asked for input, and answers the client with `input_required`.
pub(super) async fn park(
    mut forward: Forward,
    request: Value,
    stream: MessageStream,
    get_stream: Option<CallGetStream>,
    upstream_id: Value,
    tx: mpsc::Sender<EncodedMessage>,
    exchange: ExchangeGuard,
) {
    let EraBridge::Parking(parking) = std::mem::replace(&mut forward.bridging, EraBridge::None) else {
        return;
    };
    let name = "input";
    let parked = Parked {
        channel: forward.channel.clone(),
        stream,
        get_stream,
        upstream_id,
        asked: vec![(name.to_owned(), request["id"].clone())],
        exchange,
        subject: parking.subject.clone(),
        progress_token: forward.progress_token.clone(),
    };
    let answer = match parking.parks.park(parked) {
        Ok(state) => {
            forward.finish_with(CallOutcome::Ok);
            jsonrpc::result(
                forward.client_id.clone(),
                bridge::input_required(name, &request, &state),
            )
        }
        Err(refused) => {
            let (error, parked) = *refused;
            refuse_server_request(&parked.channel, request["id"].clone(), error.to_string());
            cancel_upstream(&parked.channel, &parked.upstream_id, "mcplex cannot park the call");
            close_own_session(&parked.channel);
            forward.finish_with(CallOutcome::of_error(failure::client_code(&error)));
            failure::error_answer(forward.client_id.clone(), &error)
        }
    };
    let deadline = forward.channel.link().config.timeout;
    let _ = tokio::time::timeout(deadline, tx.send(EncodedMessage::of(&answer))).await;
}
