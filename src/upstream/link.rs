//! The way to one target: its pooled HTTP(S) client, credentials, request ids, the capabilities it
//! announced, the exchanges in flight, and its retirement when the config drops it. Every exchange has
//! the target's deadline; nothing here holds a lock across network I/O.

use crate::budget::{Budget, ReadError, read_body};
use crate::config::TargetConfig;
use crate::identity::Acting;
use crate::metrics::Metrics;
use crate::net::{HttpClient, is_tls_failure};
use crate::protocol::header::{LAST_EVENT_ID, MCP_PROTOCOL_VERSION, MCP_SESSION_ID};
use crate::protocol::raw::RawMessage;
use crate::protocol::{self, headers as mcp_headers};
use crate::sync::lock;
use crate::telemetry::TraceContext;
use crate::upstream::MAX_MESSAGE_BYTES;
use crate::upstream::credentials::{CredentialError, Credentials};
use crate::upstream::error::UpstreamError;
use crate::upstream::pool::Pool;
use crate::upstream::reply::{MessageStream, PendingReply, Received, Reply, Resume, is_event_stream, several_messages};
use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Headers an upstream request carries at most in the common case (host, version, session, content type,
/// accept, method, name, trace context, credential and the client's `Mcp-Param-*` ones).
const REQUEST_HEADERS: usize = 12;

/// The `Host` header for `url`: its host, and its port unless it is the scheme's default (what the HTTP
/// client would send).
fn host_header(url: &http::Uri) -> Option<HeaderValue> {
    let host = url.host()?;
    let default_port = match url.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let text = match url.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::from_str(&text).ok()
}

/// Per-POST header values that depend on the caller.
#[derive(Default)]
pub struct Outbound<'a> {
    /// `MCP-Protocol-Version` to send.
    pub protocol_version: Option<&'a str>,
    /// `Mcp-Session-Id` to send.
    pub session_id: Option<&'a str>,
    /// Send `Mcp-Method`/`Mcp-Name` (modern era).
    pub method_headers: bool,
    /// W3C trace context for the target.
    pub trace: Option<&'a TraceContext>,
    /// The caller the request is made for (a token exchange uses their token).
    pub acting: Option<&'a Acting>,
    /// `Mcp-Param-*` headers mirroring a call's arguments (modern era, tools that declare them).
    pub params: &'a [(HeaderName, HeaderValue)],
}

/// Characters of a target's instructions kept (for tool search): what a server is for comes first.
const MAX_INSTRUCTIONS: usize = 300;

/// A message ready to POST: its text, and the routing headers it needs when it goes out in the 2026-07-28 era.
#[derive(Debug, Clone)]
pub struct Payload {
    /// The JSON text.
    pub body: Bytes,
    /// `Mcp-Method` and `Mcp-Name`.
    pub routing: mcp_headers::Routing,
}

impl Payload {
    /// Serializes a message built as a tree.
    pub fn of(message: &Value) -> Self {
        Self {
            body: Bytes::from(serde_json::to_vec(message).unwrap_or_default()),
            routing: mcp_headers::Routing::of(message),
        }
    }
}

/// The way to one configured target: its pooled client, credentials, request ids, what it announced,
/// the exchanges in flight and whether the config still has it.
pub struct Link {
    /// The target's checked config.
    pub config: TargetConfig,
    /// `Host` for every request, made once: left to the client, it is formatted anew for each call.
    host: Option<HeaderValue>,
    client: RwLock<Pool>,
    credentials: Credentials,
    next_id: AtomicU64,
    capabilities: Mutex<Option<Value>>,
    instructions: Mutex<Option<Arc<str>>>,
    exchanges: AtomicUsize,
    drained: Notify,
    retired: CancellationToken,
    unreachable: Notify,
    lists_changed: Notify,
    budget: Arc<Budget>,
    metrics: Arc<Metrics>,
    detached: AtomicUsize,
}

/// One background send to a target under way, until dropped.
pub struct DetachedSlot(Arc<Link>);

impl Drop for DetachedSlot {
    fn drop(&mut self) {
        self.0.detached.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Marks one exchange with a target as in flight until dropped (a retiring target waits for these).
pub struct ExchangeGuard(Arc<Link>);

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        if self.0.exchanges.fetch_sub(1, Ordering::AcqRel) == 1 && self.0.retired.is_cancelled() {
            self.0.drained.notify_waiters();
        }
    }
}

impl Link {
    /// Creates the link and its connection pool (no connection is opened yet); answers the target sends
    /// take their share of `budget` while mcplex holds them.
    pub fn new(config: TargetConfig, budget: Arc<Budget>, metrics: Arc<Metrics>) -> Result<Arc<Self>, UpstreamError> {
        let pool = Pool::build(&config).map_err(|source| UpstreamError::Tls {
            target: config.name.clone(),
            source,
        })?;
        let host = host_header(&config.url);
        Ok(Arc::new(Self {
            host,
            credentials: Credentials::for_target(config.auth.as_ref()).map_err(|source| UpstreamError::Credential {
                target: config.name.clone(),
                source: CredentialError::Exchange(Arc::new(source)),
            })?,
            config,
            client: RwLock::new(pool),
            next_id: AtomicU64::new(1),
            capabilities: Mutex::new(None),
            instructions: Mutex::new(None),
            exchanges: AtomicUsize::new(0),
            drained: Notify::new(),
            retired: CancellationToken::new(),
            unreachable: Notify::new(),
            lists_changed: Notify::new(),
            budget,
            metrics,
            detached: AtomicUsize::new(0),
        }))
    }

    /// Runs `work` under the target's deadline; running out is a [`UpstreamError::Timeout`].
    /// A combinator, not an `async fn`: an `async fn` would hold `work` twice (as its argument and inside the
    /// timer), doubling the size of every future that awaits a target.
    pub fn deadline<T>(
        &self,
        work: impl Future<Output = Result<T, UpstreamError>>,
    ) -> impl Future<Output = Result<T, UpstreamError>> {
        tokio::time::timeout(self.config.timeout, work).map(|outcome| outcome.unwrap_or_else(|_| Err(self.timeout())))
    }

    /// Counts an exchange as in flight until the guard is dropped.
    pub fn begin_exchange(self: &Arc<Self>) -> ExchangeGuard {
        self.exchanges.fetch_add(1, Ordering::AcqRel);
        ExchangeGuard(self.clone())
    }

    /// Exchanges in flight now.
    pub fn exchanges_in_flight(&self) -> usize {
        self.exchanges.load(Ordering::Acquire)
    }

    /// Cancelled once the config no longer has this target: streams and background work stop.
    pub fn retired(&self) -> &CancellationToken {
        &self.retired
    }

    /// Takes the link out of service: background work stops at once, and in-flight exchanges get up to
    /// the target's timeout to finish (the wait ends early when the last one does).
    pub async fn drain(&self) {
        self.retired.cancel();
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a last exchange ending in between still wakes us.
            drained.as_mut().enable();
            if self.exchanges_in_flight() == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                tracing::warn!(
                    target_name = self.name(),
                    in_flight = self.exchanges_in_flight(),
                    "removed target still had calls in flight after its timeout; ending its sessions anyway"
                );
                return;
            }
        }
    }

    /// A slot for one background send, while fewer than `limit` are under way; the slot is given back
    /// when dropped.
    pub fn detached_slot(self: &Arc<Self>, limit: usize) -> Option<DetachedSlot> {
        let previous = self.detached.fetch_add(1, Ordering::AcqRel);
        if previous >= limit {
            self.detached.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(DetachedSlot(self.clone()))
    }

    /// Signalled when an exchange found the target unreachable, so whoever keeps its lists can look again.
    pub fn unreachable_seen(&self) -> &Notify {
        &self.unreachable
    }

    /// Signalled when the target said, on a call's stream, that a list changed (a 2026-07-28 target has no
    /// other stream to say it on), so whoever keeps its lists fetches them again.
    pub fn lists_changed_seen(&self) -> &Notify {
        &self.lists_changed
    }

    /// Notes a `list_changed` notification the target sent on a call's stream.
    pub fn note_lists_changed(&self) {
        self.lists_changed.notify_one();
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// A fresh id for a request mcplex sends to this target.
    pub fn next_request_id(&self) -> Value {
        json!(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Remembers what the target announced about itself (the result of `server/discover` or `initialize`):
    /// its capabilities, and its instructions (their start, for tool search).
    pub fn set_announced(&self, result: Option<&Value>) {
        let Some(result) = result else { return };
        if let Some(capabilities) = result.get("capabilities").filter(|c| c.is_object()) {
            *lock(&self.capabilities) = Some(capabilities.clone());
        }
        if let Some(instructions) = result.get("instructions").and_then(Value::as_str) {
            let start: String = instructions.trim().chars().take(MAX_INSTRUCTIONS).collect();
            *lock(&self.instructions) = Some(start.into());
        }
    }

    /// The start of the instructions the target announced, if it did.
    pub fn instructions(&self) -> Option<Arc<str>> {
        lock(&self.instructions).clone()
    }

    /// False only when the target announced capabilities without `capability` (so its list need not be asked for).
    pub fn offers(&self, capability: &str) -> bool {
        lock(&self.capabilities)
            .as_ref()
            .is_none_or(|c| c.get(capability).is_some())
    }

    /// Rebuilds the connection pool when the TLS files changed; old connections finish as they are.
    pub fn reload_tls_if_changed(&self) -> Result<bool, UpstreamError> {
        if self.client.read().map(|c| c.is_current(&self.config)).unwrap_or(false) {
            return Ok(false);
        }
        let pool = Pool::build(&self.config).map_err(|source| UpstreamError::Tls {
            target: self.config.name.clone(),
            source,
        })?;
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = pool;
        Ok(true)
    }

    /// Closes the idle connections to the target by starting a new pool (requests under way finish on
    /// theirs). After the lists are fetched: a sidecar with a thousand targets would otherwise hold a
    /// connection to each, about 25 KiB of buffers apiece, until the pool's idle timer closed them.
    pub fn close_idle_connections(&self) {
        self.client.write().unwrap_or_else(|p| p.into_inner()).renew();
    }

    fn client(&self) -> HttpClient {
        self.client.read().unwrap_or_else(|p| p.into_inner()).client()
    }

    /// POSTs one message and classifies the answer.
    pub async fn post(&self, message: &Value, out: &Outbound<'_>) -> Result<Reply, UpstreamError> {
        self.post_payload(&Payload::of(message), out)
            .await
            .map(|(reply, _)| reply)
    }

    /// POSTs one message; also returns the `Mcp-Session-Id` the target assigned, if any.
    pub async fn post_with_session_id(
        &self,
        message: &Value,
        out: &Outbound<'_>,
    ) -> Result<(Reply, Option<String>), UpstreamError> {
        self.post_payload(&Payload::of(message), out).await
    }

    /// POSTs one message already written; also returns the `Mcp-Session-Id` the target assigned, if any.
    pub async fn post_payload(
        &self,
        payload: &Payload,
        out: &Outbound<'_>,
    ) -> Result<(Reply, Option<String>), UpstreamError> {
        // One deadline covers the credential, the headers and a JSON body (a stream's deadline is the relay's).
        let exchange = async {
            let mut request = self.request(Method::POST, payload.body.clone(), out).await?;
            let headers = request.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            );
            if out.method_headers {
                payload.routing.write(headers);
                for (name, value) in out.params {
                    headers.insert(name, value.clone());
                }
            }
            let resume = out.session_id.is_some().then(|| self.resume_of(request.headers()));
            let response = self
                .client()
                .request(request)
                .await
                .map_err(|e| self.connect_failed(e))?;
            let session_id = response
                .headers()
                .get(MCP_SESSION_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok((self.classify(response, resume).await?, session_id))
        };
        let result = self.deadline(exchange).await;
        if let Err(error) = &result {
            self.metrics.upstream_error(self.name(), error.kind());
            if matches!(
                error,
                UpstreamError::Unreachable { .. } | UpstreamError::TlsHandshake { .. }
            ) {
                self.unreachable.notify_one();
            }
        }
        result
    }

    /// The messages of a reply still to come, as a stream (see [`MessageStream::awaiting`]).
    pub fn stream_of_reply(&self, reply: PendingReply) -> MessageStream {
        MessageStream::awaiting(self.name(), reply, &self.budget)
    }

    /// Opens the legacy GET stream of a session; `None` when the target offers none (405). With
    /// `resume_from`, the target is asked to replay what followed that event id first (`Last-Event-ID`).
    pub async fn open_stream(
        &self,
        out: &Outbound<'_>,
        resume_from: Option<&str>,
    ) -> Result<Option<MessageStream>, UpstreamError> {
        let opened = self.open_stream_inner(out, resume_from).await;
        if let Err(error) = &opened {
            self.metrics.upstream_error(self.name(), error.kind());
        }
        opened
    }

    async fn open_stream_inner(
        &self,
        out: &Outbound<'_>,
        resume_from: Option<&str>,
    ) -> Result<Option<MessageStream>, UpstreamError> {
        let mut request = self.request(Method::GET, Bytes::new(), out).await?;
        request
            .headers_mut()
            .insert(header::ACCEPT, HeaderValue::from_static("text/event-stream"));
        // An id that is no header value cannot be sent; the stream then starts afresh.
        if let Some(last_event_id) = resume_from.and_then(|id| HeaderValue::from_str(id).ok()) {
            request.headers_mut().insert(LAST_EVENT_ID, last_event_id);
        }
        let response = self
            .deadline(async { self.client().request(request).await.map_err(|e| self.connect_failed(e)) })
            .await?;
        match response.status() {
            StatusCode::OK if is_event_stream(response.headers()) => Ok(Some(MessageStream::new(
                self.name(),
                response.into_body(),
                &self.budget,
            ))),
            StatusCode::NOT_FOUND if out.session_id.is_some() => Err(UpstreamError::SessionExpired {
                target: self.name().into(),
            }),
            StatusCode::METHOD_NOT_ALLOWED => Ok(None),
            status => Err(UpstreamError::Status {
                target: self.name().into(),
                status: status.as_u16(),
                body: String::new(),
            }),
        }
    }

    /// Ends a legacy session with DELETE; errors are ignored (the target may be gone).
    pub async fn delete_session(&self, out: &Outbound<'_>) {
        if let Ok(request) = self.request(Method::DELETE, Bytes::new(), out).await {
            let _ = tokio::time::timeout(self.config.timeout, self.client().request(request)).await;
        }
    }

    /// A request to the target's URL with the session, version and credential headers.
    /// A token exchange, when the target needs one, is bounded by the token endpoint's own deadline.
    async fn request(
        &self,
        method: Method,
        body: Bytes,
        out: &Outbound<'_>,
    ) -> Result<Request<Full<Bytes>>, UpstreamError> {
        let credential = self
            .credentials
            .header_for(out.acting)
            .await
            .map_err(|source| UpstreamError::Credential {
                target: self.name().into(),
                source,
            });
        let mut request = Request::new(Full::new(body));
        // Room for the headers an MCP request carries, so the map is not grown on every call.
        *request.headers_mut() = HeaderMap::with_capacity(REQUEST_HEADERS);
        *request.method_mut() = method;
        *request.uri_mut() = self.config.url.clone();
        if let Some(host) = &self.host {
            request.headers_mut().insert(header::HOST, host.clone());
        }
        self.add_common_headers(request.headers_mut(), out);
        if let Some((name, value)) = credential? {
            request.headers_mut().insert(name, value);
        }
        Ok(request)
    }

    fn add_common_headers(&self, headers: &mut HeaderMap, out: &Outbound<'_>) {
        if let Some(version) = out.protocol_version.and_then(protocol::version_header) {
            headers.insert(MCP_PROTOCOL_VERSION, version);
        }
        if let Some(id) = out.session_id.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(MCP_SESSION_ID, id);
        }
        if let Some(trace) = out.trace {
            trace.write_headers(headers);
        }
    }

    /// How a session's POST stream is resumed: a GET with the POST's headers but its body's.
    fn resume_of(&self, post: &HeaderMap) -> Resume {
        let mut headers = post.clone();
        headers.remove(header::CONTENT_TYPE);
        headers.insert(header::ACCEPT, HeaderValue::from_static(protocol::SSE_MEDIA_TYPE));
        Resume {
            client: self.client(),
            uri: self.config.url.clone(),
            headers,
            timeout: self.config.timeout,
        }
    }

    /// What a POST's answer is; `resume` is set for a session's POST, whose stream may be resumed.
    async fn classify(
        &self,
        response: http::Response<hyper::body::Incoming>,
        resume: Option<Resume>,
    ) -> Result<Reply, UpstreamError> {
        let in_session = resume.is_some();
        let status = response.status();
        if status == StatusCode::ACCEPTED {
            return Ok(Reply::Accepted);
        }
        if status == StatusCode::NOT_FOUND && in_session {
            return Err(UpstreamError::SessionExpired {
                target: self.name().into(),
            });
        }
        if status.is_success() && is_event_stream(response.headers()) {
            let stream = MessageStream::new(self.name(), response.into_body(), &self.budget);
            return Ok(Reply::Stream(match resume {
                Some(resume) => stream.resuming(resume),
                None => stream,
            }));
        }
        let mut hold = self.budget.hold();
        let bytes = match read_body(response.into_body(), MAX_MESSAGE_BYTES, &mut hold, 2).await {
            Ok(bytes) => bytes,
            Err(ReadError::TooLarge { limit }) => {
                return Err(UpstreamError::TooLarge {
                    target: self.name().into(),
                    limit,
                });
            }
            Err(ReadError::OverBudget(source)) => {
                return Err(UpstreamError::OverBudget {
                    target: self.name().into(),
                    source,
                });
            }
            Err(ReadError::Body(cause)) => {
                return Err(UpstreamError::unreachable(
                    self.name(),
                    "reading the answer failed",
                    Some(cause),
                ));
            }
        };
        if status.is_success() {
            if let Some(messages) = several_messages(&bytes) {
                return Ok(Reply::Stream(MessageStream::buffered(
                    self.name(),
                    messages,
                    &self.budget,
                    hold,
                )));
            }
            // Checked when it is read (the rewrite for the client parses its top level anyway).
            return Ok(if bytes.is_empty() {
                Reply::Accepted
            } else {
                Reply::Single(Received {
                    message: RawMessage::new(bytes),
                    hold,
                })
            });
        }
        // Modern targets answer errors with 4xx and a JSON-RPC body; the body is what matters.
        let message = RawMessage::new(bytes);
        if message.object().is_ok_and(|o| o.has("error")) {
            return Ok(Reply::Single(Received { message, hold }));
        }
        let bytes = message.bytes();
        Err(UpstreamError::Status {
            target: self.name().into(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        })
    }

    /// A request that got no answer: a failed TLS handshake, or the target out of reach.
    fn connect_failed(&self, error: hyper_util::client::legacy::Error) -> UpstreamError {
        if is_tls_failure(&error) {
            return UpstreamError::TlsHandshake {
                target: self.name().into(),
                source: Box::new(error),
            };
        }
        UpstreamError::unreachable(self.name(), "the request failed", Some(Box::new(error)))
    }

    fn timeout(&self) -> UpstreamError {
        UpstreamError::Timeout {
            target: self.name().into(),
            after: self.config.timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_header;

    fn host_of(url: &str) -> String {
        let url: http::Uri = url.parse().expect("a valid URL");
        host_header(&url).expect("a host").to_str().expect("text").to_owned()
    }

    #[test]
    fn host_header_leaves_out_only_the_schemes_default_port() {
        assert_eq!(host_of("http://mcp.tools.svc:80/mcp"), "mcp.tools.svc");
        assert_eq!(host_of("http://127.0.0.1:8080/mcp"), "127.0.0.1:8080");
        assert_eq!(host_of("https://mcp.tools.svc/mcp"), "mcp.tools.svc");
        assert_eq!(host_of("https://mcp.tools.svc:443/mcp"), "mcp.tools.svc");
        assert_eq!(host_of("https://mcp.tools.svc:80/mcp"), "mcp.tools.svc:80");
        assert_eq!(host_of("http://[::1]:9000/mcp"), "[::1]:9000");
    }
}
