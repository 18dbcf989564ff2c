//! `mcplex serve`: the server end. Callers are checked with the sidecar's own identity code (bearer JWTs
//! per `inbound.jwt`: 401 with a challenge and the protected resource metadata, as for the sidecar's own
//! endpoint; TLS client certificates are checked below, by the TLS config) before a request reaches the
//! process transport (`child/`), which learns who calls but never sees the token.

use crate::audit::{AuditCaller, AuditEntry, AuditLog};
use crate::catalog::ItemKind;
use crate::child::{Caller, Checks, StdioFront};
use crate::config::inbound::InboundJwt;
use crate::downstream::authn::{Authenticator, is_metadata_path, metadata_response, refusal_response};
use crate::downstream::respond::Body;
use crate::http_front::HttpFront;
use crate::identity::Principal;
use crate::policy::{self, Action, Policy, Query};
use crate::protocol::method;
use http::{Request, Response};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long calls under way may take to finish when `mcplex serve` stops.
pub const DRAIN: Duration = Duration::from_secs(5);

/// What the checks are in front of: a stdio server's processes, or an HTTP server in the same pod.
#[derive(Clone)]
pub enum Front {
    /// `mcplex serve -- COMMAND`.
    Stdio(Arc<StdioFront>),
    /// `mcplex serve --upstream URL`.
    Http(Arc<HttpFront>),
}

impl From<Arc<StdioFront>> for Front {
    fn from(front: Arc<StdioFront>) -> Self {
        Self::Stdio(front)
    }
}

impl From<Arc<HttpFront>> for Front {
    fn from(front: Arc<HttpFront>) -> Self {
        Self::Http(front)
    }
}

impl Front {
    async fn handle(self, request: Request<Incoming>, caller: Option<Caller>) -> Response<Body> {
        match self {
            Self::Stdio(front) => front.handle(request, caller).await,
            Self::Http(front) => front.handle(request, caller).await,
        }
    }

    /// Its counters.
    pub fn metrics(&self) -> &crate::child::metrics::ServeMetrics {
        match self {
            Self::Stdio(front) => front.metrics(),
            Self::Http(front) => front.metrics(),
        }
    }

    async fn shutdown(&self, drain: Duration) {
        // An HTTP server's sessions are its own; only server processes are mcplex's to end.
        if let Self::Stdio(front) = self {
            front.shutdown(drain).await;
        }
    }
}

/// The checks in front of one served server.
pub struct ServerEnd {
    front: Front,
    inbound: Option<InboundJwt>,
    authenticator: Authenticator,
}

impl ServerEnd {
    /// Checks callers with `inbound` (none when it is `None`) before `front`.
    pub fn new(front: impl Into<Front>, inbound: Option<InboundJwt>) -> Arc<Self> {
        Arc::new(Self {
            front: front.into(),
            inbound,
            authenticator: Authenticator::default(),
        })
    }

    /// Answers one HTTP request.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let inbound = self.inbound.as_ref();
        if is_metadata_path(request.uri().path()) {
            return metadata_response(inbound, request.headers());
        }
        let caller = match self.authenticator.authenticate(inbound, request.headers()).await {
            Ok(principal) => principal.map(|p| caller_of(&p)),
            Err(refusal) => return refusal_response(&refusal, inbound, request.headers()),
        };
        self.front.clone().handle(request, caller).await
    }
}

/// The name the served server goes by in policy (`resource.target`) and in audit lines (`target`).
pub const SERVED_TARGET: &str = "server";

/// The server end's policy (Cedar, as in the sidecar: per tool, prompt or resource, by caller) and audit
/// trail (one line per call, with the caller).
pub struct PolicyAndAudit {
    /// The policy, when the config has one.
    pub policy: Option<Arc<Policy>>,
    /// Where call lines go (off when it has no sink).
    pub audit: Arc<AuditLog>,
}

/// The method of a call the checks look at (`tools/call`, `prompts/get`, `resources/read`), its item kind
/// and the item's name; `None` for every other message.
fn call_of(message: &Value) -> Option<(&'static str, ItemKind, String)> {
    let (name, kind, key) = match message["method"].as_str()? {
        method::TOOLS_CALL => (method::TOOLS_CALL, ItemKind::Tools, "name"),
        method::PROMPTS_GET => (method::PROMPTS_GET, ItemKind::Prompts, "name"),
        method::RESOURCES_READ => (method::RESOURCES_READ, ItemKind::Resources, "uri"),
        _ => return None,
    };
    Some((
        name,
        kind,
        message["params"][key].as_str().unwrap_or_default().to_owned(),
    ))
}

impl PolicyAndAudit {
    fn verdict(&self, caller: Option<&Caller>, kind: ItemKind, item: &str) -> Option<policy::Verdict> {
        let policy = self.policy.as_deref()?;
        Some(policy.decide(&Query {
            caller_key: caller.map_or([0; 32], |c| c.digest),
            subject: caller.map(|c| c.subject.as_str()),
            claims: caller.map(|c| &c.claims),
            action: Action::for_kind(kind),
            exposed: item,
            upstream: item,
            target: SERVED_TARGET,
            profile: None,
        }))
    }
}

impl Checks for PolicyAndAudit {
    fn allow(&self, caller: Option<&Caller>, message: &Value) -> Result<(), String> {
        let Some((_, kind, item)) = call_of(message) else {
            return Ok(());
        };
        match self.verdict(caller, kind, &item) {
            Some(verdict) if !verdict.allowed => Err(format!("`{item}` is denied by policy ({})", verdict.rule)),
            _ => Ok(()),
        }
    }

    fn record(&self, caller: Option<&Caller>, session: &str, message: &Value, outcome: &'static str, took: Duration) {
        if !self.audit.is_on() {
            return;
        }
        let Some((method, kind, item)) = call_of(message) else {
            return;
        };
        let verdict = self.verdict(caller, kind, &item);
        self.audit.write(AuditEntry {
            time: String::new(),
            kind: "mcplex.audit",
            caller: AuditCaller {
                subject: caller.map(|c| c.subject.clone()),
                actor: caller.and_then(|c| c.actor.clone()),
                session: Some(session.to_owned()),
                client: None,
            },
            profile: None,
            method,
            name: item,
            upstream_name: None,
            target: SERVED_TARGET.to_owned(),
            decision: if verdict.as_ref().is_none_or(|v| v.allowed) {
                "allow"
            } else {
                "deny"
            },
            rule: verdict.map_or_else(|| policy::NO_POLICY.to_owned(), |v| v.rule.to_string()),
            outcome,
            latency_ms: took.as_secs_f64() * 1e3,
            trace_id: None,
            arguments_sha256: self.audit.arguments_hash(message["params"].get("arguments")),
        });
    }
}

/// What the server learns of a caller: `sub`, `act` when someone acts for the subject, and for a
/// Kubernetes ServiceAccount token its name and namespace. A session is bound to the subject and actor,
/// not the token, which is renewed.
fn caller_of(principal: &Principal) -> Caller {
    let mut meta = Map::new();
    meta.insert("sub".into(), json!(principal.subject));
    if let Some(actor) = &principal.actor {
        meta.insert("act".into(), json!(actor));
    }
    if let Some((namespace, name)) = principal
        .subject
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        meta.insert("serviceAccount".into(), json!(name));
        meta.insert("namespace".into(), json!(namespace));
    }
    Caller {
        key: format!("{}\u{0}{}", principal.subject, principal.actor.as_deref().unwrap_or("")),
        meta: Value::Object(meta),
        subject: principal.subject.clone(),
        actor: principal.actor.clone(),
        claims: principal.claims.clone(),
        digest: principal.token_key(),
    }
}

/// Serves `end` on `listener` (over TLS with `tls`, which may require client certificates) until `stop`
/// is cancelled; then calls under way get [`DRAIN`] to finish, every session's process is ended, and this
/// returns once they are gone.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    end: Arc<ServerEnd>,
    stop: CancellationToken,
) {
    let front = end.front.clone();
    let handler = move |request| end.clone().handle(request);
    // Sessions end while the HTTP side drains: their GET streams close with their processes.
    let ending = {
        let stop = stop.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            front.shutdown(DRAIN).await;
        })
    };
    crate::serve::serve(
        listener,
        tls,
        handler,
        crate::serve::ServeLimits::default(),
        stop,
        DRAIN,
    )
    .await;
    let _ = ending.await;
}

/// Serves `/healthz` and `/metrics` (OpenMetrics) of `front` on `listener` until `stop` is cancelled.
pub async fn admin(listener: tokio::net::TcpListener, front: Front, stop: CancellationToken) {
    let handler = move |request: Request<Incoming>| {
        let front = front.clone();
        async move {
            match request.uri().path() {
                "/healthz" => crate::downstream::respond::plain(http::StatusCode::OK, "ok"),
                "/metrics" => crate::downstream::respond::with_type(
                    http::StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    front.metrics().encode(),
                ),
                _ => crate::downstream::respond::plain(http::StatusCode::NOT_FOUND, "not found: /healthz, /metrics"),
            }
        }
    };
    crate::serve::serve(
        listener,
        None,
        handler,
        crate::serve::ServeLimits::ADMIN,
        stop,
        Duration::from_secs(1),
    )
    .await;
}
