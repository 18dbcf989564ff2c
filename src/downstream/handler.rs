//! The `/mcp` endpoint: transport checks, limits, era detection and sessions; then the router.

use crate::budget::{ReadError, read_body};
use crate::downstream::authn::{self, Authenticator, Refusal};
use crate::downstream::guard;
use crate::downstream::modern;
use crate::downstream::respond::{self, Body};
use crate::downstream::session_store::{Session, SessionStore};
use crate::identity::{Acting, Principal};
use crate::protocol::header::MCP_SESSION_ID;
use crate::protocol::{self, ClientContext, Era, jsonrpc, method};
use crate::route::EncodedMessage;
use crate::route::{self, Caller, ClientSession, Inbound, Router};
use crate::telemetry::TraceContext;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::{Semaphore, broadcast, mpsc};

/// Largest request body accepted by default.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;
/// Requests handled at once by default; more get HTTP 503.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 128;
/// SSE streams (call streams, GET streams, listen streams) open at once by default; more get HTTP 503.
pub const DEFAULT_MAX_STREAMS: usize = 128;

/// The endpoint's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request body limit in bytes.
    pub max_body: usize,
    /// Session-era sessions open at once.
    pub max_sessions: usize,
    /// Requests handled at once.
    pub max_in_flight: usize,
    /// SSE streams open at once.
    pub max_streams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: DEFAULT_MAX_BODY,
            max_sessions: crate::downstream::session_store::DEFAULT_MAX_SESSIONS,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }
}

/// State shared by every request to the endpoint.
pub struct Endpoint {
    /// Targets, catalog and routing.
    pub router: Arc<Router>,
    /// Session-era sessions.
    pub sessions: SessionStore,
    limits: Limits,
    in_flight: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    authn: Authenticator,
}

impl Endpoint {
    /// An endpoint over `router`.
    pub fn new(router: Arc<Router>, limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            router,
            sessions: SessionStore::new(limits.max_sessions),
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            streams: Arc::new(Semaphore::new(limits.max_streams.max(1))),
            limits,
            authn: Authenticator::default(),
        })
    }

    /// SSE streams open now.
    pub fn open_streams(&self) -> usize {
        self.limits.max_streams.max(1) - self.streams.available_permits()
    }

    /// Handles one HTTP request.
    pub async fn handle(self: Arc<Self>, request: Request<hyper::body::Incoming>) -> Response<Body> {
        let path = request.uri().path();
        let is_metadata = authn::is_metadata_path(path) && request.method() == Method::GET;
        if path != protocol::ENDPOINT_PATH && !is_metadata {
            return respond::plain(StatusCode::NOT_FOUND, "not found: the MCP endpoint is /mcp");
        }
        if let Err(refusal) = guard::check(request.uri(), request.headers()) {
            tracing::warn!(%refusal, "request refused");
            return respond::plain(StatusCode::FORBIDDEN, &refusal.to_string());
        }
        let config = self.router.snapshot().config.clone();
        if is_metadata {
            return authn::metadata_response(config.inbound.as_ref(), request.headers());
        }
        let Ok(_in_flight) = self.in_flight.clone().try_acquire_owned() else {
            tracing::warn!(limit = self.limits.max_in_flight, "request refused: too many in flight");
            return respond::too_busy(&format!("{} requests in flight", self.limits.max_in_flight));
        };
        let principal = match self
            .authn
            .authenticate(config.inbound.as_ref(), request.headers())
            .await
        {
            Ok(principal) => principal,
            Err(refusal) => return authn::refusal_response(&refusal, config.inbound.as_ref(), request.headers()),
        };
        match *request.method() {
            Method::POST => self.post(request, principal).await,
            Method::GET => self.get(request.headers(), principal.as_ref()),
            Method::DELETE => self.delete(request.headers(), principal.as_ref()).await,
            _ => {
                let mut response = respond::plain(StatusCode::METHOD_NOT_ALLOWED, "use POST, GET or DELETE");
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
                response
            }
        }
    }

    async fn post(&self, request: Request<hyper::body::Incoming>, principal: Option<Arc<Principal>>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        if let Some(kind) = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
            && !protocol::is_media_type(kind, protocol::JSON_MEDIA_TYPE)
        {
            return respond::error_with_status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                jsonrpc::INVALID_REQUEST,
                &format!("Content-Type `{kind}` is not application/json"),
            );
        }
        // The request's share of the budget is held until its answer is built (the parsed request and
        // the copy sent upstream are about its size).
        let mut hold = self.router.budget.hold();
        let bytes = match read_body(body, self.limits.max_body, &mut hold, 2).await {
            Ok(bytes) => bytes,
            Err(ReadError::TooLarge { limit }) => {
                return respond::error_with_status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    jsonrpc::INVALID_REQUEST,
                    &format!("request body is larger than the {limit} byte limit"),
                );
            }
            Err(ReadError::OverBudget(over)) => {
                tracing::warn!(%over, "request refused");
                return respond::error_with_status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    jsonrpc::INTERNAL_ERROR,
                    &over.to_string(),
                );
            }
            Err(error @ ReadError::Body(_)) => {
                return respond::error_with_status(
                    StatusCode::BAD_REQUEST,
                    None,
                    jsonrpc::PARSE_ERROR,
                    &format!("request {error}"),
                );
            }
        };
        let message = match jsonrpc::Message::parse(bytes) {
            Ok(message) => message,
            Err(jsonrpc::Unreadable::Invalid(invalid)) => {
                return respond::error_with_status(
                    StatusCode::BAD_REQUEST,
                    invalid.id,
                    jsonrpc::INVALID_REQUEST,
                    &format!("Invalid Request: {}", invalid.reason),
                );
            }
            Err(error) => {
                return respond::error_with_status(
                    StatusCode::BAD_REQUEST,
                    None,
                    jsonrpc::PARSE_ERROR,
                    &format!("Parse error: {error}"),
                );
            }
        };
        let caller = match self.identify(&parts.headers, &message) {
            Ok(Identified::Caller(caller)) => caller,
            Ok(Identified::Initialize) => return self.initialize(&message, principal.map(Acting::new)),
            Err(response) => return *response,
        };
        let acting = match &caller {
            Caller::Session(session) => match bind(session, principal) {
                Ok(acting) => acting,
                Err(refusal) => return authn::refusal_response(&refusal, None, &parts.headers),
            },
            Caller::Stateless(_) => principal.map(Acting::new),
        };
        let era = caller.era();
        let trace = TraceContext::from_request(&parts.headers, &message);
        let param_headers = match era {
            Era::Modern if message.method() == method::TOOLS_CALL => param_headers(&parts.headers),
            _ => Vec::new(),
        };
        let inbound = Inbound {
            caller,
            message,
            trace,
            acting,
            param_headers,
        };
        let outcome = route::handle(&self.router, inbound).await;
        let response = respond::outcome(era, outcome, || self.streams.clone().try_acquire_owned().ok());
        drop(hold);
        response
    }

    fn identify(&self, headers: &HeaderMap, message: &jsonrpc::Message) -> Result<Identified, Box<Response<Body>>> {
        let id = message.id().cloned();
        let fail = |status: StatusCode, code: i64, text: String| {
            Err(Box::new(respond::error_with_status(status, id.clone(), code, &text)))
        };
        if let Some(session_id) = headers.get(MCP_SESSION_ID) {
            let found = session_id.to_str().ok().and_then(|id| self.sessions.get(id));
            let Some(session) = found else {
                return fail(
                    StatusCode::NOT_FOUND,
                    jsonrpc::INVALID_REQUEST,
                    "session not found: it expired or was ended; send initialize again".into(),
                );
            };
            if let Some(version) = modern::version_header(headers)
                && Era::of_version(&version) != Some(Era::Legacy)
            {
                return fail(
                    StatusCode::BAD_REQUEST,
                    jsonrpc::INVALID_REQUEST,
                    format!("MCP-Protocol-Version `{version}` is not a session-era version mcplex supports"),
                );
            }
            session.touch();
            return Ok(Identified::Caller(Caller::Session(session.route.clone())));
        }
        if !modern::speaks_modern(headers, message) {
            if message.method() == method::INITIALIZE {
                return Ok(Identified::Initialize);
            }
            return fail(StatusCode::BAD_REQUEST, jsonrpc::INVALID_REQUEST, "Bad Request: no Mcp-Session-Id header; session-era clients must send initialize first, 2026-07-28 clients must send MCP-Protocol-Version and _meta".into());
        }
        if message.kind != jsonrpc::Kind::Request {
            return Ok(Identified::Caller(Caller::Stateless(modern_context())));
        }
        modern::check_request(headers, message)?;
        // The request's own _meta travels with it to modern targets; the shared context only fills gaps.
        Ok(Identified::Caller(Caller::Stateless(modern_context())))
    }

    fn initialize(&self, message: &jsonrpc::Message, acting: Option<Arc<Acting>>) -> Response<Body> {
        let id = message.id().cloned().unwrap_or(Value::Null);
        if message.kind != jsonrpc::Kind::Request {
            return respond::error_with_status(
                StatusCode::BAD_REQUEST,
                None,
                jsonrpc::INVALID_REQUEST,
                "initialize must be a request with an id",
            );
        }
        let params = message.params_value().unwrap_or_else(|| json!({}));
        let requested = params.get("protocolVersion").and_then(Value::as_str).unwrap_or("");
        // Offer the client's version when mcplex speaks it, else the newest session-era one (the client decides).
        let version = if Era::of_version(requested) == Some(Era::Legacy) {
            requested
        } else {
            protocol::LATEST_LEGACY_VERSION
        };
        let context = ClientContext::new(
            version,
            params
                .get("clientInfo")
                .cloned()
                .unwrap_or_else(|| json!({"name": "unknown", "version": "0"})),
            params
                .get("capabilities")
                .cloned()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({})),
        );
        let route = ClientSession::new(
            uuid::Uuid::new_v4().simple().to_string(),
            context,
            acting,
            self.router.budget.clone(),
            self.router.metrics.clone(),
        );
        let session = match self.sessions.insert(route) {
            Ok(session) => session,
            Err(limit) => {
                tracing::warn!(%limit, "initialize refused");
                return respond::error_with_status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(id),
                    jsonrpc::INTERNAL_ERROR,
                    &limit.to_string(),
                );
            }
        };
        let result = route::initialize_result(&self.router.snapshot(), version);
        let mut response = respond::json(Era::Legacy, &jsonrpc::result(id, result));
        if let Ok(value) = HeaderValue::from_str(session.id()) {
            response.headers_mut().insert(MCP_SESSION_ID, value);
        }
        tracing::info!(session = %session.id(), client = %session.route.context.client_info, version, "session started");
        response
    }

    fn get(&self, headers: &HeaderMap, principal: Option<&Arc<Principal>>) -> Response<Body> {
        let Some(session_id) = headers.get(MCP_SESSION_ID).and_then(|v| v.to_str().ok()) else {
            return respond::plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET needs an Mcp-Session-Id; 2026-07-28 clients use subscriptions/listen",
            );
        };
        let Some(session) = self.sessions.get(session_id) else {
            return respond::plain(StatusCode::NOT_FOUND, "session not found");
        };
        if let Err(refusal) = bind(&session.route, principal.cloned()) {
            return authn::refusal_response(&refusal, None, headers);
        }
        session.touch();
        let Ok(slot) = self.streams.clone().try_acquire_owned() else {
            return respond::too_busy(&format!("{} open SSE streams", self.limits.max_streams));
        };
        let (tx, rx) = mpsc::channel::<EncodedMessage>(32);
        tokio::spawn(carry_session_stream(session, self.router.subscribe_changes(), tx));
        respond::sse(rx, slot)
    }

    async fn delete(&self, headers: &HeaderMap, principal: Option<&Arc<Principal>>) -> Response<Body> {
        let Some(session_id) = headers.get(MCP_SESSION_ID).and_then(|v| v.to_str().ok()) else {
            return respond::plain(StatusCode::METHOD_NOT_ALLOWED, "DELETE needs an Mcp-Session-Id");
        };
        if let Some(session) = self.sessions.get(session_id)
            && let Err(refusal) = bind(&session.route, principal.cloned())
        {
            return authn::refusal_response(&refusal, None, headers);
        }
        match self.sessions.remove(session_id) {
            Some(session) => {
                tracing::info!(session = %session.id(), "session ended by the client");
                tokio::spawn(async move { session.route.close().await });
                respond::empty(StatusCode::OK)
            }
            None => respond::plain(StatusCode::NOT_FOUND, "session not found"),
        }
    }

    /// Ends every session (at shutdown), closing their upstream sessions.
    pub async fn close_all(&self) {
        let sessions = self.sessions.drain();
        futures_util::future::join_all(sessions.iter().map(|s| s.route.close())).await;
    }
}

/// Feeds a session's GET stream: messages the targets sent on their own streams, and `list_changed`.
async fn carry_session_stream(
    session: Arc<Session>,
    mut changes: broadcast::Receiver<Value>,
    tx: mpsc::Sender<EncodedMessage>,
) {
    let Ok(mut inbox) = session.route.stream_inbox().try_lock() else {
        let refusal = jsonrpc::error(
            None,
            jsonrpc::INVALID_REQUEST,
            "another GET stream is open for this session",
        );
        let _ = tx.send(EncodedMessage::of(&refusal)).await;
        return;
    };
    let _open = session.route.streams.open_get();
    loop {
        let chunk = tokio::select! {
            _ = tx.closed() => return,
            Some(chunk) = inbox.recv() => {
                session.route.dequeued(&chunk);
                chunk
            }
            change = changes.recv() => match change {
                Ok(change) => EncodedMessage::of(&change),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
}

/// Checks that a session-era request comes from the subject that opened the session, and keeps the
/// newest token for the session's upstream work. A session opened while inbound identity was off
/// cannot be used once it is on.
fn bind(session: &ClientSession, principal: Option<Arc<Principal>>) -> Result<Option<Arc<Acting>>, Refusal> {
    match (principal, &session.acting) {
        (None, acting) => Ok(acting.clone()),
        (Some(principal), Some(acting)) => {
            let owner = acting.current();
            let same = owner.subject == principal.subject && owner.claims.get("iss") == principal.claims.get("iss");
            if !same {
                return Err(Refusal::OtherSubject);
            }
            acting.update(principal);
            Ok(Some(acting.clone()))
        }
        (Some(_), None) => Err(Refusal::OtherSubject),
    }
}

/// The context used for modern clients, whose requests carry their own `_meta`.
fn modern_context() -> Arc<ClientContext> {
    static CONTEXT: std::sync::OnceLock<Arc<ClientContext>> = std::sync::OnceLock::new();
    CONTEXT.get_or_init(|| Arc::new(ClientContext::mcplex())).clone()
}

enum Identified {
    Caller(Caller),
    Initialize,
}

/// The `Mcp-Param-*` headers of a request, in the order received (duplicates kept, so they can be refused).
fn param_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with(protocol::params::HEADER_PREFIX))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a two-argument function returns, read from its type (it is never called).
    fn future_size<A, B, F: Future>(_: impl FnOnce(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// hyper moves each request's future into place and it lives for the whole call, so its size is a cost
    /// per request. Rare paths (discovery, handshakes, token exchanges) are boxed to keep it small; an await
    /// of one of them inlined again shows here (before they were, this future was 31,000 bytes; now about 7,000).
    #[test]
    fn a_request_keeps_a_small_future() {
        let size = future_size(Endpoint::handle);
        assert!(size <= 12 * 1024, "the future of one request is {size} bytes");
    }
}
