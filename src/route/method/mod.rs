//! What each client message does: answered by mcplex (lists, discover, ping, setLevel), routed to one
//! target (by the item or the task it names), or carried back to the target that is waiting for it.

mod access;
mod call;
mod listen;
mod local;
mod search;
mod tasks;

pub use local::initialize_result;

use crate::catalog::ItemKind;
use crate::catalog::search::FIND_TOOLS;
use crate::protocol::{Era, jsonrpc, method};
use crate::route::message::{Caller, Inbound, Outcome};
use crate::route::refresh::Router;
use crate::route::session::PendingServerRequest;
use serde_json::{Value, json};
use std::sync::Arc;

/// Routes one message from a client.
#[expect(clippy::manual_async_fn, reason = "an async fn would hold `inbound` twice")]
pub fn handle(router: &Arc<Router>, inbound: Inbound) -> impl Future<Output = Outcome> + '_ {
    async move {
        match inbound.message.kind {
            jsonrpc::Kind::Request => request(router, inbound).await,
            jsonrpc::Kind::Notification => {
                notification(&inbound);
                Outcome::Accepted
            }
            jsonrpc::Kind::Response => {
                client_response(&inbound);
                Outcome::Accepted
            }
        }
    }
}

#[expect(clippy::manual_async_fn, reason = "an async fn would hold `inbound` twice")]
fn request(router: &Arc<Router>, inbound: Inbound) -> impl Future<Output = Outcome> + '_ {
    async move {
        let era = inbound.caller.era();
        let id = inbound.id();
        let answer =
            |result: Value| Outcome::Message(jsonrpc::result(id.clone(), crate::protocol::own_result(era, result)));
        let name = inbound.message.method();
        if let Some(kind) = ItemKind::from_list_method(name) {
            return local::list_page(router, &inbound, kind);
        }
        if era == Era::Modern && method::REMOVED_IN_MODERN.contains(&name) {
            return Outcome::error(
                id,
                jsonrpc::METHOD_NOT_FOUND,
                format!("method `{name}` does not exist in 2026-07-28"),
            );
        }
        match name {
            method::PING => answer(json!({})),
            method::DISCOVER => answer(local::discover_result(&router.snapshot())),
            method::SET_LEVEL => {
                set_level(&inbound);
                answer(json!({}))
            }
            // Rarer than calls and with futures of their own size: kept on the heap so a call's stays small.
            method::LISTEN => Box::pin(listen::listen(router, inbound)).await,
            // With tool search on, mcplex's own tools answer here (one look at the config when it is off).
            method::TOOLS_CALL => match search::own_tool(&router.snapshot(), &inbound) {
                Some(FIND_TOOLS) => Box::pin(search::find_tools(router, inbound)).await,
                Some(_) => Box::pin(search::call_tool(router, inbound)).await,
                None => call::route(router, inbound).await,
            },
            method::PROMPTS_GET
            | method::COMPLETE
            | method::RESOURCES_READ
            | method::RESOURCES_SUBSCRIBE
            | method::RESOURCES_UNSUBSCRIBE => call::route(router, inbound).await,
            name if tasks::is_task_method(name) => Box::pin(tasks::route(router, inbound)).await,
            method::INITIALIZE => Outcome::error(id, jsonrpc::INVALID_REQUEST, "this session is already initialized"),
            other => Outcome::error(
                id,
                jsonrpc::METHOD_NOT_FOUND,
                format!("method `{other}` is not supported by mcplex"),
            ),
        }
    }
}

/// Remembers the level and passes it to every target the session reaches (in the background: the
/// answer never waits on a target).
fn set_level(inbound: &Inbound) {
    let Caller::Session(session) = &inbound.caller else {
        return;
    };
    let Some(level) = inbound.message.param_value("level") else {
        return;
    };
    session.set_log_level(level.clone());
    for channel in session.open_channels() {
        let request = json!({ "jsonrpc": "2.0", "id": channel.link().next_request_id(), "method": method::SET_LEVEL, "params": { "level": level } });
        channel.send_detached(request, "logging/setLevel");
    }
}

fn notification(inbound: &Inbound) {
    let Caller::Session(session) = &inbound.caller else {
        return;
    };
    match inbound.message.method() {
        method::CANCELLED => {
            let Some(request_id) = inbound.message.param_value("requestId") else {
                return;
            };
            let Some((channel, upstream_id)) = session.call_of(&request_id) else {
                return;
            };
            let mut message = inbound.message.to_value();
            message["params"]["requestId"] = upstream_id;
            channel.send_detached(message, method::CANCELLED);
        }
        method::ROOTS_LIST_CHANGED => {
            for channel in session.open_channels() {
                channel.send_detached(inbound.message.to_value(), "roots/list_changed");
            }
        }
        _ => {}
    }
}

/// The client answered a request a target sent it: the answer goes back with the target's own id.
fn client_response(inbound: &Inbound) {
    let Caller::Session(session) = &inbound.caller else {
        return;
    };
    let Some(id) = inbound.message.id() else { return };
    let Some(pending) = session.take_server_request(id) else {
        tracing::debug!(session = %session.id, %id, "client answered a request mcplex does not know; ignored");
        return;
    };
    let message = inbound.message.to_value();
    match pending {
        PendingServerRequest::Upstream { channel, upstream_id } => {
            let mut message = message;
            message["id"] = upstream_id;
            channel.send_detached(message, "client's answer to a server request");
        }
        // The bridging call may have ended meanwhile; then the answer has nowhere to go.
        PendingServerRequest::Bridged(answer) => drop(answer.send(message)),
    }
}
