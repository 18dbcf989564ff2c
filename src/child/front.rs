//! The HTTP side of `mcplex serve -- COMMAND`: the session era of Streamable HTTP over server processes.
//! `initialize` starts a process for a new session; POSTs of that session go to it (a request's answer is
//! the POST's JSON answer); what the process sends on its own goes to the session's GET stream; DELETE, an
//! idle timeout or mcplex stopping ends the process.

use super::metrics::ServeMetrics;
use super::pool::{PoolLimits, WarmPool};
use super::process::ServerCommand;
use super::session::{Session, SessionError};
use crate::downstream::modern;
use crate::downstream::respond::{self, Body};
use crate::parking::NoRandomness;
use crate::protocol::header::MCP_SESSION_ID;
use crate::protocol::sse::encode_event;
use crate::protocol::{ENDPOINT_PATH, SSE_MEDIA_TYPE, jsonrpc};
use crate::sync::lock;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why no session was started.
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// As many sessions run as allowed.
    #[error("mcplex serve runs at most {max} sessions at once (--max-sessions)")]
    Full {
        /// The limit.
        max: usize,
    },
    /// The server process could not be started.
    #[error(transparent)]
    Spawn(#[from] super::process::SpawnError),
}

/// Who sends a request, as the checks in front of this transport established it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// What binds a session to its caller (a session is served only to the caller that opened it).
    pub key: String,
    /// Put in each request's `params._meta` under [`CALLER_META`], for the server to know who calls.
    pub meta: Value,
    /// The subject.
    pub subject: String,
    /// Who acts for the subject, when someone does.
    pub actor: Option<String>,
    /// Every claim of the caller's token (for policy), never the token.
    pub claims: Map<String, Value>,
    /// A digest of the caller's token, under which decisions about it may be remembered.
    pub digest: [u8; 32],
}

impl Caller {
    /// Puts the caller in a request's or notification's `params._meta` under [`CALLER_META`]; what the
    /// client put under that key is replaced, for only the checks here say who calls.
    pub fn stamp(&self, message: &mut Value) {
        if message.get("method").is_none() {
            return;
        }
        if let Some(meta) = crate::protocol::meta_object(message) {
            meta.insert(CALLER_META.into(), self.meta.clone());
        }
    }
}

/// What the server end decides and records about each request of a client: its policy and its audit
/// trail. The transport calls these; it knows neither.
pub trait Checks: Send + Sync {
    /// Whether `caller` may send `message`; `Err` holds why not, for the client.
    fn allow(&self, caller: Option<&Caller>, message: &Value) -> Result<(), String>;
    /// One request ended: `outcome` is `ok`, `error` (the server answered with an error), `denied`,
    /// `timeout` or `unavailable` (the process ended).
    fn record(&self, caller: Option<&Caller>, session: &str, message: &Value, outcome: &'static str, took: Duration);
}

/// What the server end does around each request of a client, whichever front serves it: the policy's
/// decision before the request goes on, and its metrics and audit line once it has ended.
pub struct Accounting {
    checks: Option<Arc<dyn Checks>>,
    metrics: Arc<ServeMetrics>,
}

impl Accounting {
    /// Accounts with `checks` (none: every request is let through, and only counted).
    pub fn new(checks: Option<Arc<dyn Checks>>) -> Self {
        Self {
            checks,
            metrics: Arc::default(),
        }
    }

    /// The counters, shared with what else counts the front's processes.
    pub fn metrics(&self) -> &Arc<ServeMetrics> {
        &self.metrics
    }

    /// Whether `caller` may send `message`; a refusal is counted and audited as `denied` here, and its
    /// reason returned for the client.
    pub fn admit(&self, caller: Option<&Caller>, session: &str, message: &Value) -> Result<(), String> {
        let Some(checks) = &self.checks else {
            return Ok(());
        };
        checks
            .allow(caller, message)
            .inspect_err(|_| self.ended(caller, session, message, "denied", Duration::ZERO))
    }

    /// One request ended with `outcome` after `took`: counted, and audited when something checks.
    pub fn ended(
        &self,
        caller: Option<&Caller>,
        session: &str,
        message: &Value,
        outcome: &'static str,
        took: Duration,
    ) {
        self.metrics.answered(outcome, took);
        if let Some(checks) = &self.checks {
            checks.record(caller, session, message, outcome, took);
        }
    }
}

/// How a request its server answered ended: `error` for a JSON-RPC error, `ok` for a result.
pub fn answer_outcome(answer: &Value) -> &'static str {
    if answer.get("error").is_some() { "error" } else { "ok" }
}

/// The `_meta` key under which a server learns who calls (never the caller's token).
pub const CALLER_META: &str = "dev.mcplex/caller";

/// The bounds of the front.
#[derive(Debug, Clone)]
pub struct FrontLimits {
    /// Sessions (so server processes) at once; `initialize` beyond that is refused.
    pub max_sessions: usize,
    /// Longest wait for the answer to a client's request.
    pub call_timeout: Duration,
    /// Longest wait for a new process to answer `initialize` (its start included: a Python or Node server
    /// may take seconds on a busy node).
    pub start_timeout: Duration,
    /// A session the client has not used this long is ended, unless a request of it is under way.
    pub idle: Duration,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Warm processes serving 2026-07-28 requests at once.
    pub pool: usize,
}

impl Default for FrontLimits {
    fn default() -> Self {
        Self {
            max_sessions: 64,
            call_timeout: Duration::from_secs(300),
            start_timeout: Duration::from_secs(30),
            idle: Duration::from_secs(600),
            max_body: 4 * 1024 * 1024,
            pool: 4,
        }
    }
}

/// The sessions of one served command.
pub struct StdioFront {
    pub(super) command: ServerCommand,
    pub(super) limits: FrontLimits,
    pub(super) accounting: Accounting,
    sessions: Arc<Mutex<HashMap<String, Arc<Session>>>>,
    pub(super) pool: Arc<WarmPool>,
    /// The processes serving 2026-07-28 `subscriptions/listen` streams, one each.
    pub(super) listens: Arc<Mutex<HashMap<String, Arc<Session>>>>,
}

impl StdioFront {
    /// A front for `command`; sessions end by themselves after `limits.idle`, and all of them when `stop`
    /// is cancelled.
    pub fn new(
        command: ServerCommand,
        limits: FrontLimits,
        checks: Option<Arc<dyn Checks>>,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, NoRandomness> {
        let accounting = Accounting::new(checks);
        let pool_limits = PoolLimits {
            size: limits.pool,
            call_timeout: limits.call_timeout,
            start_timeout: limits.start_timeout,
        };
        let pool = WarmPool::new(command.clone(), pool_limits, accounting.metrics().clone())?;
        let front = Arc::new(Self {
            command,
            limits,
            accounting,
            sessions: Arc::default(),
            pool,
            listens: Arc::default(),
        });
        tokio::spawn(front.clone().reap(stop));
        Ok(front)
    }

    /// Its counters, for `/metrics`.
    pub fn metrics(&self) -> &ServeMetrics {
        self.accounting.metrics()
    }

    /// 2026-07-28 requests being served by the pool now.
    pub fn pool_in_use(&self) -> usize {
        self.pool.in_use()
    }

    /// The process ids of the server processes: the sessions', then the pool's.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = lock(&self.sessions).values().map(|s| s.pid()).collect();
        pids.extend(self.pool.pids());
        pids.extend(lock(&self.listens).values().map(|s| s.pid()));
        pids
    }

    /// Answers one HTTP request of `caller` (`None` when nothing checks callers).
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>, caller: Option<Caller>) -> Response<Body> {
        if request.uri().path() != ENDPOINT_PATH {
            return respond::empty(StatusCode::NOT_FOUND);
        }
        let session_id = request
            .headers()
            .get(MCP_SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let session = session_id.as_deref().map(|id| lock(&self.sessions).get(id).cloned());
        if let Some(Some(session)) = &session
            && session.owner() != caller.as_ref().map(|c| c.key.as_str())
        {
            let text = "the session belongs to another caller; open a session of your own";
            return respond::error_with_status(StatusCode::FORBIDDEN, None, jsonrpc::INVALID_REQUEST, text);
        }
        match (request.method().clone(), session) {
            (_, Some(None)) => {
                respond::error_with_status(StatusCode::NOT_FOUND, None, jsonrpc::INVALID_REQUEST, "no such session")
            }
            (Method::GET, Some(Some(session))) => stream(&session),
            (Method::GET, None) => respond::error_with_status(
                StatusCode::BAD_REQUEST,
                None,
                jsonrpc::INVALID_REQUEST,
                "a GET stream needs an Mcp-Session-Id",
            ),
            (Method::DELETE, Some(Some(session))) => {
                self.end(&session, "its client ended the session");
                respond::empty(StatusCode::OK)
            }
            (Method::POST, session) => self.post(request, session.flatten(), caller).await,
            _ => respond::empty(StatusCode::METHOD_NOT_ALLOWED),
        }
    }

    async fn post(
        self: Arc<Self>,
        request: Request<Incoming>,
        session: Option<Arc<Session>>,
        caller: Option<Caller>,
    ) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let headers = parts.headers;
        let body = match read_body(body, self.limits.max_body).await {
            Ok(body) => body,
            Err(refusal) => return *refusal,
        };
        // The envelope as the sidecar reads it, for the checks a 2026-07-28 request must pass.
        let raw = (session.is_none())
            .then(|| jsonrpc::Message::parse(body.clone()).ok())
            .flatten()
            .filter(|raw| modern::speaks_modern(&headers, raw));
        let mut message: Value = match serde_json::from_slice(&body) {
            Ok(message @ Value::Object(_)) => message,
            Ok(_) => {
                let text = "the body must be one JSON-RPC message (an object)";
                return respond::error_with_status(StatusCode::BAD_REQUEST, None, jsonrpc::INVALID_REQUEST, text);
            }
            Err(e) => {
                return respond::error_with_status(StatusCode::BAD_REQUEST, None, jsonrpc::PARSE_ERROR, &e.to_string());
            }
        };
        let is_request = message.get("method").is_some() && message.get("id").is_some();
        if let Some(caller) = &caller {
            caller.stamp(&mut message);
        }
        if let Some(raw) = raw {
            return self.stateless(&headers, &raw, message, caller).await;
        }
        let session = match session {
            Some(session) => session,
            None if message["method"] == "initialize" && is_request => match self.start(caller.as_ref()) {
                Ok(session) => session,
                Err(refused) => {
                    let status = match refused {
                        Refused::Full { .. } => StatusCode::SERVICE_UNAVAILABLE,
                        Refused::Spawn(_) => StatusCode::OK,
                    };
                    return respond::error_with_status(
                        status,
                        Some(message["id"].clone()),
                        jsonrpc::TARGET_UNAVAILABLE,
                        &refused.to_string(),
                    );
                }
            },
            None => {
                let text = "no Mcp-Session-Id: a session starts with initialize";
                return respond::error_with_status(
                    StatusCode::BAD_REQUEST,
                    Some(message["id"].clone()),
                    jsonrpc::INVALID_REQUEST,
                    text,
                );
            }
        };
        if !is_request {
            return match session.send(&message).await {
                Ok(()) => respond::empty(StatusCode::ACCEPTED),
                Err(e) => respond::error_with_status(StatusCode::OK, None, jsonrpc::TARGET_UNAVAILABLE, &e.to_string()),
            };
        }
        if let Err(reason) = self.accounting.admit(caller.as_ref(), &session.id, &message) {
            let mut response = respond::error_with_status(
                StatusCode::OK,
                Some(message["id"].clone()),
                jsonrpc::DENIED_BY_POLICY,
                &reason,
            );
            if let Ok(id) = http::HeaderValue::from_str(&session.id) {
                response.headers_mut().insert(MCP_SESSION_ID, id);
            }
            return response;
        }
        let begun = std::time::Instant::now();
        let timeout = if message["method"] == "initialize" {
            self.limits.start_timeout
        } else {
            self.limits.call_timeout
        };
        let answer = session.request(&message, timeout).await;
        let outcome = match &answer {
            Ok(answer) => answer_outcome(answer),
            Err(SessionError::Timeout(_)) => "timeout",
            Err(SessionError::DuplicateId(_)) => "error",
            Err(SessionError::Ended(_)) => "unavailable",
        };
        self.accounting
            .ended(caller.as_ref(), &session.id, &message, outcome, begun.elapsed());
        if message["method"] == "initialize" && answer.is_err() {
            // A process that cannot even be initialised is no session to keep.
            self.end(&session, "it did not answer initialize");
        }
        let mut response = match answer {
            Ok(answer) => respond::json_with_status(StatusCode::OK, &answer),
            Err(e @ SessionError::Timeout(_)) => respond::error_with_status(
                StatusCode::OK,
                Some(message["id"].clone()),
                jsonrpc::TARGET_TIMEOUT,
                &e.to_string(),
            ),
            Err(e @ SessionError::DuplicateId(_)) => respond::error_with_status(
                StatusCode::OK,
                Some(message["id"].clone()),
                jsonrpc::INVALID_REQUEST,
                &e.to_string(),
            ),
            Err(e @ SessionError::Ended(_)) => respond::error_with_status(
                StatusCode::OK,
                Some(message["id"].clone()),
                jsonrpc::TARGET_UNAVAILABLE,
                &e.to_string(),
            ),
        };
        if let Ok(id) = http::HeaderValue::from_str(&session.id) {
            response.headers_mut().insert(MCP_SESSION_ID, id);
        }
        response
    }

    /// Starts a session and its process, unless as many run as the limit allows.
    fn start(&self, caller: Option<&Caller>) -> Result<Arc<Session>, Refused> {
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= self.limits.max_sessions {
            return Err(Refused::Full {
                max: self.limits.max_sessions,
            });
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let session = Session::start(id.clone(), &self.command, caller.map(|c| c.key.clone()))?;
        sessions.insert(id, session.clone());
        drop(sessions);
        // A session whose process ends is forgotten: the client's next request gets 404 and starts afresh.
        let metrics = self.accounting.metrics().clone();
        metrics.started();
        let (sessions, ended) = (self.sessions.clone(), session.clone());
        tokio::spawn(async move {
            ended.gone().cancelled().await;
            metrics.ended(&ended.end_reason());
            let mut sessions = lock(&sessions);
            if sessions.get(&ended.id).is_some_and(|s| Arc::ptr_eq(s, &ended)) {
                sessions.remove(&ended.id);
            }
        });
        Ok(session)
    }

    fn end(&self, session: &Session, why: &'static str) {
        lock(&self.sessions).remove(&session.id);
        session.stop(why);
    }

    /// Ends sessions idle past the limit, until `stop` is cancelled.
    async fn reap(self: Arc<Self>, stop: CancellationToken) {
        let period = (self.limits.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let idle: Vec<Arc<Session>> = lock(&self.sessions)
                .values()
                .filter(|s| !s.busy() && s.idle_for() >= self.limits.idle)
                .cloned()
                .collect();
            for session in idle {
                self.end(&session, "its session was idle too long");
            }
        }
    }

    /// Ends every session once its calls under way are answered (or `drain` has passed) and waits until
    /// their processes are gone (each gets SIGTERM, then SIGKILL after the grace period).
    pub async fn shutdown(&self, drain: Duration) {
        let open: Vec<Arc<Session>> = lock(&self.sessions).values().cloned().collect();
        let answered = futures_util::future::join_all(open.iter().map(|s| s.until_idle()));
        let _ = tokio::time::timeout(drain, answered).await;
        let mut all: Vec<Arc<Session>> = lock(&self.sessions).drain().map(|(_, s)| s).collect();
        all.extend(lock(&self.listens).drain().map(|(_, s)| s));
        for session in &all {
            session.stop("mcplex is stopping");
        }
        let wait = futures_util::future::join_all(all.iter().map(|s| s.gone().cancelled()));
        let sessions_gone = tokio::time::timeout(super::limits::STOP_GRACE * 2, wait);
        let _ = tokio::join!(sessions_gone, self.pool.shutdown());
    }
}

/// A request's whole body, at most `max` bytes; the answer for the client when it is larger or cut off.
pub async fn read_body(body: Incoming, max: usize) -> Result<Bytes, Box<Response<Body>>> {
    match Limited::new(body, max).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(_) => {
            let text = format!("the request is larger than {max} bytes, or was cut off");
            Err(Box::new(respond::error_with_status(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                jsonrpc::INVALID_REQUEST,
                &text,
            )))
        }
    }
}

/// The session's GET stream: an SSE body fed by what its process sends on its own.
fn stream(session: &Session) -> Response<Body> {
    sse_body(session.open_stream())
}

/// An SSE response whose events are the messages `receiver` yields, until it ends.
pub(super) fn sse_body(receiver: tokio::sync::mpsc::Receiver<Value>) -> Response<Body> {
    let events = tokio_stream_of(receiver).map(|message| encode_event(message.to_string().as_bytes()));
    let body = StreamBody::new(events.map(|event| Ok::<_, Infallible>(Frame::data(event))));
    let mut response = Response::new(BodyExt::boxed_unsync(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(SSE_MEDIA_TYPE));
    response
}

/// The receiver as a stream of its items.
fn tokio_stream_of<T>(mut receiver: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
