//! `subscriptions/listen` for modern clients: mcplex's own `list_changed` (after merging) plus
//! resource updates from modern targets, merged into one stream under the client's subscription id.

use crate::downstream::dispatch::{Client, Incoming};
use crate::downstream::relay::KEEP_ALIVE_EVERY;
use crate::downstream::respond::{self, Body};
use crate::sse::{KEEP_ALIVE, encode_event};
use crate::upstream::{Channel, Era, MessageStream, Reply};
use bytes::Bytes;
use http::Response;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use tokio::sync::mpsc;

const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
const LIST_FLAGS: [(&str, &str); 3] = [
    ("toolsListChanged", "notifications/tools/list_changed"),
    ("promptsListChanged", "notifications/prompts/list_changed"),
    ("resourcesListChanged", "notifications/resources/list_changed"),
];

/// Opens the merged subscription stream; it lives until the client closes it.
pub async fn listen(incoming: Incoming) -> Response<Body> {
    let subscription_id = incoming.message.id().cloned().unwrap_or(Value::Null);
    let requested = incoming
        .message
        .body
        .get("params")
        .and_then(|p| p.get("notifications"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut accepted = Map::new();
    let mut wanted_methods = Vec::new();
    for (flag, method) in LIST_FLAGS {
        if requested.get(flag).and_then(Value::as_bool) == Some(true) {
            accepted.insert(flag.into(), json!(true));
            wanted_methods.push(method);
        }
    }
    let uris: Vec<String> = requested
        .get("resourceSubscriptions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|u| u.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let upstreams = open_upstream_listens(&incoming, &uris).await;
    let accepted_uris: Vec<Value> = upstreams
        .iter()
        .flat_map(|(_, uris, _)| uris.iter().map(|u| json!(u)))
        .collect();
    if !accepted_uris.is_empty() {
        accepted.insert("resourceSubscriptions".into(), Value::Array(accepted_uris));
    }
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    let ack = json!({ "jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged", "params": { "notifications": accepted, "_meta": { SUBSCRIPTION_ID: subscription_id } } });
    let _ = tx.try_send(encode_event(&serde_json::to_vec(&ack).unwrap_or_default()));
    let (merged_tx, mut merged_rx) = mpsc::channel::<Value>(32);
    for (_, _, mut stream) in upstreams {
        let merged_tx = merged_tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if message.get("method").and_then(Value::as_str) == Some("notifications/resources/updated")
                    && merged_tx.send(message).await.is_err()
                {
                    return;
                }
            }
        });
    }
    let mut changes = incoming.hub.subscribe_changes();
    tokio::spawn(async move {
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE_EVERY);
        keep_alive.tick().await;
        loop {
            let mut message = tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) if wanted_methods.iter().any(|m| change["method"] == *m) => change,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                },
                Some(update) = merged_rx.recv() => update,
                _ = keep_alive.tick() => {
                    if tx.send(Bytes::from_static(KEEP_ALIVE)).await.is_err() { return }
                    continue;
                }
            };
            message["params"]["_meta"][SUBSCRIPTION_ID] = subscription_id.clone();
            if tx
                .send(encode_event(&serde_json::to_vec(&message).unwrap_or_default()))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    respond::sse(rx)
}

/// Opens one upstream `subscriptions/listen` per modern target owning some of `uris`.
async fn open_upstream_listens(incoming: &Incoming, uris: &[String]) -> Vec<(String, Vec<String>, MessageStream)> {
    let snapshot = incoming.hub.snapshot();
    let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for uri in uris {
        if let Some(target) = snapshot.catalog.route_uri(uri) {
            by_target.entry(target.to_owned()).or_default().push(uri.clone());
        }
    }
    let Client::Modern(context) = &incoming.client else {
        return Vec::new();
    };
    let mut streams = Vec::new();
    for (name, uris) in by_target {
        let Some(target) = snapshot.target(&name) else { continue };
        if target.era().await.ok() != Some(Era::Modern) {
            continue;
        }
        let Ok(channel) = Channel::open(target, context, false).await else {
            continue;
        };
        let request = json!({ "jsonrpc": "2.0", "id": target.next_request_id(), "method": "subscriptions/listen", "params": { "notifications": { "resourceSubscriptions": uris } } });
        match channel.send(request, None).await {
            Ok(Reply::Stream(stream)) => streams.push((name, uris, stream)),
            Ok(_) => tracing::debug!(target_name = %name, "subscriptions/listen was not answered with a stream"),
            Err(error) => tracing::warn!(target_name = %name, %error, "subscriptions/listen failed"),
        }
    }
    streams
}
