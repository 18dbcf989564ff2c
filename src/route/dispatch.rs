//! What each client message does: answered by mcplex (lists, discover, ping, setLevel), routed to one
//! target, or carried back to the target that is waiting for it.

use crate::budget::Hold;
use crate::catalog::ItemKind;
use crate::protocol::{ClientContext, Era, jsonrpc, method};
use crate::route::router::Router;
use crate::route::session::ClientSession;
use crate::route::{call, listen, own};
use bytes::Bytes;
use http::HeaderValue;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Who sent a message.
#[derive(Clone)]
pub enum Caller {
    /// A session-era client and its session.
    Session(Arc<ClientSession>),
    /// A 2026-07-28 client and the context its request carried.
    Stateless(Arc<ClientContext>),
}

impl Caller {
    /// The era whose rules apply to the answer.
    pub fn era(&self) -> Era {
        match self {
            Self::Session(_) => Era::Legacy,
            Self::Stateless(_) => Era::Modern,
        }
    }

    /// The client's session, for session-era clients.
    pub fn session(&self) -> Option<&Arc<ClientSession>> {
        match self {
            Self::Session(session) => Some(session),
            Self::Stateless(_) => None,
        }
    }
}

/// One message from a client with what is needed to route it.
pub struct Inbound {
    /// The sender.
    pub caller: Caller,
    /// The message.
    pub message: jsonrpc::Message,
    /// The agent's Authorization header (forwarded only to targets that ask for passthrough).
    pub authorization: Option<HeaderValue>,
}

impl Inbound {
    /// The request's id (`null` for notifications).
    pub fn id(&self) -> Value {
        self.message.id().cloned().unwrap_or(Value::Null)
    }
}

/// What the client gets back.
pub enum Outcome {
    /// One JSON-RPC message mcplex wrote.
    Message(Value),
    /// One JSON-RPC message, already encoded (a target's rewritten answer, a merged list page).
    Encoded {
        /// The message text.
        json: Bytes,
        /// Its JSON-RPC error code, when it is an error (the client's era may map it to an HTTP status).
        error_code: Option<i64>,
        /// Its share of the message budget, held until it is written out.
        hold: Hold,
    },
    /// Encoded messages as they come; the stream ends after the final response (or lives, for listen).
    Stream(mpsc::Receiver<Chunk>),
    /// A notification or response was taken.
    Accepted,
}

impl Outcome {
    /// An error answer to the request `id`.
    pub fn error(id: Value, code: i64, message: impl Into<String>) -> Self {
        Self::Message(jsonrpc::error(Some(id), code, message))
    }
}

/// One encoded message of a stream, with its share of the message budget.
pub struct Chunk {
    /// The message text.
    pub json: Bytes,
    /// Held until the message is written out.
    pub hold: Hold,
}

impl Chunk {
    /// A message mcplex wrote (small: it holds no budget).
    pub fn of(message: &Value) -> Self {
        Self {
            json: encode(message),
            hold: Hold::none(),
        }
    }
}

/// Encodes a message mcplex wrote (serializing a `Value` cannot fail).
pub fn encode(message: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(message).unwrap_or_default())
}

/// Routes one message from a client.
pub async fn handle(router: &Arc<Router>, inbound: Inbound) -> Outcome {
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

async fn request(router: &Arc<Router>, inbound: Inbound) -> Outcome {
    let era = inbound.caller.era();
    let id = inbound.id();
    let answer = |result: Value| Outcome::Message(jsonrpc::result(id.clone(), own::finish(era, result)));
    let name = inbound.message.method();
    if let Some(kind) = ItemKind::from_list_method(name) {
        return own::list_page(router, &inbound, kind);
    }
    match name {
        method::PING => answer(json!({})),
        method::DISCOVER => answer(own::discover_result(&router.snapshot())),
        method::SET_LEVEL => {
            set_level(&inbound);
            answer(json!({}))
        }
        method::LISTEN => listen::listen(router, inbound).await,
        method::TOOLS_CALL
        | method::PROMPTS_GET
        | method::COMPLETE
        | method::RESOURCES_READ
        | method::RESOURCES_SUBSCRIBE
        | method::RESOURCES_UNSUBSCRIBE => call::route(router, inbound).await,
        method::INITIALIZE => Outcome::error(id, jsonrpc::INVALID_REQUEST, "this session is already initialized"),
        other => Outcome::error(
            id,
            jsonrpc::METHOD_NOT_FOUND,
            format!("method `{other}` is not supported by mcplex"),
        ),
    }
}

/// Remembers the level and passes it to every target the session reaches (in the background: the
/// answer never waits on a target).
fn set_level(inbound: &Inbound) {
    let Caller::Session(session) = &inbound.caller else {
        return;
    };
    let Some(level) = inbound.message.body.get("params").and_then(|p| p.get("level")).cloned() else {
        return;
    };
    session.set_log_level(level.clone());
    for channel in session.open_channels() {
        let request = json!({ "jsonrpc": "2.0", "id": channel.target().next_request_id(), "method": method::SET_LEVEL, "params": { "level": level } });
        channel.send_detached(request, "logging/setLevel");
    }
}

fn notification(inbound: &Inbound) {
    let Caller::Session(session) = &inbound.caller else {
        return;
    };
    match inbound.message.method() {
        method::CANCELLED => {
            let Some(request_id) = inbound.message.body.get("params").and_then(|p| p.get("requestId")) else {
                return;
            };
            let Some((channel, upstream_id)) = session.call_of(request_id) else {
                return;
            };
            let mut message = Value::Object(inbound.message.body.clone());
            message["params"]["requestId"] = upstream_id;
            channel.send_detached(message, "notifications/cancelled");
        }
        method::ROOTS_LIST_CHANGED => {
            for channel in session.open_channels() {
                channel.send_detached(Value::Object(inbound.message.body.clone()), "roots/list_changed");
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
    let mut message = Value::Object(inbound.message.body.clone());
    message["id"] = pending.upstream_id;
    pending
        .channel
        .send_detached(message, "client's answer to a server request");
}
