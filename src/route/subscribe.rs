//! Era bridging for resource subscriptions: a session-era client's `resources/subscribe` at a
//! 2026-07-28 target becomes an upstream `subscriptions/listen` for all the URIs the client watches
//! there (reopened whenever the set changes), and its `notifications/resources/updated` reach the
//! client's GET stream.

use crate::protocol::{jsonrpc, method};
use crate::route::adapt::strip_modern_meta;
use crate::route::channel::Channel;
use crate::route::session::ClientSession;
use crate::sync::lock;
use crate::upstream::{MessageStream, Reply, UpstreamError};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use tokio_util::sync::CancellationToken;

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
    fn change(
        &self,
        target: &str,
        uri: &str,
        watch: bool,
        parent: &CancellationToken,
    ) -> Option<(Vec<String>, CancellationToken)> {
        let mut by_target = lock(&self.by_target);
        let (uris, listening) = by_target
            .entry(target.to_owned())
            .or_insert_with(|| (BTreeSet::new(), CancellationToken::new()));
        if watch {
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

/// Subscribes (or unsubscribes) `uri` for `session` at the 2026-07-28 target behind `channel`.
pub async fn change(
    session: &Arc<ClientSession>,
    channel: &Channel,
    uri: &str,
    watch: bool,
) -> Result<(), UpstreamError> {
    let target = channel.target();
    let Some((uris, listening)) = session.listens.change(target.name(), uri, watch, &session.ended()) else {
        return Err(UpstreamError::Refused {
            target: target.name().into(),
            code: jsonrpc::INVALID_PARAMS,
            message: format!("this client already watches {MAX_WATCHED} resources at the target"),
        });
    };
    if uris.is_empty() {
        return Ok(());
    }
    let listen = json!({ "jsonrpc": "2.0", "id": target.next_request_id(), "method": method::LISTEN, "params": { "notifications": { "resourceSubscriptions": uris } } });
    match channel.send(listen, None).await? {
        Reply::Stream(stream) => {
            tokio::spawn(carry(
                Arc::downgrade(session),
                stream,
                listening,
                target.retired().clone(),
            ));
            Ok(())
        }
        Reply::Single(received) => {
            let answer = received.message.value().unwrap_or_default();
            Err(match jsonrpc::error_of(&answer) {
                Some((code, message)) => UpstreamError::Refused {
                    target: target.name().into(),
                    code,
                    message: message.to_owned(),
                },
                None => UpstreamError::Garbage {
                    target: target.name().into(),
                    reason: "subscriptions/listen was not answered with a stream".into(),
                },
            })
        }
        Reply::Accepted => Err(UpstreamError::Garbage {
            target: target.name().into(),
            reason: "subscriptions/listen was answered with 202".into(),
        }),
    }
}

/// Passes updates to the client's GET stream until the set changes, the session ends or the target is
/// retired (dropping the stream ends the listen upstream).
async fn carry(
    session: Weak<ClientSession>,
    mut stream: MessageStream,
    listening: CancellationToken,
    retired: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = listening.cancelled() => return,
            _ = retired.cancelled() => return,
            next = stream.next() => next,
        };
        let Some(Ok(received)) = next else { return };
        let Ok(mut message) = received.message.value() else {
            continue;
        };
        if message["method"] != method::RESOURCES_UPDATED {
            continue;
        }
        // The subscription id is 2026-07-28 vocabulary the session-era client does not know.
        strip_modern_meta(&mut message);
        let Some(session) = session.upgrade() else { return };
        session.push_to_stream(message);
    }
}
