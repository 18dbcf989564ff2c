//! `mcplex serve --upstream URL`: the server end in front of an HTTP MCP server in the same pod, for servers
//! that speak Streamable HTTP but check nobody. Each request is checked (callers above, in `server_end`;
//! policy and audit here, through the same [`Checks`] as for stdio servers) and passed on with its answer
//! streamed back as it comes. The server learns who calls in `params._meta["dev.mcplex/caller"]` and, when
//! the platform names them, in headers; what a client sends under those names is dropped, and so is its
//! `Authorization`, which is never passed on. A session the server opens belongs to the caller that opened it.

mod answer;

use crate::child::front::read_body;
use crate::child::metrics::ServeMetrics;
use crate::child::{Accounting, Caller, Checks};
use crate::downstream::respond::{self, Body};
use crate::net::chain::error_chain;
use crate::net::client::{HttpClient, build_client};
use crate::net::tls::TlsError;
use crate::protocol::header::MCP_SESSION_ID;
use crate::protocol::{ENDPOINT_PATH, jsonrpc, method};
use crate::sync::lock;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::Value;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use answer::AnswerWatch;

/// Headers that belong to one connection (RFC 9110 §7.6.1) or to the client's own credentials, never
/// passed on in either direction.
const NOT_PASSED_ON: [HeaderName; 9] = [
    header::AUTHORIZATION,
    header::CONNECTION,
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// The bounds of the front.
#[derive(Debug, Clone, Copy)]
pub struct HttpFrontLimits {
    /// Longest wait for the server's answer to begin.
    pub call_timeout: Duration,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Sessions bound to their callers at once; `initialize` beyond that is refused.
    pub max_sessions: usize,
}

/// A header the server gets with a field of the caller (`sub`, `act`, `serviceAccount`, `namespace`).
#[derive(Debug, Clone)]
pub struct CallerHeader {
    /// The field of `_meta["dev.mcplex/caller"]`.
    pub field: String,
    /// The header's name.
    pub name: HeaderName,
}

/// The front of one HTTP MCP server.
pub struct HttpFront {
    upstream: Uri,
    client: HttpClient,
    limits: HttpFrontLimits,
    accounting: Accounting,
    caller_headers: Vec<CallerHeader>,
    owners: Mutex<HashMap<String, String>>,
}

impl HttpFront {
    /// A front for the server at `upstream`.
    pub fn new(
        upstream: Uri,
        limits: HttpFrontLimits,
        checks: Option<Arc<dyn Checks>>,
        caller_headers: Vec<CallerHeader>,
    ) -> Result<Arc<Self>, TlsError> {
        let https = upstream.scheme() == Some(&http::uri::Scheme::HTTPS);
        Ok(Arc::new(Self {
            client: build_client(None, https)?,
            upstream,
            limits,
            accounting: Accounting::new(checks),
            caller_headers,
            owners: Mutex::default(),
        }))
    }

    /// Its counters, for `/metrics`.
    pub fn metrics(&self) -> &ServeMetrics {
        self.accounting.metrics()
    }

    /// Answers one HTTP request of `caller` (`None` when nothing checks callers).
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>, caller: Option<Caller>) -> Response<Body> {
        if request.uri().path() != ENDPOINT_PATH {
            return respond::empty(StatusCode::NOT_FOUND);
        }
        let (parts, body) = request.into_parts();
        let session = parts
            .headers
            .get(MCP_SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let (Some(session), Some(caller)) = (&session, &caller) {
            let refusal = match lock(&self.owners).get(session) {
                Some(owner) if *owner == caller.key => None,
                Some(_) => Some((
                    StatusCode::FORBIDDEN,
                    "the session belongs to another caller; open a session of your own",
                )),
                None => Some((StatusCode::NOT_FOUND, "no such session: send initialize again")),
            };
            if let Some((status, text)) = refusal {
                return respond::error_with_status(status, None, jsonrpc::INVALID_REQUEST, text);
            }
        }
        let bytes = match read_body(body, self.limits.max_body).await {
            Ok(bytes) => bytes,
            Err(refusal) => return *refusal,
        };
        let mut message = None;
        if parts.method == Method::POST {
            // Only one message, read here, reaches the server: a batch or anything unreadable could carry a
            // call past the policy.
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(value @ Value::Object(_)) => message = Some(value),
                _ => {
                    let text = "the body must be one JSON-RPC message (an object)";
                    return respond::error_with_status(StatusCode::BAD_REQUEST, None, jsonrpc::INVALID_REQUEST, text);
                }
            }
        }
        let id = message.as_ref().and_then(|m| m.get("id").cloned());
        let is_initialize = message.as_ref().is_some_and(|m| m["method"] == method::INITIALIZE);
        if is_initialize && caller.is_some() && lock(&self.owners).len() >= self.limits.max_sessions {
            let text = format!(
                "mcplex serve binds at most {} sessions to their callers (--max-sessions)",
                self.limits.max_sessions
            );
            return respond::error_with_status(StatusCode::SERVICE_UNAVAILABLE, id, jsonrpc::TARGET_UNAVAILABLE, &text);
        }
        let is_request = message
            .as_ref()
            .is_some_and(|m| m.get("method").is_some() && m.get("id").is_some());
        if let Some(message) = &message
            && let Err(reason) = self
                .accounting
                .admit(caller.as_ref(), session.as_deref().unwrap_or("-"), message)
        {
            return respond::error_with_status(StatusCode::OK, id, jsonrpc::DENIED_BY_POLICY, &reason);
        }
        let body = match (&mut message, &caller) {
            (Some(message), Some(caller)) if message.get("method").is_some() => {
                caller.stamp(message);
                Bytes::from(message.to_string())
            }
            _ => bytes,
        };
        let mut outgoing = Request::new(Full::new(body));
        *outgoing.method_mut() = parts.method.clone();
        *outgoing.uri_mut() = self.upstream.clone();
        *outgoing.headers_mut() = self.headers_for_server(&parts.headers, caller.as_ref());
        let begun = Instant::now();
        let answer = tokio::time::timeout(self.limits.call_timeout, self.client.request(outgoing)).await;
        let (outcome, response) = match answer {
            Ok(Ok(response)) => {
                let outcome = if response.status().is_success() { "ok" } else { "error" };
                (outcome, Ok(response))
            }
            Ok(Err(error)) => (
                "unavailable",
                Err((
                    jsonrpc::TARGET_UNAVAILABLE,
                    format!(
                        "the server at {} cannot be reached: {}",
                        self.upstream,
                        error_chain(&error)
                    ),
                )),
            ),
            Err(_) => (
                "timeout",
                Err((
                    jsonrpc::TARGET_TIMEOUT,
                    format!(
                        "the server at {} did not answer within {:?} (--call-timeout)",
                        self.upstream, self.limits.call_timeout
                    ),
                )),
            ),
        };
        // A request the server accepted is recorded when its answer ends, with what the answer says.
        let answered = matches!(&response, Ok(r) if r.status().is_success());
        let session_name = session.as_deref().unwrap_or("-").to_owned();
        if let Some(message) = message.as_ref().filter(|_| is_request && !answered) {
            self.accounting
                .ended(caller.as_ref(), &session_name, message, outcome, begun.elapsed());
        }
        let response = match response {
            Ok(response) => response,
            Err((code, text)) => return respond::error_with_status(StatusCode::BAD_GATEWAY, id, code, &text),
        };
        self.remember_session(
            &parts.method,
            is_initialize,
            session.as_deref(),
            &response,
            caller.as_ref(),
        );
        let record = match message {
            Some(message) if is_request && answered => {
                let content_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok());
                Some(AnswerRecord {
                    watch: AnswerWatch::new(content_type),
                    front: self.clone(),
                    caller,
                    session: session_name,
                    message,
                    begun,
                    ended: None,
                })
            }
            _ => None,
        };
        relay(response, record)
    }

    /// The client's headers as the server gets them: without its credentials, connection headers and
    /// anything under the names that carry the caller, then the caller's fields under those names.
    fn headers_for_server(&self, from_client: &HeaderMap, caller: Option<&Caller>) -> HeaderMap {
        let mut headers = from_client.clone();
        for name in NOT_PASSED_ON.iter().chain(self.caller_headers.iter().map(|h| &h.name)) {
            headers.remove(name);
        }
        for wanted in &self.caller_headers {
            let field = caller.and_then(|c| c.meta.get(&wanted.field)).and_then(Value::as_str);
            if let Some(value) = field.and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(wanted.name.clone(), value);
            }
        }
        headers
    }

    /// Binds a session the server opened to its caller, and forgets one the client ended.
    fn remember_session(
        &self,
        method: &Method,
        is_initialize: bool,
        session: Option<&str>,
        response: &Response<Incoming>,
        caller: Option<&Caller>,
    ) {
        let Some(caller) = caller else { return };
        let opened = response.headers().get(MCP_SESSION_ID).and_then(|v| v.to_str().ok());
        match (is_initialize, opened) {
            (true, Some(opened)) if response.status().is_success() => {
                lock(&self.owners).insert(opened.to_owned(), caller.key.clone());
            }
            _ if *method == Method::DELETE && response.status().is_success() => {
                if let Some(session) = session {
                    lock(&self.owners).remove(session);
                }
            }
            _ if response.status() == StatusCode::NOT_FOUND => {
                // The server no longer knows the session (it restarted): neither does the front.
                if let Some(session) = session {
                    lock(&self.owners).remove(session);
                }
            }
            _ => {}
        }
    }
}

/// A request whose answer is on its way to the client: recorded, when it is dropped, with how the answer
/// ended, or with the response a stream carried before the client left (`client_gone` if none had come).
struct AnswerRecord {
    front: Arc<HttpFront>,
    caller: Option<Caller>,
    session: String,
    message: Value,
    begun: Instant,
    watch: AnswerWatch,
    ended: Option<&'static str>,
}

impl Drop for AnswerRecord {
    fn drop(&mut self) {
        let outcome = self.ended.or(self.watch.seen()).unwrap_or("client_gone");
        self.front.accounting.ended(
            self.caller.as_ref(),
            &self.session,
            &self.message,
            outcome,
            self.begun.elapsed(),
        );
    }
}

/// The server's answer for the client, its body passed on as it arrives (an SSE stream included), read
/// on the way by `record` when the request is to be recorded.
fn relay(response: Response<Incoming>, record: Option<AnswerRecord>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    for name in &NOT_PASSED_ON {
        parts.headers.remove(name);
    }
    let frames = futures_util::stream::unfold((body.into_data_stream(), record), |(mut data, mut record)| async move {
        match data.next().await {
            Some(Ok(bytes)) => {
                if let Some(record) = &mut record {
                    record.watch.feed(&bytes);
                }
                Some((Ok::<_, Infallible>(Frame::data(bytes)), (data, record)))
            }
            Some(Err(error)) => {
                tracing::warn!(error = %error_chain(&error), "the server's answer broke off");
                if let Some(record) = &mut record {
                    record.ended = Some("unavailable");
                }
                None
            }
            None => {
                if let Some(record) = &mut record {
                    record.ended = Some(record.watch.finish());
                }
                None
            }
        }
    });
    Response::from_parts(parts, BodyExt::boxed_unsync(StreamBody::new(frames)))
}
