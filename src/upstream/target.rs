//! One configured target: its link, the protocol eras it speaks (probed once), the legacy session
//! shared by catalog fetches and modern clients, and every legacy session opened on it so retirement can
//! end them. The era probe and the shared session are computed once behind a [`OnceCell`]: callers for
//! the same target share one attempt, other targets never wait.

use crate::budget::Budget;
use crate::config::TargetConfig;
use crate::config::schema::ProtocolChoice;
use crate::identity::Acting;
use crate::metrics::Metrics;
use crate::protocol::{self, Era, MODERN_VERSION, jsonrpc, method};
use crate::sync::lock;
use crate::upstream::error::UpstreamError;
use crate::upstream::legacy_session::LegacySession;
use crate::upstream::link::{Link, Outbound};
use crate::upstream::reply::Reply;
use serde_json::{Value, json};
use std::ops::Deref;
use std::sync::{Arc, Mutex, RwLock, Weak};
use tokio::sync::OnceCell;

/// Which eras a target speaks (a target may speak both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialects {
    /// Answers 2026-07-28 requests.
    pub modern: bool,
    /// Accepts `initialize` and sessions.
    pub legacy: bool,
}

impl Dialects {
    /// The era mcplex uses for its own requests: modern when possible (stateless, cheaper).
    pub fn preferred(self) -> Era {
        if self.modern { Era::Modern } else { Era::Legacy }
    }
}

/// A configured upstream MCP server.
pub struct Target {
    link: Arc<Link>,
    dialects: RwLock<Arc<OnceCell<Dialects>>>,
    control: RwLock<Arc<OnceCell<Arc<LegacySession>>>>,
    sessions: Mutex<Vec<Weak<LegacySession>>>,
}

impl Deref for Target {
    type Target = Link;

    fn deref(&self) -> &Link {
        &self.link
    }
}

impl Target {
    /// Creates the target and its connection pool (no connection is opened yet); answers it sends take
    /// their share of `budget` while mcplex holds them.
    pub fn new(config: TargetConfig, budget: Arc<Budget>, metrics: Arc<Metrics>) -> Result<Arc<Self>, UpstreamError> {
        let dialects = OnceCell::new_with(pinned_dialects(config.protocol));
        Ok(Arc::new(Self {
            link: Link::new(config, budget, metrics)?,
            dialects: RwLock::new(Arc::new(dialects)),
            control: RwLock::new(Arc::new(OnceCell::new())),
            sessions: Mutex::new(Vec::new()),
        }))
    }

    /// The link every channel to this target uses.
    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// Opens a legacy session (for one client, or the shared one) and remembers it so retirement can end it.
    pub async fn connect_session(
        &self,
        initialize_params: Value,
        acting: Option<Arc<Acting>>,
    ) -> Result<Arc<LegacySession>, UpstreamError> {
        // A handshake is rare next to the calls it serves; its large future lives on the heap.
        let session = Box::pin(LegacySession::connect(self.link.clone(), initialize_params, acting)).await?;
        let mut sessions = lock(&self.sessions);
        sessions.retain(|s| s.strong_count() > 0);
        sessions.push(Arc::downgrade(&session));
        Ok(session)
    }

    /// Takes the target out of service: background work stops at once, in-flight exchanges get up to the
    /// target's timeout to finish, then every upstream session opened on it is ended with DELETE.
    pub async fn retire(&self) {
        self.link.drain().await;
        let sessions: Vec<Arc<LegacySession>> = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .filter_map(|s| s.upgrade())
            .collect();
        futures_util::future::join_all(sessions.iter().map(|s| s.close())).await;
        tracing::info!(
            target_name = self.name(),
            sessions = sessions.len(),
            "target retired; its upstream sessions are ended"
        );
    }

    /// The eras the target speaks: pinned by config, or probed once with `server/discover` (under the
    /// target's deadline) and remembered; concurrent callers share one probe.
    pub async fn dialects(&self) -> Result<Dialects, UpstreamError> {
        if let Some(known) = self.known_dialects() {
            return Ok(known);
        }
        let cell = self.dialects.read().unwrap_or_else(|p| p.into_inner()).clone();
        // The probe runs once per target; its large future lives on the heap, not in every call's.
        let probed = Box::pin(cell.get_or_try_init(|| async {
            let probed = self.deadline(self.probe()).await?;
            tracing::info!(
                target_name = self.name(),
                modern = probed.modern,
                legacy = probed.legacy,
                "target protocol eras detected"
            );
            Ok::<_, UpstreamError>(probed)
        }))
        .await?;
        Ok(*probed)
    }

    async fn probe(&self) -> Result<Dialects, UpstreamError> {
        let discover = json!({
            "jsonrpc": "2.0",
            "id": self.next_request_id(),
            "method": method::DISCOVER,
            "params": { "_meta": protocol::mcplex_client_meta() },
        });
        let out = Outbound {
            protocol_version: Some(MODERN_VERSION),
            method_headers: true,
            ..Default::default()
        };
        let answer = match self.post(&discover, &out).await {
            Ok(Reply::Single(received)) => received.message.value().ok(),
            Ok(Reply::Stream(mut stream)) => match stream.next().await {
                Some(Ok(received)) => received.message.value().ok(),
                _ => None,
            },
            Ok(Reply::Accepted) => None,
            Err(UpstreamError::Status { status, .. }) if (400..500).contains(&status) => None,
            Err(e) => return Err(e),
        };
        let legacy_only = Dialects {
            modern: false,
            legacy: true,
        };
        let Some(answer) = answer else { return Ok(legacy_only) };
        if let Some(versions) = answer.pointer("/result/supportedVersions").and_then(Value::as_array) {
            self.set_announced(answer.pointer("/result"));
            let versions: Vec<&str> = versions.iter().filter_map(Value::as_str).collect();
            let modern = versions.iter().any(|v| *v >= MODERN_VERSION);
            let mut legacy = versions.iter().any(|v| protocol::LEGACY_VERSIONS.contains(v));
            if modern && !legacy {
                // A 2026-07-28 discover result lists only what that handler speaks; a dual-era server may
                // still take sessions. One handshake (ended at once) tells.
                legacy = self.accepts_sessions().await;
            }
            return Ok(Dialects { modern, legacy });
        }
        // A modern-only rejection still proves the target speaks 2026-07-28.
        let modern_rejection = jsonrpc::error_of(&answer)
            .is_some_and(|(code, _)| code == jsonrpc::HEADER_MISMATCH || code == jsonrpc::MISSING_CLIENT_CAPABILITY);
        Ok(if modern_rejection {
            Dialects {
                modern: true,
                legacy: false,
            }
        } else {
            legacy_only
        })
    }

    /// True when the target completes a session-era handshake; the session is ended right away.
    async fn accepts_sessions(&self) -> bool {
        match LegacySession::connect(
            self.link.clone(),
            protocol::ClientContext::mcplex().initialize_params(),
            None,
        )
        .await
        {
            Ok(session) => {
                session.close().await;
                true
            }
            Err(error) => {
                tracing::debug!(target_name = self.name(), %error, "target takes no sessions");
                false
            }
        }
    }

    /// The eras the target speaks, when known (probed or pinned).
    pub fn known_dialects(&self) -> Option<Dialects> {
        self.dialects.read().unwrap_or_else(|p| p.into_inner()).get().copied()
    }

    /// Forgets the probed eras so the next use probes again (after the target restarted).
    pub fn forget_era(&self) {
        if self.config.protocol == ProtocolChoice::Auto {
            *self.dialects.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(OnceCell::new());
        }
    }

    /// The session shared by catalog fetches and modern clients when this target is legacy; opened once
    /// (concurrent callers share the attempt) and opened again after a failure.
    pub async fn control_session(self: &Arc<Self>) -> Result<Arc<LegacySession>, UpstreamError> {
        let cell = self.control.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(session) = cell.get() {
            return Ok(session.clone());
        }
        let session =
            Box::pin(cell.get_or_try_init(|| {
                self.connect_session(protocol::ClientContext::catalog().initialize_params(), None)
            }))
            .await?;
        Ok(session.clone())
    }
}

fn pinned_dialects(choice: ProtocolChoice) -> Option<Dialects> {
    match choice {
        ProtocolChoice::Modern => Some(Dialects {
            modern: true,
            legacy: false,
        }),
        ProtocolChoice::Legacy => Some(Dialects {
            modern: false,
            legacy: true,
        }),
        ProtocolChoice::Auto => None,
    }
}
