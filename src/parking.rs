//! Calls parked while a 2026-07-28 client is asked for input (MRTR), shared by both ends that serve such
//! clients in front of session-era servers: the sidecar (a session-era target asks mid-call) and
//! `mcplex serve` (a stdio server asks mid-call). The client gets `input_required` with a sealed
//! `requestState` naming the parked call; its retry carries the answers. Parked calls are bounded in
//! number and time, bound to the caller's subject, and one that is never resumed is given up (what that
//! means is the parked call's own business: [`Waiting::expire`]).

use crate::clock::unix_now;
use crate::protocol::{mrtr, result_type};
use crate::sync::lock;
use aws_lc_rs::{hmac, rand};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Calls parked at once; past that a server's request mid-call is refused.
pub const MAX_PARKED: usize = 64;
/// How long a parked call waits for the client's retry.
pub const PARK_TTL: Duration = Duration::from_secs(300);
/// How every `requestState` mcplex issues begins; each mcplex adds an id of its own after it, so that one
/// mcplex in front of another (a sidecar before `mcplex serve`) passes on the states it did not issue.
pub const STATE_PREFIX: &str = "mcplex.parked.";

/// Why a call could not be parked, or a retry could not resume it.
#[derive(Debug, thiserror::Error)]
pub enum ParkError {
    /// Too many calls are parked.
    #[error("{MAX_PARKED} calls already wait for their clients' input")]
    Full,
    /// The state was not sealed by this mcplex, or was altered.
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
    /// The retry lacks an answer the server is waiting for.
    #[error("inputResponses lacks `{0}`")]
    MissingResponse(String),
}

/// A call waiting for its client's input.
pub trait Waiting: Send + 'static {
    /// The caller's subject the call belongs to, when callers are checked.
    fn subject(&self) -> Option<&str>;
    /// The server's requests waiting for answers: the name used in `inputRequests`, and the server's id.
    fn asked(&self) -> &[(String, Value)];
    /// The client never came back: give the call up (cancel it at the server, free what it holds).
    fn expire(self);

    /// The answers of a retry for the server, in the order asked; the call stays parked when one is missing.
    fn answers(&self, responses: Option<&Map<String, Value>>) -> Result<Vec<Value>, ParkError> {
        self.asked()
            .iter()
            .map(|(name, server_id)| {
                let result = responses
                    .and_then(|r| r.get(name))
                    .ok_or_else(|| ParkError::MissingResponse(name.clone()))?;
                Ok(json!({ "jsonrpc": "2.0", "id": server_id, "result": result }))
            })
            .collect()
    }
}

/// The system gave no randomness for the key that seals `requestState`: without one the states could be
/// forged, so mcplex does not start.
#[derive(Debug, thiserror::Error)]
#[error("the system gave no randomness for the key that seals requestState")]
pub struct NoRandomness;

/// The parked calls of one mcplex and the key that seals their states.
pub struct ParkedCalls<T> {
    calls: Mutex<HashMap<String, T>>,
    key: hmac::Key,
    prefix: String,
}

impl<T: Waiting> ParkedCalls<T> {
    /// No call parked yet, and a fresh random key.
    pub fn new() -> Result<Self, NoRandomness> {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret).map_err(|_| NoRandomness)?;
        let mut instance = [0u8; 6];
        rand::fill(&mut instance).map_err(|_| NoRandomness)?;
        Ok(Self {
            calls: Mutex::new(HashMap::new()),
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            prefix: format!("{STATE_PREFIX}{}.", hex::encode(instance)),
        })
    }

    /// Whether this mcplex issued `state` (a state another server issued is passed on to it untouched).
    pub fn issued(&self, state: &str) -> bool {
        state.starts_with(&self.prefix)
    }

    /// Parks a call; returns the sealed `requestState` for the client. A call not resumed within
    /// [`PARK_TTL`] is given up ([`Waiting::expire`]).
    pub fn park(self: &Arc<Self>, parked: T) -> Result<String, Box<(ParkError, T)>> {
        let mut id = [0u8; 16];
        if rand::fill(&mut id).is_err() {
            return Err(Box::new((ParkError::NoRandomness, parked)));
        }
        let id = hex::encode(id);
        let expires = unix_now() + PARK_TTL.as_secs();
        let tag = self.tag(&id, expires, parked.subject());
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
                expired.expire();
            }
        });
        Ok(format!("{}{id}.{expires}.{tag}", self.prefix))
    }

    /// Takes the call a retry's `requestState` names, after checking its seal, time and caller.
    pub fn take(&self, state: &str, subject: Option<&str>) -> Result<T, ParkError> {
        let sealed = state.strip_prefix(&self.prefix).ok_or(ParkError::Forged)?;
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
        if !self.verifies(id, expires, &tag, parked.subject()) {
            return Err(ParkError::Forged);
        }
        if parked.subject() != subject {
            return Err(ParkError::OtherCaller);
        }
        if expires < unix_now() {
            calls.remove(id);
            return Err(ParkError::Gone);
        }
        calls.remove(id).ok_or(ParkError::Gone)
    }

    /// Puts back a call whose retry could not be used (the client may retry again).
    pub fn put_back(&self, state: &str, parked: T) {
        if let Some(id) = state.strip_prefix(&self.prefix).and_then(|s| s.split('.').next()) {
            lock(&self.calls).insert(id.to_owned(), parked);
        }
    }

    /// Gives up every parked call now (mcplex is stopping).
    pub fn expire_all(&self) {
        let all: Vec<T> = lock(&self.calls).drain().map(|(_, parked)| parked).collect();
        all.into_iter().for_each(Waiting::expire);
    }

    /// Calls parked now.
    pub fn len(&self) -> usize {
        lock(&self.calls).len()
    }

    /// Whether no call is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn verifies(&self, id: &str, expires: u64, tag: &[u8], subject: Option<&str>) -> bool {
        hmac::verify(&self.key, sealed_text(id, expires, subject).as_bytes(), tag).is_ok()
    }

    fn tag(&self, id: &str, expires: u64, subject: Option<&str>) -> String {
        hex::encode(hmac::sign(&self.key, sealed_text(id, expires, subject).as_bytes()))
    }
}

fn sealed_text(id: &str, expires: u64, subject: Option<&str>) -> String {
    format!("{id}\n{expires}\n{}", subject.unwrap_or(""))
}

/// The `input_required` result that asks the client for a server's request.
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Call {
        subject: Option<String>,
        asked: Vec<(String, Value)>,
    }

    impl Waiting for Call {
        fn subject(&self) -> Option<&str> {
            self.subject.as_deref()
        }
        fn asked(&self) -> &[(String, Value)] {
            &self.asked
        }
        fn expire(self) {}
    }

    fn call(subject: Option<&str>) -> Call {
        Call {
            subject: subject.map(str::to_owned),
            asked: vec![("input".into(), json!(7))],
        }
    }

    #[tokio::test]
    async fn a_state_resumes_its_call_once_and_only_for_its_caller() {
        let parks = Arc::new(ParkedCalls::new().unwrap());
        let state = parks.park(call(Some("alice"))).map_err(|_| ()).unwrap();
        assert!(matches!(parks.take(&state, Some("bob")), Err(ParkError::OtherCaller)));
        let taken = parks.take(&state, Some("alice")).unwrap();
        let answers = taken.answers(json!({"input": {"ok": true}}).as_object()).unwrap();
        assert_eq!(
            answers,
            vec![json!({"jsonrpc": "2.0", "id": 7, "result": {"ok": true}})]
        );
        assert!(matches!(parks.take(&state, Some("alice")), Err(ParkError::Gone)));
        let forged = state.replace(&state[state.len() - 4..], "0000");
        assert!(matches!(parks.take(&forged, Some("alice")), Err(ParkError::Forged)));
        assert!(matches!(taken.answers(None), Err(ParkError::MissingResponse(name)) if name == "input"));
        // Another mcplex's state (one in front of the other) is not taken for this one's.
        let other = Arc::new(ParkedCalls::<Call>::new().unwrap());
        assert!(parks.issued(&state) && !other.issued(&state));
        assert!(state.starts_with(STATE_PREFIX));
    }

    #[tokio::test]
    async fn parking_stops_at_its_bound() {
        let parks = Arc::new(ParkedCalls::new().unwrap());
        for _ in 0..MAX_PARKED {
            assert!(parks.park(call(None)).is_ok());
        }
        assert!(matches!(parks.park(call(None)).map_err(|e| e.0), Err(ParkError::Full)));
        parks.expire_all();
        assert!(parks.is_empty());
    }
}
