//! `subscriptions/listen` for modern clients: mcplex's own `list_changed` (after merging) plus
//! resource updates from modern targets, merged into one stream under the client's subscription id.

use crate::catalog::ItemKind;
use crate::protocol::{Era, meta, method};
use crate::route::bridge::{Updates, keep_listening, open_listen};
use crate::route::channel::{Channel, Sharing};
use crate::route::message::{Caller, Inbound, Outcome};
use crate::route::refresh::Router;
use crate::route::session::EncodedMessage;
use crate::upstream::MessageStream;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// The listen flags and the notification each one asks for.
const LIST_FLAGS: [(&str, ItemKind); 3] = [
    ("toolsListChanged", ItemKind::Tools),
    ("promptsListChanged", ItemKind::Prompts),
    ("resourcesListChanged", ItemKind::Resources),
];

/// Messages a listen stream may have queued for a client that reads slowly.
const LISTEN_BUFFER: usize = 32;

/// Opens the merged subscription stream; it lives until the client closes it.
pub async fn listen(router: &Arc<Router>, inbound: Inbound) -> Outcome {
    let subscription_id = inbound.id();
    let requested = inbound
        .message
        .param_value("notifications")
        .unwrap_or_else(|| json!({}));
    let mut accepted = Map::new();
    let mut wanted_methods = Vec::new();
    for (flag, kind) in LIST_FLAGS {
        if requested.get(flag).and_then(Value::as_bool) == Some(true) {
            accepted.insert(flag.into(), json!(true));
            wanted_methods.push(kind.list_changed());
        }
    }
    let uris: Vec<String> = requested
        .get("resourceSubscriptions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|u| u.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let upstreams = match &inbound.caller {
        Caller::Stateless(context) => open_upstream_listens(router, context, inbound.acting.as_ref(), &uris).await,
        Caller::Session(_) => Vec::new(),
    };
    let accepted_uris: Vec<Value> = upstreams
        .iter()
        .flat_map(|(uris, _, _)| uris.iter().map(|u| json!(u)))
        .collect();
    if !accepted_uris.is_empty() {
        accepted.insert("resourceSubscriptions".into(), Value::Array(accepted_uris));
    }
    let (tx, rx) = mpsc::channel(LISTEN_BUFFER);
    let ack = json!({ "jsonrpc": "2.0", "method": method::LISTEN_ACKNOWLEDGED, "params": { "notifications": accepted, "_meta": { meta::SUBSCRIPTION_ID: subscription_id } } });
    let _ = tx.try_send(EncodedMessage::of(&ack));
    let (updates_tx, updates) = mpsc::channel::<Value>(LISTEN_BUFFER);
    for (uris, channel, stream) in upstreams {
        tokio::spawn(carry_updates(channel, uris, stream, updates_tx.clone()));
    }
    tokio::spawn(merge(
        router.subscribe_changes(),
        updates,
        wanted_methods,
        subscription_id,
        tx,
    ));
    Outcome::Stream(rx)
}

/// Passes a target's resource updates on, reopening its listen when it ends, until the client's stream
/// ends or the config drops the target.
async fn carry_updates(channel: Channel, uris: Vec<String>, stream: MessageStream, updates: mpsc::Sender<Value>) {
    let retired = channel.link().retired().clone();
    let gone = updates.clone();
    tokio::select! {
        _ = keep_listening(channel, uris, stream, Updates::Listen(updates)) => {}
        _ = gone.closed() => {}
        _ = retired.cancelled() => {}
    }
}

async fn merge(
    mut changes: broadcast::Receiver<Value>,
    mut updates: mpsc::Receiver<Value>,
    wanted_methods: Vec<&'static str>,
    subscription_id: Value,
    tx: mpsc::Sender<EncodedMessage>,
) {
    loop {
        let mut message = tokio::select! {
            _ = tx.closed() => return,
            change = changes.recv() => match change {
                Ok(change) if wanted_methods.iter().any(|m| change["method"] == *m) => change,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            Some(update) = updates.recv() => update,
        };
        set_subscription_id(&mut message, &subscription_id);
        if tx.send(EncodedMessage::of(&message)).await.is_err() {
            return;
        }
    }
}

/// Writes the subscription id into `params._meta`, replacing whatever non-object a target put there.
fn set_subscription_id(message: &mut Value, subscription_id: &Value) {
    if let Some(meta) = crate::protocol::meta_object(message) {
        meta.insert(meta::SUBSCRIPTION_ID.into(), subscription_id.clone());
    }
}

/// Opens one upstream `subscriptions/listen` per modern target owning some of `uris`, all at once.
async fn open_upstream_listens(
    router: &Router,
    context: &Arc<crate::protocol::ClientContext>,
    acting: Option<&Arc<crate::identity::Acting>>,
    uris: &[String],
) -> Vec<(Vec<String>, Channel, MessageStream)> {
    let snapshot = router.snapshot();
    let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for uri in uris {
        if let Some(target) = snapshot.catalog.route_uri(uri) {
            by_target.entry(target.to_owned()).or_default().push(uri.clone());
        }
    }
    let opens = by_target.into_iter().filter_map(|(name, uris)| {
        let target = snapshot.target(&name)?.clone();
        Some(async move {
            let channel = Channel::open(&target, context, Sharing::Shared, acting.cloned())
                .await
                .ok()?;
            if channel.era() != Era::Modern {
                return None;
            }
            match open_listen(&channel, &uris).await {
                Ok(stream) => Some((uris, channel, stream)),
                Err(error) => {
                    tracing::warn!(target_name = %name, %error, "subscriptions/listen failed");
                    None
                }
            }
        })
    });
    futures_util::future::join_all(opens)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subscription_id_is_written_whatever_the_target_sent() {
        for mut message in [
            json!({"method": "x"}),
            json!({"method": "x", "params": 3}),
            json!({"method": "x", "params": {"_meta": "odd"}}),
            json!({"method": "x", "params": {"_meta": {"keep": 1}}}),
        ] {
            set_subscription_id(&mut message, &json!(7));
            assert_eq!(message["params"]["_meta"][meta::SUBSCRIPTION_ID], 7);
        }
        let mut not_an_object = json!([1]);
        set_subscription_id(&mut not_an_object, &json!(7));
        assert_eq!(not_an_object, json!([1]));
    }
}
