//! The resources a session-era client watches at 2026-07-28 targets: per target, the URIs and the token of the
//! `subscriptions/listen` that carries them (the bridge opens and reopens the listens).

use crate::sync::lock;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Whether a client starts or stops watching a resource (`resources/subscribe` or `unsubscribe`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watch {
    /// Start: updates of the resource reach the client.
    Start,
    /// Stop.
    Stop,
}

/// URIs one client may watch at one target.
pub const MAX_WATCHED: usize = 256;

/// The resources a session-era client watches at each 2026-07-28 target, and the listen carrying them.
#[derive(Default)]
pub struct ResourceListens {
    by_target: Mutex<HashMap<String, (BTreeSet<String>, CancellationToken)>>,
}

impl ResourceListens {
    /// Adds or removes `uri` at `target`: the URIs to listen for now, and the token of the listen that
    /// replaces the old one (cancelled here). `None` when the client watches too many already.
    pub fn change(
        &self,
        target: &str,
        uri: &str,
        watch: Watch,
        parent: &CancellationToken,
    ) -> Option<(Vec<String>, CancellationToken)> {
        let mut by_target = lock(&self.by_target);
        let (uris, listening) = by_target
            .entry(target.to_owned())
            .or_insert_with(|| (BTreeSet::new(), CancellationToken::new()));
        if watch == Watch::Start {
            if uris.len() >= MAX_WATCHED && !uris.contains(uri) {
                return None;
            }
            uris.insert(uri.to_owned());
        } else {
            uris.remove(uri);
        }
        listening.cancel();
        *listening = parent.child_token();
        Some((uris.iter().cloned().collect(), listening.clone()))
    }
}
