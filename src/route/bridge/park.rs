//! Era bridging, 2026-07-28 client → session-era target: when the target sends a request mid-call
//! (elicitation, sampling, roots), the upstream call is parked (in [`crate::parking`], shared with the
//! server end) and the client gets `input_required` with a sealed `requestState` naming it. The client's
//! retry carries the answers; they go to the target and the parked call's stream is relayed on. One that
//! is never resumed is dropped, its upstream request cancelled.

use crate::parking::{self, Waiting};
use crate::protocol::method;
use crate::route::channel::CallGetStream;
use crate::route::channel::Channel;
use crate::upstream::{ExchangeGuard, MessageStream};
use serde_json::{Value, json};

pub use crate::parking::{NoRandomness, ParkError, input_required};

/// The sidecar's parked calls.
pub type ParkedCalls = parking::ParkedCalls<Parked>;

/// An upstream call waiting for its client's input.
pub struct Parked {
    /// The channel the call went out on (a session of its own).
    pub channel: Channel,
    /// The call's answer stream, read up to the target's request.
    pub stream: MessageStream,
    /// The session's GET stream, where some targets send requests tied to no call.
    pub get_stream: Option<CallGetStream>,
    /// The call's id upstream.
    pub upstream_id: Value,
    /// The target's requests waiting for answers: the name used in `inputRequests`, and the target's id.
    pub asked: Vec<(String, Value)>,
    /// Keeps the call counted as in flight at its target.
    pub exchange: ExchangeGuard,
    /// The caller's subject, when inbound identity is on.
    pub subject: Option<String>,
    /// The progress token of the parked call's first request, which the target keeps reporting under.
    pub progress_token: Option<Value>,
}

impl Waiting for Parked {
    fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    fn asked(&self) -> &[(String, Value)] {
        &self.asked
    }

    fn expire(self) {
        tracing::info!(
            target_name = self.channel.link().name(),
            "a parked call was never resumed; dropped"
        );
        let cancel = json!({ "jsonrpc": "2.0", "method": method::CANCELLED, "params": { "requestId": self.upstream_id, "reason": "the client never answered" } });
        self.channel.send_detached(cancel, method::CANCELLED);
        close_own_session(&self.channel);
    }
}

/// Ends the session a bridged call opened for itself (in the background).
pub fn close_own_session(channel: &Channel) {
    if let Some(session) = channel.legacy_session().cloned() {
        tokio::spawn(async move { session.close().await });
    }
}
