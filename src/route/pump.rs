//! Carries a legacy upstream session's GET stream (server requests, notifications) to its client.

use crate::protocol::method;
use crate::route::channel::Channel;
use crate::route::router::Router;
use crate::route::session::ClientSession;
use crate::upstream::LegacySession;
use serde_json::Value;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Reads the upstream GET stream while the client session lives and the target is configured,
/// reconnecting with backoff. Opening the stream is bounded by the target's deadline; an open stream
/// may stay quiet for as long as the target likes.
pub async fn pump_session_stream(
    session: Weak<ClientSession>,
    router: Weak<Router>,
    channel: Channel,
    upstream: Arc<LegacySession>,
    closed: CancellationToken,
) {
    let target = upstream.target().clone();
    let retired = target.retired().clone();
    let mut backoff = Duration::from_millis(250);
    loop {
        let opened = tokio::select! {
            opened = upstream.open_stream() => opened,
            _ = retired.cancelled() => break,
            _ = closed.cancelled() => return,
        };
        match opened {
            Ok(None) => return,
            Ok(Some(mut stream)) => {
                backoff = Duration::from_millis(250);
                loop {
                    let next = tokio::select! {
                        next = stream.next() => next,
                        _ = retired.cancelled() => break,
                        _ = closed.cancelled() => return,
                    };
                    let Some(Ok(received)) = next else { break };
                    let Some(session) = session.upgrade() else { return };
                    match received.message.value() {
                        Ok(message) => deliver(&session, &router, &channel, message),
                        Err(error) => {
                            tracing::debug!(target_name = target.name(), %error, "a GET stream event is not JSON; skipped")
                        }
                    }
                }
            }
            Err(error) => tracing::debug!(target_name = target.name(), %error, "upstream GET stream unavailable"),
        }
        if retired.is_cancelled() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = retired.cancelled() => break,
            _ = closed.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    // The config dropped the target: the session forgets its channel so nothing reconnects to it.
    if let Some(session) = session.upgrade() {
        session.forget_channel(&target);
    }
}

fn deliver(session: &Arc<ClientSession>, router: &Weak<Router>, channel: &Channel, message: Value) {
    let name = message.get("method").and_then(Value::as_str).unwrap_or("");
    if name.ends_with(method::LIST_CHANGED_SUFFIX) && name != method::ROOTS_LIST_CHANGED {
        // Names differ after merging: refresh, and the router tells every client what changed.
        if let Some(router) = router.upgrade() {
            router.refresh_target(channel.target().name());
        }
        return;
    }
    let message = if message.get("id").is_some() && !name.is_empty() {
        match session.register_server_request(channel, message) {
            Some(message) => message,
            None => return,
        }
    } else {
        message
    };
    session.push_to_stream(message);
}
