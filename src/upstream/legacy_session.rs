//! A legacy (session-era) connection to one target: `initialize`, the session header, and transparent re-initialization.

use crate::identity::Acting;
use crate::protocol::{LEGACY_VERSIONS, jsonrpc, method};
use crate::telemetry::TraceContext;
use crate::upstream::error::UpstreamError;
use crate::upstream::final_response;
use crate::upstream::link::{Link, Outbound, Payload};
use crate::upstream::reply::{MessageStream, Reply};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::RwLock;

/// An upstream session: what was negotiated, and a generation that grows with each re-initialization.
#[derive(Debug, Clone)]
struct Negotiated {
    session_id: Option<String>,
    protocol_version: String,
    generation: u64,
}

/// One session with a legacy target.
pub struct LegacySession {
    target: Arc<Link>,
    initialize_params: Value,
    negotiated: RwLock<Negotiated>,
    closed: AtomicBool,
    acting: Option<Arc<Acting>>,
}

impl LegacySession {
    /// Opens a session with `initialize` (using the downstream client's params) and `notifications/initialized`,
    /// the whole handshake under the target's deadline. The session's own requests (handshake, GET
    /// stream, DELETE) are made for `acting`, the caller it serves (`None`: the pod itself).
    pub async fn connect(
        target: Arc<Link>,
        initialize_params: Value,
        acting: Option<Arc<Acting>>,
    ) -> Result<Arc<Self>, UpstreamError> {
        let negotiated = target
            .deadline(initialize(&target, &initialize_params, 0, acting.as_deref()))
            .await?;
        let session = Arc::new(Self {
            target,
            initialize_params,
            negotiated: RwLock::new(negotiated),
            closed: AtomicBool::new(false),
            acting,
        });
        Ok(session)
    }

    /// The link to the target behind the session.
    pub fn target(&self) -> &Arc<Link> {
        &self.target
    }

    /// Sends one message in the session; a 404 (the target forgot the session, e.g. it restarted)
    /// re-initializes and retries once. The retry is safe for every method: a 404 means the target
    /// rejected the request before acting on it. `acting` is the caller of this one message (on the
    /// shared session it differs from message to message); `None` uses the session's own.
    pub async fn send(
        &self,
        message: &Payload,
        trace: Option<&TraceContext>,
        acting: Option<&Acting>,
    ) -> Result<Reply, UpstreamError> {
        let acting = acting.or(self.acting.as_deref());
        let current = self.negotiated.read().await.clone();
        match self.send_in(&current, message, trace, acting).await {
            Err(UpstreamError::SessionExpired { .. }) => {
                // Renewing is rare; boxed, its handshake does not enlarge the future of every send.
                let renewed = Box::pin(self.renew(current.generation)).await?;
                Box::pin(self.send_in(&renewed, message, trace, acting)).await
            }
            other => other,
        }
    }

    async fn send_in(
        &self,
        negotiated: &Negotiated,
        message: &Payload,
        trace: Option<&TraceContext>,
        acting: Option<&Acting>,
    ) -> Result<Reply, UpstreamError> {
        let out = Outbound {
            protocol_version: Some(&negotiated.protocol_version),
            session_id: negotiated.session_id.as_deref(),
            method_headers: false,
            trace,
            acting,
            params: &[],
        };
        self.target.post_payload(message, &out).await.map(|(reply, _)| reply)
    }

    /// Re-initializes unless another task already did since `seen_generation`. The write lock is held
    /// across the handshake on purpose: requests of this one session must wait for its new id, and the
    /// handshake is bounded by the target's deadline.
    async fn renew(&self, seen_generation: u64) -> Result<Negotiated, UpstreamError> {
        let mut negotiated = self.negotiated.write().await;
        if negotiated.generation == seen_generation {
            tracing::info!(
                target_name = self.target.name(),
                "upstream session expired; re-initializing"
            );
            *negotiated = self
                .target
                .deadline(initialize(
                    &self.target,
                    &self.initialize_params,
                    seen_generation + 1,
                    self.acting.as_deref(),
                ))
                .await?;
        }
        Ok(negotiated.clone())
    }

    /// Opens the session's GET stream for server-initiated messages, resuming after `resume_from` when
    /// given; re-initializes once on 404 (a new session starts its stream afresh).
    pub async fn open_stream(&self, resume_from: Option<&str>) -> Result<Option<MessageStream>, UpstreamError> {
        let current = self.negotiated.read().await.clone();
        match self.open_stream_in(&current, resume_from).await {
            Err(UpstreamError::SessionExpired { .. }) => {
                let renewed = Box::pin(self.renew(current.generation)).await?;
                Box::pin(self.open_stream_in(&renewed, None)).await
            }
            other => other,
        }
    }

    async fn open_stream_in(
        &self,
        negotiated: &Negotiated,
        resume_from: Option<&str>,
    ) -> Result<Option<MessageStream>, UpstreamError> {
        let out = Outbound {
            protocol_version: Some(&negotiated.protocol_version),
            session_id: negotiated.session_id.as_deref(),
            acting: self.acting.as_deref(),
            ..Default::default()
        };
        self.target.open_stream(&out, resume_from).await
    }

    /// Ends the session with DELETE (once; later calls do nothing).
    pub async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let negotiated = self.negotiated.read().await.clone();
        if negotiated.session_id.is_some() {
            let out = Outbound {
                protocol_version: Some(&negotiated.protocol_version),
                session_id: negotiated.session_id.as_deref(),
                acting: self.acting.as_deref(),
                ..Default::default()
            };
            self.target.delete_session(&out).await;
        }
    }
}

async fn initialize(
    target: &Link,
    params: &Value,
    generation: u64,
    acting: Option<&Acting>,
) -> Result<Negotiated, UpstreamError> {
    let id = target.next_request_id();
    let request = json!({ "jsonrpc": "2.0", "id": id, "method": method::INITIALIZE, "params": params });
    // No MCP-Protocol-Version on initialize: the header belongs to the requests after it, and dual-era
    // servers send any POST that carries it to their 2026-07-28 handler, where initialize does not exist.
    let first = Outbound {
        acting,
        ..Default::default()
    };
    let (reply, session_id) = target.post_with_session_id(&request, &first).await?;
    let response = final_response(reply, &id, target.name()).await?;
    if let Some((code, message)) = jsonrpc::error_of(&response) {
        return Err(UpstreamError::SessionRefused {
            target: target.name().into(),
            code,
            message: message.to_owned(),
        });
    }
    target.set_announced(response.pointer("/result"));
    let protocol_version = response
        .pointer("/result/protocolVersion")
        .and_then(Value::as_str)
        .filter(|v| LEGACY_VERSIONS.contains(v))
        .ok_or_else(|| UpstreamError::Garbage {
            target: target.name().into(),
            reason: "initialize result has no supported protocolVersion".into(),
        })?
        .to_owned();
    let negotiated = Negotiated {
        session_id,
        protocol_version,
        generation,
    };
    let initialized = json!({ "jsonrpc": "2.0", "method": method::INITIALIZED });
    let out = Outbound {
        protocol_version: Some(&negotiated.protocol_version),
        session_id: negotiated.session_id.as_deref(),
        acting,
        ..Default::default()
    };
    target.post(&initialized, &out).await?;
    Ok(negotiated)
}
