//! What each client method does: answered by mcplex (lists, discover, ping, setLevel) or routed to one target.

use crate::catalog::{ItemKind, cursor};
use crate::downstream::relay::{self, Forward};
use crate::downstream::respond::{self, Body, ClientEra};
use crate::downstream::session::Session;
use crate::hub::{Hub, Snapshot};
use crate::jsonrpc::{self, Message};
use crate::upstream::{self, Channel, ClientContext, Target, UpstreamError};
use http::{HeaderValue, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// Who sent a message.
#[derive(Clone)]
pub enum Client {
    /// A session-era client and its session.
    Legacy(Arc<Session>),
    /// A 2026-07-28 client and the context its request carried.
    Modern(Arc<ClientContext>),
}

impl Client {
    /// The era whose rules apply to the answer.
    pub fn era(&self) -> ClientEra {
        match self {
            Self::Legacy(_) => ClientEra::Legacy,
            Self::Modern(_) => ClientEra::Modern,
        }
    }

    fn session(&self) -> Option<&Arc<Session>> {
        match self {
            Self::Legacy(session) => Some(session),
            Self::Modern(_) => None,
        }
    }

    async fn channel(&self, hub: &Arc<Hub>, target: &Arc<Target>) -> Result<Channel, UpstreamError> {
        match self {
            Self::Legacy(session) => session.channel(hub, target).await,
            Self::Modern(context) => Channel::open(target, context, false).await,
        }
    }
}

/// One incoming message with what is needed to answer it.
pub struct Incoming {
    /// The shared state.
    pub hub: Arc<Hub>,
    /// The sender.
    pub client: Client,
    /// The message.
    pub message: Message,
    /// The agent's Authorization header.
    pub authorization: Option<HeaderValue>,
}

/// Answers a request, or takes a notification or response (202).
pub async fn dispatch(incoming: Incoming) -> Response<Body> {
    match incoming.message.kind {
        jsonrpc::Kind::Request => request(incoming).await,
        jsonrpc::Kind::Notification => {
            notification(incoming).await;
            respond::accepted()
        }
        jsonrpc::Kind::Response => {
            client_response(incoming).await;
            respond::accepted()
        }
    }
}

async fn request(incoming: Incoming) -> Response<Body> {
    let era = incoming.client.era();
    let id = incoming.message.id().cloned().unwrap_or(Value::Null);
    let answer = |result: Value| respond::json(era, &finish_result(era, jsonrpc::result(id.clone(), result)));
    match incoming.message.method() {
        "ping" => answer(json!({})),
        "server/discover" => answer(discover_result(&incoming.hub)),
        "logging/setLevel" => {
            set_level(&incoming).await;
            answer(json!({}))
        }
        "subscriptions/listen" => crate::downstream::listen::listen(incoming).await,
        method if ItemKind::from_list_method(method).is_some() => {
            match list(
                &incoming,
                ItemKind::from_list_method(method).unwrap_or(ItemKind::Tools),
                &id,
            )
            .await
            {
                Ok(body) => respond::json_bytes(body),
                Err(message) => respond::json(era, &jsonrpc::error(Some(id), jsonrpc::INVALID_PARAMS, message)),
            }
        }
        "tools/call"
        | "prompts/get"
        | "completion/complete"
        | "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe" => route(incoming).await,
        "initialize" => respond::json(
            era,
            &jsonrpc::error(
                Some(id),
                jsonrpc::INVALID_REQUEST,
                "this session is already initialized",
            ),
        ),
        method => respond::json(
            era,
            &jsonrpc::error(
                Some(id),
                jsonrpc::METHOD_NOT_FOUND,
                format!("method `{method}` is not supported by mcplex"),
            ),
        ),
    }
}

fn finish_result(era: ClientEra, response: Value) -> Value {
    crate::downstream::adapt::response_for(era, response, "mcplex")
}

/// What mcplex offers, the same for every client so capabilities never change under a session.
pub fn capabilities() -> Value {
    json!({
        "tools": { "listChanged": true },
        "prompts": { "listChanged": true },
        "resources": { "listChanged": true, "subscribe": true },
        "logging": {},
        "completions": {},
    })
}

/// mcplex's `serverInfo`.
pub fn server_info() -> Value {
    json!({ "name": "mcplex", "version": env!("CARGO_PKG_VERSION") })
}

fn discover_result(hub: &Hub) -> Value {
    let mut versions: Vec<&str> = upstream::LEGACY_VERSIONS.to_vec();
    versions.push(upstream::MODERN_VERSION);
    let snapshot = hub.snapshot();
    json!({
        "supportedVersions": versions,
        "capabilities": capabilities(),
        "instructions": instructions(&snapshot),
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": { "io.modelcontextprotocol/serverInfo": server_info() },
    })
}

/// Short instructions naming the targets behind mcplex.
pub fn instructions(snapshot: &Snapshot) -> String {
    let names: Vec<&str> = snapshot.slots.iter().map(|s| s.name.as_str()).collect();
    format!(
        "mcplex multiplexes these MCP servers: {}. Tool and prompt names carry the server's prefix.",
        names.join(", ")
    )
}

/// Writes a page of a merged list straight from the catalog's pre-serialized items.
async fn list(incoming: &Incoming, kind: ItemKind, id: &Value) -> Result<Vec<u8>, String> {
    let hub = &incoming.hub;
    hub.refresh_expired(LIST_TTL_FLOOR).await;
    let snapshot = hub.snapshot();
    let entries = snapshot.catalog.entries(kind);
    let offset = match incoming.message.param_str("cursor") {
        Some(text) => cursor::decode(text)?,
        None => 0,
    };
    let end = (offset + hub.page_size).min(entries.len());
    let page = entries.get(offset.min(end)..end).unwrap_or_default();
    let mut out = Vec::with_capacity(64 + page.iter().map(|e| e.json.len() + 1).sum::<usize>());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    write_json(&mut out, id);
    out.extend_from_slice(b",\"result\":{\"");
    out.extend_from_slice(kind.result_key().as_bytes());
    out.extend_from_slice(b"\":[");
    for (i, entry) in page.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(entry.json.as_bytes());
    }
    out.push(b']');
    if end < entries.len() {
        out.extend_from_slice(b",\"nextCursor\":");
        write_json(&mut out, &cursor::encode(end));
    }
    if incoming.client.era() == ClientEra::Modern {
        let ttl = snapshot.catalog.ttl_ms.unwrap_or(DEFAULT_LIST_TTL_MS);
        let scope = if snapshot.catalog.private { "private" } else { "public" };
        out.extend_from_slice(
            format!(",\"ttlMs\":{ttl},\"cacheScope\":\"{scope}\",\"resultType\":\"complete\"").as_bytes(),
        );
    }
    out.extend_from_slice(b"}}");
    Ok(out)
}

/// Appends `value` as JSON (writing a string or a JSON value into a Vec cannot fail).
fn write_json(out: &mut Vec<u8>, value: &impl serde::Serialize) {
    let _ = serde_json::to_writer(out, value);
}

/// How long a modern client may cache a merged list when no target set a shorter `ttlMs`.
const DEFAULT_LIST_TTL_MS: u64 = 10_000;

/// Shortest time a target's lists are reused when serving merged lists.
const LIST_TTL_FLOOR: std::time::Duration = std::time::Duration::from_secs(1);

async fn set_level(incoming: &Incoming) {
    let Client::Legacy(session) = &incoming.client else {
        return;
    };
    let Some(level) = incoming
        .message
        .body
        .get("params")
        .and_then(|p| p.get("level"))
        .cloned()
    else {
        return;
    };
    session.set_log_level(level.clone());
    for channel in session.open_channels().await {
        let request = json!({ "jsonrpc": "2.0", "id": channel.target().next_request_id(), "method": "logging/setLevel", "params": { "level": level } });
        if let Err(error) = channel.send(request, None).await {
            tracing::debug!(target_name = channel.target().name(), %error, "logging/setLevel not delivered");
        }
    }
}

/// Where a routed request goes: the target and the name to write back into the request.
struct Destination {
    target: String,
    rewrite: Option<(&'static str, String)>,
}

fn destination(snapshot: &Snapshot, message: &Message) -> Result<Destination, String> {
    let named = |kind: ItemKind, name: Option<&str>, what: &str| {
        let name = name.ok_or_else(|| format!("params.{} is required", if what == "uri" { "uri" } else { "name" }))?;
        snapshot
            .catalog
            .lookup(kind, name)
            .map(|e| Destination {
                target: e.target.clone(),
                rewrite: Some(("name", e.original.clone())),
            })
            .ok_or_else(|| format!("unknown {what} `{name}`"))
    };
    let by_uri = |uri: Option<&str>| {
        let uri = uri.ok_or("params.uri is required")?;
        snapshot
            .catalog
            .route_uri(uri)
            .map(|t| Destination {
                target: t.to_owned(),
                rewrite: None,
            })
            .ok_or_else(|| format!("no target serves resource `{uri}`"))
    };
    match message.method() {
        "tools/call" => named(ItemKind::Tools, message.param_str("name"), "tool"),
        "prompts/get" => named(ItemKind::Prompts, message.param_str("name"), "prompt"),
        "completion/complete" => {
            let reference = message.body.get("params").and_then(|p| p.get("ref"));
            match reference.and_then(|r| r.get("type")).and_then(Value::as_str) {
                Some("ref/prompt") => named(
                    ItemKind::Prompts,
                    reference.and_then(|r| r.get("name")).and_then(Value::as_str),
                    "prompt",
                ),
                Some("ref/resource") => by_uri(reference.and_then(|r| r.get("uri")).and_then(Value::as_str)),
                _ => Err("params.ref must be a ref/prompt or ref/resource".into()),
            }
        }
        _ => by_uri(message.param_str("uri")),
    }
}

async fn route(incoming: Incoming) -> Response<Body> {
    let era = incoming.client.era();
    let client_id = incoming.message.id().cloned().unwrap_or(Value::Null);
    let snapshot = incoming.hub.snapshot();
    let found = match destination(&snapshot, &incoming.message) {
        Ok(found) => Ok(found),
        Err(_) => {
            // A miss may mean a target changed its list without telling us: refresh once and look again.
            incoming.hub.refresh(|_| true).await;
            destination(&incoming.hub.snapshot(), &incoming.message)
        }
    };
    let destination = match found {
        Ok(destination) => destination,
        Err(message) => return respond::json(era, &jsonrpc::error(Some(client_id), jsonrpc::INVALID_PARAMS, message)),
    };
    let snapshot = if snapshot.target(&destination.target).is_some() {
        snapshot
    } else {
        incoming.hub.snapshot()
    };
    let Some(target) = snapshot.target(&destination.target).cloned() else {
        return respond::json(
            era,
            &jsonrpc::error(
                Some(client_id),
                jsonrpc::TARGET_UNAVAILABLE,
                format!("target `{}` is not configured any more", destination.target),
            ),
        );
    };
    let channel = match incoming.client.channel(&incoming.hub, &target).await {
        Ok(channel) => channel,
        Err(error) => return respond::json(era, &relay::upstream_error(&client_id, &error)),
    };
    if matches!(
        incoming.message.method(),
        "resources/subscribe" | "resources/unsubscribe"
    ) && channel.era() == upstream::Era::Modern
    {
        return respond::json(
            era,
            &jsonrpc::error(
                Some(client_id),
                jsonrpc::METHOD_NOT_FOUND,
                format!(
                    "target `{}` speaks only 2026-07-28, where resources/subscribe was replaced by subscriptions/listen; bridging the two is not supported yet",
                    target.name()
                ),
            ),
        );
    }
    let mut message = Value::Object(incoming.message.body);
    if let Some((field, original)) = destination.rewrite {
        let holder = if message["method"] == "completion/complete" {
            &mut message["params"]["ref"]
        } else {
            &mut message["params"]
        };
        holder[field] = json!(original);
    }
    message["id"] = target.next_request_id();
    relay::forward(Forward {
        channel,
        message,
        client_id,
        era,
        session: incoming.client.session().cloned(),
        authorization: incoming.authorization,
    })
    .await
}

async fn notification(incoming: Incoming) {
    let Client::Legacy(session) = &incoming.client else {
        return;
    };
    match incoming.message.method() {
        "notifications/cancelled" => {
            let Some(request_id) = incoming.message.body.get("params").and_then(|p| p.get("requestId")) else {
                return;
            };
            let Some((channel, upstream_id)) = session.call_of(request_id) else {
                return;
            };
            let mut message = Value::Object(incoming.message.body.clone());
            message["params"]["requestId"] = upstream_id;
            let _ = channel.send(message, None).await;
        }
        "notifications/roots/list_changed" => {
            for channel in session.open_channels().await {
                let _ = channel.send(Value::Object(incoming.message.body.clone()), None).await;
            }
        }
        _ => {}
    }
}

async fn client_response(incoming: Incoming) {
    let Client::Legacy(session) = &incoming.client else {
        return;
    };
    let Some(id) = incoming.message.id() else { return };
    let Some(pending) = session.take_server_request(id) else {
        tracing::debug!(session = %session.id, %id, "client answered a request mcplex does not know; ignored");
        return;
    };
    let mut message = Value::Object(incoming.message.body.clone());
    message["id"] = pending.upstream_id;
    if let Err(error) = pending.channel.send(message, None).await {
        tracing::warn!(target_name = pending.channel.target().name(), %error, "client's answer to a server request could not be delivered");
    }
}
