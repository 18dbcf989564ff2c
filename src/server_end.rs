//! `mcplex serve`: the server end. Callers are checked with the sidecar's own identity code (bearer JWTs
//! per `inbound.jwt`: 401 with a challenge and the protected resource metadata, as for the sidecar's own
//! endpoint; TLS client certificates are checked below, by the TLS config) before a request reaches the
//! process transport (`child/`), which learns who calls but never sees the token.

use crate::child::{Caller, StdioFront};
use crate::config::inbound::InboundJwt;
use crate::downstream::authn::{Authenticator, is_metadata_path, metadata_response, refusal_response};
use crate::downstream::respond::Body;
use crate::identity::Principal;
use http::{Request, Response};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long calls under way may take to finish when `mcplex serve` stops.
pub const DRAIN: Duration = Duration::from_secs(5);

/// The checks in front of one served command.
pub struct ServerEnd {
    front: Arc<StdioFront>,
    inbound: Option<InboundJwt>,
    authenticator: Authenticator,
}

impl ServerEnd {
    /// Checks callers with `inbound` (none when it is `None`) before `front`.
    pub fn new(front: Arc<StdioFront>, inbound: Option<InboundJwt>) -> Arc<Self> {
        Arc::new(Self {
            front,
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
