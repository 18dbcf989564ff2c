//! Era bridging for resource subscriptions: a session-era client's `resources/subscribe` at a
//! 2026-07-28 target becomes an upstream `subscriptions/listen` for all the URIs the client watches
//! there (reopened whenever the set changes), and its `notifications/resources/updated` reach the
//! client's GET stream.

use crate::protocol::{jsonrpc, method};
use crate::route::channel::{Channel, strip_modern_meta};
use crate::route::session::{ClientSession, MAX_WATCHED, Watch};
use crate::upstream::reopen::Reopen;
use crate::upstream::{MessageStream, Reply, UpstreamError};
use serde_json::{Value, json};
use std::sync::{Arc, Weak};
use tokio::sync::mpsc;

/// Why a subscription could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The client watches as many resources at the target as it may.
    #[error("this client already watches {limit} resources at the target")]
    TooManyWatched {
        /// The limit.
        limit: usize,
    },
    /// The listen carrying the subscription could not be opened.
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
}

/// Subscribes (or unsubscribes) `uri` for `session` at the 2026-07-28 target behind `channel`.
pub async fn change(
    session: &Arc<ClientSession>,
    channel: &Channel,
    uri: &str,
    watch: Watch,
) -> Result<(), SubscribeError> {
    let target = channel.link();
    let Some((uris, listening)) = session.listens.change(target.name(), uri, watch, &session.ended()) else {
        return Err(SubscribeError::TooManyWatched { limit: MAX_WATCHED });
    };
    if uris.is_empty() {
        return Ok(());
    }
    let stream = open_listen(channel, &uris).await?;
    let deliver = Updates::Session(Arc::downgrade(session));
    let retired = target.retired().clone();
    let channel = channel.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = keep_listening(channel, uris, stream, deliver) => {}
            _ = listening.cancelled() => {}
            _ = retired.cancelled() => {}
        }
    });
    Ok(())
}

/// Opens a `subscriptions/listen` for `uris` at the 2026-07-28 target behind `channel`.
pub async fn open_listen(channel: &Channel, uris: &[String]) -> Result<MessageStream, UpstreamError> {
    let target = channel.link();
    let listen = json!({ "jsonrpc": "2.0", "id": target.next_request_id(), "method": method::LISTEN, "params": { "notifications": { "resourceSubscriptions": uris } } });
    match channel.send(listen, None).await? {
        Reply::Stream(stream) => Ok(stream),
        Reply::Single(received) => {
            let answer = received.message.value().unwrap_or_default();
            Err(match jsonrpc::error_of(&answer) {
                Some((code, message)) => UpstreamError::ListenRefused {
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

/// Where a listen's resource updates go.
pub enum Updates {
    /// A session-era client's GET stream.
    Session(Weak<ClientSession>),
    /// A 2026-07-28 client's merged listen stream.
    Listen(mpsc::Sender<Value>),
}

impl Updates {
    /// Passes one update on; false once nobody is there to take it.
    async fn deliver(&self, mut update: Value) -> bool {
        match self {
            Self::Session(session) => {
                // The subscription id is 2026-07-28 vocabulary the session-era client does not know.
                strip_modern_meta(&mut update);
                let Some(session) = session.upgrade() else { return false };
                session.push_to_stream(update);
                true
            }
            Self::Listen(updates) => updates.send(update).await.is_ok(),
        }
    }
}

/// Hands each `notifications/resources/updated` of a target's listen to `deliver` until nobody takes them,
/// and reopens the listen, with backoff, whenever the target ends it (a restart, an idle timeout). Updates
/// the target sent while no listen was open are lost, so after a reopen every URI is announced as
/// possibly updated: clients read it again rather than keep a stale copy. Callers stop it by dropping it.
pub async fn keep_listening(channel: Channel, uris: Vec<String>, mut stream: MessageStream, deliver: Updates) {
    let mut reopen = Reopen::unlimited();
    loop {
        reopen.opened();
        while let Some(Ok(received)) = stream.next().await {
            let Ok(message) = received.message.value() else {
                continue;
            };
            if message["method"] == method::RESOURCES_UPDATED && !deliver.deliver(message).await {
                return;
            }
        }
        // A listen is reopened with a new request, never resumed: what came meanwhile is announced below.
        reopen.ended(None, None);
        tracing::debug!(
            target_name = channel.link().name(),
            "the target ended subscriptions/listen; reopening it"
        );
        stream = loop {
            reopen.pause().await;
            match open_listen(&channel, &uris).await {
                Ok(stream) => break stream,
                Err(error) => {
                    tracing::debug!(target_name = channel.link().name(), %error, "reopening subscriptions/listen failed")
                }
            }
        };
        for uri in &uris {
            let update = json!({ "jsonrpc": "2.0", "method": method::RESOURCES_UPDATED, "params": { "uri": uri } });
            if !deliver.deliver(update).await {
                return;
            }
        }
    }
}
