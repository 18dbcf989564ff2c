//! Carries a legacy upstream session's GET stream (server requests, notifications) to the client's session.

use crate::downstream::session::Session;
use crate::hub::Hub;
use crate::upstream::{Channel, LegacySession};
use serde_json::Value;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Reads the upstream GET stream for as long as the client session lives, reconnecting with backoff.
pub async fn pump_session_stream(
    session: Weak<Session>,
    hub: Arc<Hub>,
    channel: Channel,
    upstream: Arc<LegacySession>,
) {
    let target = upstream.target().name().to_owned();
    let mut backoff = Duration::from_millis(250);
    loop {
        match upstream.open_stream().await {
            Ok(None) => return,
            Ok(Some(mut stream)) => {
                backoff = Duration::from_millis(250);
                while let Some(Ok(message)) = stream.next().await {
                    let Some(session) = session.upgrade() else { return };
                    deliver(&session, &hub, &channel, &target, message);
                }
            }
            Err(error) => tracing::debug!(target_name = %target, %error, "upstream GET stream unavailable"),
        }
        if session.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn deliver(session: &Arc<Session>, hub: &Arc<Hub>, channel: &Channel, target: &str, message: Value) {
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    if method.ends_with("/list_changed") && method != "notifications/roots/list_changed" {
        // Names differ after merging: refresh, and the hub tells every client what changed.
        let (hub, target) = (hub.clone(), target.to_owned());
        tokio::spawn(async move { hub.refresh_target(&target).await });
        return;
    }
    let message = if message.get("id").is_some() && !method.is_empty() {
        session.register_server_request(channel, message)
    } else {
        message
    };
    session.push_to_stream(message);
}
