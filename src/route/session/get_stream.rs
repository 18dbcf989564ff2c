//! A session-era client's channel to each target, opened on first use, and the pump that reads the target's
//! GET stream for it: what the target sends tied to no call reaches the client, and its `list_changed`
//! makes the lists refresh.

use crate::protocol::method;
use crate::route::channel::Channel;
use crate::route::channel::Sharing;
use crate::route::session::ClientSession;
use crate::sync::lock;
use crate::upstream::Target;
use crate::upstream::reopen::Reopen;
use crate::upstream::{LegacySession, MessageStream, UpstreamError};
use serde_json::Value;
use serde_json::json;
use std::sync::{Arc, Weak};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// Who is told that a target changed one of its lists (the router, which fetches them again and tells
/// every client what changed).
pub trait ListsChanged: Send + Sync {
    /// `target` said one of its lists changed.
    fn lists_changed(&self, target: &str);
}

impl ClientSession {
    /// The channel to `target`, opened on first use (a legacy target gets a session of this client's own).
    /// Only callers for the same target wait for the opening; it is bounded by that target's deadline.
    pub async fn channel<L: ListsChanged + 'static>(
        self: &Arc<Self>,
        lists: &Arc<L>,
        target: &Arc<Target>,
    ) -> Result<Channel, UpstreamError> {
        let cell = {
            let mut channels = lock(&self.channels);
            match channels.get(target.name()) {
                Some((known, cell)) if Arc::ptr_eq(known, target.link()) => cell.clone(),
                _ => {
                    // Channels to targets the config dropped are forgotten here, so nothing keeps them alive.
                    channels.retain(|_, (known, _)| !known.retired().is_cancelled());
                    let cell = Arc::new(OnceCell::new());
                    channels.insert(target.name().to_owned(), (target.link().clone(), cell.clone()));
                    cell
                }
            }
        };
        if let Some(channel) = cell.get() {
            return Ok(channel.clone());
        }
        // Opening is rare and its future large (discovery, initialize, the GET stream): it lives on the heap,
        // so the future of every call stays small.
        let channel = Box::pin(cell.get_or_try_init(|| async {
                let channel = Channel::open(target, &self.context, Sharing::OwnSession, self.acting.clone()).await?;
                if let Some(level) = lock(&self.log_level).clone() {
                    let set_level = json!({"jsonrpc":"2.0","id": target.next_request_id(),"method": method::SET_LEVEL,"params":{"level": level}});
                    channel.send_detached(set_level, "logging/setLevel");
                }
                if let Some(upstream) = channel.legacy_session() {
                    // The GET stream is open before the first call goes out: TypeScript SDK servers send
                    // requests tied to no call only on a stream that already exists, and drop them otherwise.
                    let first = upstream.open_stream(None).await;
                    tokio::spawn(pump_session_stream(
                        Arc::downgrade(self),
                        Arc::downgrade(lists) as Weak<dyn ListsChanged>,
                        channel.clone(),
                        upstream.clone(),
                        self.closed.clone(),
                        Some(first),
                    ));
                }
                Ok::<_, UpstreamError>(channel)
            }))
            .await?;
        Ok(channel.clone())
    }
}

/// Reads the upstream GET stream (starting with `first`, when the caller already opened it) while the
/// client session lives and the target is configured, reopening it as [`Reopen`] says (SEP-1699: from the
/// last event id, after the target's `retry`, so what the target sent while it was closed is replayed).
/// Opening the stream is bounded by the target's deadline; an open stream may stay quiet for as long as the
/// target likes.
pub async fn pump_session_stream(
    session: Weak<ClientSession>,
    lists: Weak<dyn ListsChanged>,
    channel: Channel,
    upstream: Arc<LegacySession>,
    closed: CancellationToken,
    mut first: Option<Result<Option<MessageStream>, UpstreamError>>,
) {
    let target = upstream.target().clone();
    let retired = target.retired().clone();
    let mut reopen = Reopen::unlimited();
    loop {
        let opened = match first.take() {
            Some(opened) => opened,
            None => tokio::select! {
                opened = upstream.open_stream(reopen.resume_from()) => opened,
                _ = retired.cancelled() => break,
                _ = closed.cancelled() => return,
            },
        };
        match opened {
            Ok(None) => return,
            Ok(Some(mut stream)) => {
                reopen.opened();
                loop {
                    let next = tokio::select! {
                        next = stream.next() => next,
                        _ = retired.cancelled() => break,
                        _ = closed.cancelled() => return,
                    };
                    let Some(Ok(received)) = next else { break };
                    let Some(session) = session.upgrade() else { return };
                    match received.message.value() {
                        Ok(message) => deliver(&session, &lists, &channel, message),
                        Err(error) => {
                            tracing::debug!(target_name = target.name(), %error, "a GET stream event is not JSON; skipped")
                        }
                    }
                }
                reopen.ended(stream.last_event_id(), stream.retry());
            }
            Err(error) => {
                if matches!(error, UpstreamError::Status { .. }) && reopen.start_afresh() {
                    // The target would not resume from that id (it may have dropped its events): start afresh.
                    tracing::debug!(target_name = target.name(), %error, "resuming the GET stream was refused; reopening it afresh");
                    continue;
                }
                tracing::debug!(target_name = target.name(), %error, "upstream GET stream unavailable");
            }
        }
        if retired.is_cancelled() {
            break;
        }
        tokio::select! {
            _ = reopen.pause() => {}
            _ = retired.cancelled() => break,
            _ = closed.cancelled() => return,
        }
    }
    // The config dropped the target: the session forgets its channel so nothing reconnects to it.
    if let Some(session) = session.upgrade() {
        session.forget_channel(&target);
    }
}

fn deliver(session: &Arc<ClientSession>, lists: &Weak<dyn ListsChanged>, channel: &Channel, message: Value) {
    let name = message.get("method").and_then(Value::as_str).unwrap_or("");
    if method::is_server_list_changed(name) {
        // Names differ after merging: refresh, and the router tells every client what changed.
        if let Some(lists) = lists.upgrade() {
            lists.lists_changed(channel.link().name());
        }
        return;
    }
    if name == method::CANCELLED {
        // The target gave up on a request it sent: the client knows that request by mcplex's id.
        if let Some(notice) = session.cancelled_server_request(channel, message) {
            session.deliver_cancellation(channel, notice);
        }
        return;
    }
    if message.get("id").is_none() || name.is_empty() {
        session.push_to_stream(message);
        return;
    }
    session.deliver_server_request(channel, message);
}
