//! The `/mcp` endpoint: transport checks, era detection, sessions, then dispatch.

use crate::downstream::dispatch::{self, Client, Incoming};
use crate::downstream::guard;
use crate::downstream::relay::KEEP_ALIVE_EVERY;
use crate::downstream::respond::{self, Body, ClientEra};
use crate::downstream::session::{Session, SessionStore};
use crate::hub::Hub;
use crate::jsonrpc::{self, Message};
use crate::sse::{KEEP_ALIVE, encode_event};
use crate::upstream::{self, ClientContext, META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Largest request body accepted by default.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

/// State shared by every request to the endpoint.
pub struct Endpoint {
    /// Targets and catalog.
    pub hub: Arc<Hub>,
    /// Legacy sessions.
    pub sessions: SessionStore,
    /// Request body limit in bytes.
    pub max_body: usize,
}

impl Endpoint {
    /// An endpoint over `hub`.
    pub fn new(hub: Arc<Hub>, max_body: usize) -> Arc<Self> {
        Arc::new(Self {
            hub,
            sessions: SessionStore::default(),
            max_body,
        })
    }

    /// Handles one HTTP request.
    pub async fn handle(self: Arc<Self>, request: Request<hyper::body::Incoming>) -> Response<Body> {
        if request.uri().path() != "/mcp" {
            return respond::plain(StatusCode::NOT_FOUND, "not found: the MCP endpoint is /mcp");
        }
        if let Err(refusal) = guard::check(request.uri(), request.headers()) {
            tracing::warn!(%refusal, "request refused");
            return respond::plain(StatusCode::FORBIDDEN, &refusal.to_string());
        }
        match *request.method() {
            Method::POST => self.post(request).await,
            Method::GET => self.get(request.headers()).await,
            Method::DELETE => self.delete(request.headers()).await,
            _ => {
                let mut response = respond::plain(StatusCode::METHOD_NOT_ALLOWED, "use POST, GET or DELETE");
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
                response
            }
        }
    }

    async fn post(&self, request: Request<hyper::body::Incoming>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        if let Some(kind) = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
            && !kind.trim_start().to_ascii_lowercase().starts_with("application/json")
        {
            return respond::error_with_status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                jsonrpc::INVALID_REQUEST,
                &format!("Content-Type `{kind}` is not application/json"),
            );
        }
        let bytes = match Limited::new(body, self.max_body).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                let too_large = error.downcast_ref::<http_body_util::LengthLimitError>().is_some();
                return if too_large {
                    respond::error_with_status(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        None,
                        jsonrpc::INVALID_REQUEST,
                        &format!("request body is larger than the {} byte limit", self.max_body),
                    )
                } else {
                    respond::error_with_status(
                        StatusCode::BAD_REQUEST,
                        None,
                        jsonrpc::PARSE_ERROR,
                        &format!("request body could not be read: {error}"),
                    )
                };
            }
        };
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(value) => value,
            Err(error) => {
                return respond::error_with_status(
                    StatusCode::BAD_REQUEST,
                    None,
                    jsonrpc::PARSE_ERROR,
                    &format!("Parse error: the body is not JSON ({error})"),
                );
            }
        };
        let message = match Message::classify(value) {
            Ok(message) => message,
            Err(invalid) => {
                return respond::error_with_status(
                    StatusCode::BAD_REQUEST,
                    invalid.id,
                    jsonrpc::INVALID_REQUEST,
                    &format!("Invalid Request: {}", invalid.reason),
                );
            }
        };
        let authorization = parts.headers.get(header::AUTHORIZATION).cloned();
        let client = match self.identify(&parts.headers, &message) {
            Ok(Identified::Client(client)) => client,
            Ok(Identified::Initialize) => return self.initialize(&message),
            Err(response) => return *response,
        };
        dispatch::dispatch(Incoming {
            hub: self.hub.clone(),
            client,
            message,
            authorization,
        })
        .await
    }

    fn identify(&self, headers: &HeaderMap, message: &Message) -> Result<Identified, Box<Response<Body>>> {
        let id = message.id().cloned();
        let fail = |status: StatusCode, code: i64, text: String| {
            Err(Box::new(respond::error_with_status(status, id.clone(), code, &text)))
        };
        let header_version = headers
            .get("mcp-protocol-version")
            .map(|v| v.to_str().unwrap_or("(not text)").to_owned());
        if let Some(session_id) = headers.get("mcp-session-id") {
            let found = session_id.to_str().ok().and_then(|id| self.sessions.get(id));
            let Some(session) = found else {
                return fail(
                    StatusCode::NOT_FOUND,
                    jsonrpc::INVALID_REQUEST,
                    "session not found: it expired or was ended; send initialize again".into(),
                );
            };
            if let Some(version) = &header_version
                && !upstream::LEGACY_VERSIONS.contains(&version.as_str())
            {
                return fail(
                    StatusCode::BAD_REQUEST,
                    jsonrpc::INVALID_REQUEST,
                    format!("MCP-Protocol-Version `{version}` is not a session-era version mcplex supports"),
                );
            }
            session.touch();
            return Ok(Identified::Client(Client::Legacy(session)));
        }
        if message.method() == "initialize" {
            return Ok(Identified::Initialize);
        }
        let meta_version = message
            .meta()
            .and_then(|m| m.get(META_PROTOCOL_VERSION))
            .and_then(Value::as_str);
        let is_modern =
            meta_version.is_some() || header_version.as_deref().is_some_and(|v| v >= upstream::MODERN_VERSION);
        if !is_modern {
            return fail(StatusCode::BAD_REQUEST, jsonrpc::INVALID_REQUEST, "Bad Request: no Mcp-Session-Id header; session-era clients must send initialize first, 2026-07-28 clients must send MCP-Protocol-Version and _meta".into());
        }
        if message.kind != jsonrpc::Kind::Request {
            return Ok(Identified::Client(Client::Modern(modern_context())));
        }
        let Some(header_version) = header_version else {
            return fail(
                StatusCode::BAD_REQUEST,
                jsonrpc::HEADER_MISMATCH,
                "missing MCP-Protocol-Version header".into(),
            );
        };
        if meta_version != Some(header_version.as_str()) {
            return fail(
                StatusCode::BAD_REQUEST,
                jsonrpc::HEADER_MISMATCH,
                format!(
                    "MCP-Protocol-Version header `{header_version}` does not match _meta protocolVersion `{}`",
                    meta_version.unwrap_or("(absent)")
                ),
            );
        }
        if header_version != upstream::MODERN_VERSION {
            return fail(
                StatusCode::BAD_REQUEST,
                jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
                format!(
                    "protocol version `{header_version}` is not supported; use {} or a session-era version with initialize",
                    upstream::MODERN_VERSION
                ),
            );
        }
        if let Err(reason) = crate::mcp_headers::check(headers, message.method(), message.body.get("params")) {
            return fail(StatusCode::BAD_REQUEST, jsonrpc::HEADER_MISMATCH, reason);
        }
        if !message
            .meta()
            .and_then(|m| m.get(META_CLIENT_CAPABILITIES))
            .is_some_and(Value::is_object)
        {
            return fail(
                StatusCode::BAD_REQUEST,
                jsonrpc::INVALID_PARAMS,
                format!("Invalid params: _meta `{META_CLIENT_CAPABILITIES}` is required"),
            );
        }
        // The request's own _meta travels with it to modern targets; the shared context only fills gaps.
        Ok(Identified::Client(Client::Modern(modern_context())))
    }

    fn initialize(&self, message: &Message) -> Response<Body> {
        let id = message.id().cloned().unwrap_or(Value::Null);
        if message.kind != jsonrpc::Kind::Request {
            return respond::error_with_status(
                StatusCode::BAD_REQUEST,
                None,
                jsonrpc::INVALID_REQUEST,
                "initialize must be a request with an id",
            );
        }
        let params = message.body.get("params").cloned().unwrap_or_else(|| json!({}));
        let requested = params.get("protocolVersion").and_then(Value::as_str).unwrap_or("");
        // Offer the client's version when mcplex speaks it, else the newest session-era one (the client decides).
        let version = if upstream::LEGACY_VERSIONS.contains(&requested) {
            requested
        } else {
            upstream::LATEST_LEGACY_VERSION
        };
        let session = Session::new(ClientContext {
            protocol_version: version.into(),
            client_info: params
                .get("clientInfo")
                .cloned()
                .unwrap_or_else(|| json!({"name": "unknown", "version": "0"})),
            capabilities: params
                .get("capabilities")
                .cloned()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({})),
        });
        let result = json!({
            "protocolVersion": version,
            "capabilities": dispatch::capabilities(),
            "serverInfo": dispatch::server_info(),
            "instructions": dispatch::instructions(&self.hub.snapshot()),
        });
        let mut response = respond::json(ClientEra::Legacy, &jsonrpc::result(id, result));
        if let Ok(value) = HeaderValue::from_str(&session.id) {
            response.headers_mut().insert("mcp-session-id", value);
        }
        tracing::info!(session = %session.id, client = %session.context.client_info, version, "session started");
        self.sessions.insert(session);
        response
    }

    async fn get(&self, headers: &HeaderMap) -> Response<Body> {
        let Some(session_id) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) else {
            return respond::plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET needs an Mcp-Session-Id; 2026-07-28 clients use subscriptions/listen",
            );
        };
        let Some(session) = self.sessions.get(session_id) else {
            return respond::plain(StatusCode::NOT_FOUND, "session not found");
        };
        session.touch();
        let (tx, rx) = mpsc::channel::<Bytes>(32);
        let mut changes = self.hub.subscribe_changes();
        tokio::spawn(async move {
            let Ok(mut queue) = session.stream_receiver().try_lock() else {
                let _ = tx
                    .send(encode_event(
                        &serde_json::to_vec(&jsonrpc::error(
                            None,
                            jsonrpc::INVALID_REQUEST,
                            "another GET stream is open for this session",
                        ))
                        .unwrap_or_default(),
                    ))
                    .await;
                return;
            };
            let mut keep_alive = tokio::time::interval(KEEP_ALIVE_EVERY);
            keep_alive.tick().await;
            loop {
                let event = tokio::select! {
                    Some(message) = queue.recv() => encode_event(&serde_json::to_vec(&message).unwrap_or_default()),
                    change = changes.recv() => match change {
                        Ok(change) => encode_event(&serde_json::to_vec(&change).unwrap_or_default()),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    },
                    _ = keep_alive.tick() => Bytes::from_static(KEEP_ALIVE),
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        respond::sse(rx)
    }

    async fn delete(&self, headers: &HeaderMap) -> Response<Body> {
        let Some(session_id) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) else {
            return respond::plain(StatusCode::METHOD_NOT_ALLOWED, "DELETE needs an Mcp-Session-Id");
        };
        match self.sessions.remove(session_id) {
            Some(session) => {
                tracing::info!(session = %session.id, "session ended by the client");
                session.close().await;
                respond::empty(StatusCode::OK)
            }
            None => respond::plain(StatusCode::NOT_FOUND, "session not found"),
        }
    }

    /// Ends every session (at shutdown), closing their upstream sessions.
    pub async fn close_all(&self) {
        for session in self.sessions.all() {
            self.sessions.remove(&session.id);
            session.close().await;
        }
    }
}

/// The context used for modern clients, whose requests carry their own `_meta`.
fn modern_context() -> Arc<ClientContext> {
    static CONTEXT: std::sync::OnceLock<Arc<ClientContext>> = std::sync::OnceLock::new();
    CONTEXT.get_or_init(|| Arc::new(ClientContext::mcplex())).clone()
}

enum Identified {
    Client(Client),
    Initialize,
}
