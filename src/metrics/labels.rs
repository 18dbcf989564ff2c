//! The label values of mcplex's metrics: bounded sets (how a request reached the client, how a call ended, the
//! names of targets and tools) and how each is written.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use std::fmt::Write;
use std::sync::Arc;

/// How a request from a target (sampling, elicitation, roots) reached the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// On the stream of the call it belongs to.
    PostStream,
    /// On the client's GET stream.
    GetStream,
    /// On the stream of another call the client is reading.
    CallStream,
    /// Held until a call's stream opens.
    Parked,
    /// Answered with an error: the client had no stream open.
    Refused,
    /// Asked for a 2026-07-28 target's `input_required` result (era bridging), on the call's stream.
    Bridged,
}

impl Delivery {
    /// Every delivery, for series that start at zero.
    pub const ALL: [Self; 6] = [
        Self::PostStream,
        Self::GetStream,
        Self::CallStream,
        Self::Parked,
        Self::Refused,
        Self::Bridged,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PostStream => "post_stream",
            Self::GetStream => "get_stream",
            Self::CallStream => "call_stream",
            Self::Parked => "parked",
            Self::Refused => "refused",
            Self::Bridged => "bridged",
        }
    }
}

/// The label value used for tool names past the opt-in cap.
pub const OTHER_TOOLS: &str = "_other";

/// A label value shared with the catalog and config (no copy per request).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Name(pub Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(&self.0)
    }
}

/// How a routed request ended, as the client saw it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum CallOutcome {
    /// A result.
    Ok,
    /// A `tools/call` result with `isError: true` (the tool ran and reported a failure).
    ToolError,
    /// A JSON-RPC error from the target, or one mcplex wrote that is not a timeout or an unreachable target.
    JsonRpcError,
    /// The target did not answer within its timeout (`-32031`).
    Timeout,
    /// The target could not be reached or answered badly (`-32030`).
    Unavailable,
    /// The client went away before the answer.
    ClientGone,
    /// The policy denied the call, or pinning held the item back; it was not sent.
    Denied,
}

impl CallOutcome {
    /// How many outcomes there are.
    pub(super) const COUNT: usize = 7;

    /// This outcome's place among [`CallOutcome::COUNT`].
    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ToolError => "tool_error",
            Self::JsonRpcError => "jsonrpc_error",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::ClientGone => "client_gone",
            Self::Denied => "denied",
        }
    }

    /// The outcome of an answer with this JSON-RPC error code.
    pub fn of_error(code: i64) -> Self {
        match code {
            crate::protocol::jsonrpc::TARGET_TIMEOUT => Self::Timeout,
            crate::protocol::jsonrpc::TARGET_UNAVAILABLE => Self::Unavailable,
            crate::protocol::jsonrpc::DENIED_BY_POLICY | crate::protocol::jsonrpc::HELD_BACK => Self::Denied,
            _ => Self::JsonRpcError,
        }
    }
}

impl EncodeLabelValue for CallOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

/// The labels of the pinning series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(super) struct PinLabels {
    pub target: Name,
    /// `tool` or `prompt`.
    pub kind: &'static str,
    /// `held`, `flagged`, `restored` or `removed`.
    pub action: &'static str,
}
