//! What flows through the router: who sent a message, the message, and what the client gets back.

use crate::budget::Hold;
use crate::identity::Acting;
use crate::protocol::{ClientContext, Era, jsonrpc};
use crate::route::session::ClientSession;
use crate::route::session::EncodedMessage;
use crate::telemetry::TraceContext;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde_json::Value;
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
    /// The client's W3C trace context, from `params._meta` or the HTTP headers.
    pub trace: Option<TraceContext>,
    /// The validated caller, when inbound identity is on.
    pub acting: Option<Arc<Acting>>,
    /// The `Mcp-Param-*` headers of a 2026-07-28 `tools/call`, as received (checked against the tool's
    /// schema once the tool is found).
    pub param_headers: Vec<(HeaderName, HeaderValue)>,
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
    Stream(mpsc::Receiver<EncodedMessage>),
    /// A notification or response was taken.
    Accepted,
}

impl Outcome {
    /// An error answer to the request `id`.
    pub fn error(id: Value, code: i64, message: impl Into<String>) -> Self {
        Self::Message(jsonrpc::error(Some(id), code, message))
    }
}
