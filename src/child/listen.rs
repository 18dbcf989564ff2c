//! 2026-07-28 `subscriptions/listen` at `mcplex serve -- COMMAND`: change notifications need a process
//! that stays, so each listen stream gets a process of its own, like a session. It is initialised,
//! subscribed to the resources asked for (when the server offers subscriptions), and what it then sends
//! by itself reaches the stream: the list changes asked for, and updates of the subscribed resources,
//! each under the stream's subscription id. The process ends with the stream. A sidecar in front of
//! `serve` opens such a stream for a session-era agent's `resources/subscribe`.

use super::front::{Caller, StdioFront, sse_body};
use super::own_client;
use super::session::Session;
use crate::downstream::respond::{self, Body};
use crate::protocol::{self, jsonrpc, meta, method};
use crate::sync::lock;
use http::{Response, StatusCode};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The listen flags and the notification each one asks for.
const LIST_FLAGS: [(&str, &str); 3] = [
    ("toolsListChanged", method::TOOLS_LIST_CHANGED),
    ("promptsListChanged", method::PROMPTS_LIST_CHANGED),
    ("resourcesListChanged", method::RESOURCES_LIST_CHANGED),
];

/// Notifications a listen stream holds for a client that reads slowly before the process waits.
const LISTEN_BUFFER: usize = 32;

impl StdioFront {
    /// Opens a listen stream for `message` (a `subscriptions/listen` request) with a process of its own.
    pub(super) async fn listen(self: Arc<Self>, message: &Value, caller: Option<&Caller>) -> Response<Body> {
        let id = message["id"].clone();
        let fail = |status: StatusCode, code: i64, text: &str| {
            respond::error_with_status(status, Some(id.clone()), code, text)
        };
        let requested = &message["params"]["notifications"];
        if !requested.is_object() {
            return fail(
                StatusCode::OK,
                jsonrpc::INVALID_PARAMS,
                "params.notifications must be an object",
            );
        }
        if lock(&self.listens).len() >= self.limits.max_sessions {
            let text = format!(
                "mcplex serve keeps at most {} listen streams open, each with its process (--max-sessions)",
                self.limits.max_sessions
            );
            return fail(StatusCode::SERVICE_UNAVAILABLE, jsonrpc::TARGET_UNAVAILABLE, &text);
        }
        let label = format!("listen-{}", uuid::Uuid::new_v4().simple());
        let session = match Session::start(label.clone(), &self.command, caller.map(|c| c.key.clone())) {
            Ok(session) => session,
            Err(error) => return fail(StatusCode::OK, jsonrpc::TARGET_UNAVAILABLE, &error.to_string()),
        };
        let metrics = self.accounting.metrics().clone();
        metrics.started();
        lock(&self.listens).insert(label.clone(), session.clone());
        let (listens, watched) = (self.listens.clone(), session.clone());
        tokio::spawn(async move {
            watched.gone().cancelled().await;
            metrics.ended(&watched.end_reason());
            lock(&listens).remove(&watched.id);
        });
        let accepted = match self.subscribe(&session, requested).await {
            Ok(accepted) => accepted,
            Err(text) => {
                session.stop("its listen stream could not be opened");
                return fail(StatusCode::OK, jsonrpc::TARGET_UNAVAILABLE, &text);
            }
        };
        let wanted: Vec<&str> = LIST_FLAGS
            .iter()
            .filter(|(flag, _)| accepted.get(*flag).is_some())
            .map(|(_, method)| *method)
            .collect();
        let uris: Vec<String> = accepted
            .get("resourceSubscriptions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|u| u.as_str().map(str::to_owned))
            .collect();
        let (events, received) = mpsc::channel(LISTEN_BUFFER);
        let ack = json!({"jsonrpc": "2.0", "method": method::LISTEN_ACKNOWLEDGED,
            "params": {"notifications": accepted, "_meta": {meta::SUBSCRIPTION_ID: id}}});
        let _ = events.try_send(ack);
        tokio::spawn(relay(session, events, wanted, uris, id));
        sse_body(received)
    }

    /// Initialises the listen's process and subscribes it to the resources asked for; what was accepted.
    async fn subscribe(&self, session: &Session, requested: &Value) -> Result<Map<String, Value>, String> {
        let initialize = own_client::initialize(json!("mcplex-listen"), json!({}));
        let initialized = session
            .request(&initialize, self.limits.start_timeout)
            .await
            .map_err(|e| e.to_string())?;
        if let Some((_, text)) = jsonrpc::error_of(&initialized) {
            return Err(format!("the server process refused initialize: {text}"));
        }
        session
            .send(&own_client::initialized())
            .await
            .map_err(|e| e.to_string())?;
        let offers = &initialized["result"]["capabilities"];
        let mut accepted = Map::new();
        for (flag, _) in LIST_FLAGS {
            if requested[flag] == true {
                accepted.insert(flag.into(), json!(true));
            }
        }
        let uris = requested["resourceSubscriptions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut subscribed = Vec::new();
        if offers["resources"]["subscribe"] == true {
            for (n, uri) in uris.iter().filter(|u| u.is_string()).enumerate() {
                let request = json!({"jsonrpc": "2.0", "id": format!("mcplex-subscribe-{n}"),
                    "method": method::RESOURCES_SUBSCRIBE, "params": {"uri": uri}});
                let answer = session
                    .request(&request, self.limits.call_timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                if answer.get("error").is_none() {
                    subscribed.push(uri.clone());
                }
            }
        }
        if !subscribed.is_empty() {
            accepted.insert("resourceSubscriptions".into(), Value::Array(subscribed));
        }
        Ok(accepted)
    }
}

/// Passes what the listen's process sends on to the stream, until the client closes it (then the process
/// is ended) or the process ends (then the stream ends).
async fn relay(session: Arc<Session>, events: mpsc::Sender<Value>, wanted: Vec<&str>, uris: Vec<String>, id: Value) {
    let mut from_process = session.open_stream();
    loop {
        let mut message = tokio::select! {
            _ = events.closed() => break,
            message = from_process.recv() => match message {
                Some(message) => message,
                None => break,
            },
        };
        let asked = message["method"].as_str().unwrap_or_default().to_owned();
        if let Some(answer) = own_client::unanswerable(&message, "no client answers on a listen stream") {
            if session.send(&answer).await.is_err() {
                break;
            }
            continue;
        }
        let relayed = wanted.contains(&asked.as_str())
            || asked == method::RESOURCES_UPDATED
                && message["params"]["uri"]
                    .as_str()
                    .is_some_and(|uri| uris.iter().any(|u| u == uri));
        if !relayed {
            continue;
        }
        with_subscription_id(&mut message, &id);
        if events.send(message).await.is_err() {
            break;
        }
    }
    session.stop("its listen stream ended");
}

/// Writes the stream's subscription id into `params._meta`, whatever the process put there instead of
/// objects (what a process writes must not be able to stop mcplex).
fn with_subscription_id(message: &mut Value, id: &Value) {
    if let Some(meta) = protocol::meta_object(message) {
        meta.insert(meta::SUBSCRIPTION_ID.into(), id.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subscription_id_is_written_whatever_the_process_sent() {
        for sent in [
            json!({"method": "notifications/tools/list_changed"}),
            json!({"method": "notifications/tools/list_changed", "params": "odd"}),
            json!({"method": "notifications/tools/list_changed", "params": {"_meta": 7}}),
        ] {
            let mut message = sent;
            with_subscription_id(&mut message, &json!(3));
            assert_eq!(message["params"]["_meta"][meta::SUBSCRIPTION_ID], 3);
        }
    }
}
