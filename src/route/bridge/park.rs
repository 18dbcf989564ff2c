//! Era bridging, 2026-07-28 client → session-era target: when the target sends a request mid-call
//! (elicitation, sampling, roots), the upstream call is parked here and the client gets
//! `input_required` with a sealed `requestState` naming it. The client's retry carries the answers;
//! they go to the target and the parked call's stream is relayed on. Parked calls are bounded in
//! number and time; one that is never resumed is dropped (its upstream request cancelled).

use crate::clock::unix_now;
use crate::protocol::{method, mrtr, result_type};
use crate::route::channel::CallGetStream;
use crate::route::channel::Channel;
use crate::sync::lock;
use crate::upstream::{ExchangeGuard, MessageStream};
use aws_lc_rs::{hmac, rand};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Calls parked at once; past that a target's request mid-call is refused.
pub const MAX_PARKED: usize = 64;
/// How long a parked call waits for the client's retry.
pub const PARK_TTL: Duration = Duration::from_secs(300);
/// How mcplex's own `requestState` begins (a target's own state never does, being passed through).
pub const STATE_PREFIX: &str = "mcplex.parked.";

/// Why a retry could not resume a parked call.
#[derive(Debug, thiserror::Error)]
pub enum ParkError {
    /// Too many calls are parked.
    #[error("{MAX_PARKED} calls already wait for their clients' input")]
    Full,
    /// The state was not sealed by this sidecar, or was altered.
    #[error("requestState was not issued by this mcplex or was altered")]
    Forged,
    /// The state is past its time, or its call was resumed or dropped already.
    #[error("the call this requestState names is no longer waiting (it expired after {PARK_TTL:?} or was resumed)")]
    Gone,
    /// Another caller's state.
    #[error("requestState belongs to another caller")]
    OtherCaller,
    /// The system gave no randomness for the parked call's id.
    #[error("no randomness for the parked call's id")]
    NoRandomness,
    /// The retry lacks an answer the target is waiting for.
    #[error("inputResponses lacks `{0}`")]
    MissingResponse(String),
}

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

impl Parked {
    /// The answers of a retry for the target, in the order asked; the call stays parked when one is missing.
    pub fn answers(&self, responses: Option<&Map<String, Value>>) -> Result<Vec<Value>, ParkError> {
        self.asked
            .iter()
            .map(|(name, upstream_id)| {
                let result = responses
                    .and_then(|r| r.get(name))
                    .ok_or_else(|| ParkError::MissingResponse(name.clone()))?;
                Ok(json!({ "jsonrpc": "2.0", "id": upstream_id, "result": result }))
            })
            .collect()
    }
}

/// The parked calls of one sidecar and the key that seals their states.
pub struct ParkedCalls {
    calls: Mutex<HashMap<String, Parked>>,
    key: hmac::Key,
}

/// The system gave no randomness for the key that seals `requestState`: without one the states could be
/// forged, so the sidecar does not start.
#[derive(Debug, thiserror::Error)]
#[error("the system gave no randomness for the key that seals requestState")]
pub struct NoRandomness;

impl ParkedCalls {
    /// No call parked yet, and a fresh random key.
    pub fn new() -> Result<Self, NoRandomness> {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret).map_err(|_| NoRandomness)?;
        Ok(Self {
            calls: Mutex::new(HashMap::new()),
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        })
    }

    /// Parks a call; returns the sealed `requestState` for the client. A call not resumed within
    /// [`PARK_TTL`] is dropped and its upstream request cancelled.
    pub fn park(self: &Arc<Self>, parked: Parked) -> Result<String, Box<(ParkError, Parked)>> {
        let mut id = [0u8; 16];
        if rand::fill(&mut id).is_err() {
            return Err(Box::new((ParkError::NoRandomness, parked)));
        }
        let id = hex::encode(id);
        let expires = unix_now() + PARK_TTL.as_secs();
        let tag = self.tag(&id, expires, parked.subject.as_deref());
        {
            let mut calls = lock(&self.calls);
            if calls.len() >= MAX_PARKED {
                return Err(Box::new((ParkError::Full, parked)));
            }
            calls.insert(id.clone(), parked);
        }
        let calls: Weak<Self> = Arc::downgrade(self);
        let key = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PARK_TTL).await;
            let expired = calls.upgrade().and_then(|c| lock(&c.calls).remove(&key));
            if let Some(expired) = expired {
                tracing::info!(
                    target_name = expired.channel.link().name(),
                    "a parked call was never resumed; dropped"
                );
                let cancel = json!({ "jsonrpc": "2.0", "method": method::CANCELLED, "params": { "requestId": expired.upstream_id, "reason": "the client never answered" } });
                expired.channel.send_detached(cancel, method::CANCELLED);
                close_own_session(&expired.channel);
            }
        });
        Ok(format!("{STATE_PREFIX}{id}.{expires}.{tag}"))
    }

    /// Takes the call a retry's `requestState` names, after checking its seal, time and caller.
    pub fn take(&self, state: &str, subject: Option<&str>) -> Result<Parked, ParkError> {
        let sealed = state.strip_prefix(STATE_PREFIX).ok_or(ParkError::Forged)?;
        let mut parts = sealed.splitn(3, '.');
        let (Some(id), Some(expires), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ParkError::Forged);
        };
        let expires: u64 = expires.parse().map_err(|_| ParkError::Forged)?;
        let tag = hex::decode(tag).map_err(|_| ParkError::Forged)?;
        let mut calls = lock(&self.calls);
        let Some(parked) = calls.get(id) else {
            // Resumed, dropped or never ours: only a good seal earns the kinder answer.
            return Err(if self.verifies(id, expires, &tag, subject) {
                ParkError::Gone
            } else {
                ParkError::Forged
            });
        };
        // The seal covers the subject the call was parked for, so it is checked against that one.
        if !self.verifies(id, expires, &tag, parked.subject.as_deref()) {
            return Err(ParkError::Forged);
        }
        if parked.subject.as_deref() != subject {
            return Err(ParkError::OtherCaller);
        }
        if expires < unix_now() {
            calls.remove(id);
            return Err(ParkError::Gone);
        }
        calls.remove(id).ok_or(ParkError::Gone)
    }

    fn verifies(&self, id: &str, expires: u64, tag: &[u8], subject: Option<&str>) -> bool {
        hmac::verify(&self.key, Self::sealed_text(id, expires, subject).as_bytes(), tag).is_ok()
    }

    /// Puts back a call whose retry could not be used (the client may retry again).
    pub fn put_back(&self, state: &str, parked: Parked) {
        if let Some(id) = state.strip_prefix(STATE_PREFIX).and_then(|s| s.split('.').next()) {
            lock(&self.calls).insert(id.to_owned(), parked);
        }
    }

    /// Calls parked now.
    pub fn len(&self) -> usize {
        lock(&self.calls).len()
    }

    /// Whether no call is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn tag(&self, id: &str, expires: u64, subject: Option<&str>) -> String {
        hex::encode(hmac::sign(
            &self.key,
            Self::sealed_text(id, expires, subject).as_bytes(),
        ))
    }

    fn sealed_text(id: &str, expires: u64, subject: Option<&str>) -> String {
        format!("{id}\n{expires}\n{}", subject.unwrap_or(""))
    }
}

/// The `input_required` result that asks the client for a target's request.
pub fn input_required(name: &str, request: &Value, state: &str) -> Value {
    let mut asked = json!({ "method": request.get("method").cloned().unwrap_or(Value::Null) });
    if let Some(params) = request.get("params") {
        asked["params"] = params.clone();
    }
    json!({
        result_type::KEY: mrtr::INPUT_REQUIRED,
        mrtr::INPUT_REQUESTS: { name: asked },
        mrtr::REQUEST_STATE: state,
    })
}

/// Ends the session a bridged call opened for itself (in the background).
pub fn close_own_session(channel: &Channel) {
    if let Some(session) = channel.legacy_session().cloned() {
        tokio::spawn(async move { session.close().await });
    }
}
