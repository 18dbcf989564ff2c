//! A way to send messages to one target in the right era, on behalf of one kind of client.

use crate::protocol::{ClientContext, Era, MODERN_VERSION};
use crate::route::adapt::{add_modern_meta, strip_modern_meta};
use crate::telemetry::TraceContext;
use crate::upstream::link::Outbound;
use crate::upstream::{LegacySession, Link, Reply, Target, UpstreamError};
use serde_json::Value;
use std::sync::Arc;

/// Background sends (notifications, answers to a target's requests) under way to one target at most.
pub const MAX_DETACHED: usize = 64;

/// A route to one target in its era.
#[derive(Clone)]
pub enum Channel {
    /// A session with a target that speaks the session protocol.
    Legacy(Arc<LegacySession>),
    /// Self-contained requests to a modern target.
    Modern {
        /// The target.
        target: Arc<Target>,
        /// Whose `_meta` to add.
        context: Arc<ClientContext>,
    },
}

impl Channel {
    /// Opens a channel. A session-era client (`dedicated`) gets its own upstream session whenever the
    /// target speaks the session protocol, so server requests and subscriptions reach it; others
    /// use stateless requests, or the target's shared session when it speaks nothing else.
    pub async fn open(
        target: &Arc<Target>,
        context: &Arc<ClientContext>,
        dedicated: bool,
    ) -> Result<Self, UpstreamError> {
        if target.retired().is_cancelled() {
            return Err(UpstreamError::Retired {
                target: target.name().into(),
            });
        }
        let dialects = target.dialects().await?;
        if dedicated && dialects.legacy {
            return Ok(Self::Legacy(target.connect_session(context.initialize_params()).await?));
        }
        match dialects.preferred() {
            Era::Modern => Ok(Self::Modern {
                target: target.clone(),
                context: context.clone(),
            }),
            Era::Legacy => Ok(Self::Legacy(target.control_session().await?)),
        }
    }

    /// The link to the target this channel reaches.
    pub fn target(&self) -> &Arc<Link> {
        match self {
            Self::Legacy(session) => session.target(),
            Self::Modern { target, .. } => target.link(),
        }
    }

    /// The era of the target.
    pub fn era(&self) -> Era {
        match self {
            Self::Legacy(_) => Era::Legacy,
            Self::Modern { .. } => Era::Modern,
        }
    }

    /// Sends one message, translating its `_meta` to the target's era. The exchange up to the reply's
    /// headers (and a JSON body) is bounded by the target's deadline; a stream is the caller's to bound.
    pub async fn send(&self, mut message: Value, trace: Option<&TraceContext>) -> Result<Reply, UpstreamError> {
        let is_call = message.get("method").is_some();
        match self {
            Self::Legacy(session) => {
                if is_call {
                    strip_modern_meta(&mut message);
                }
                session.send(&message, trace).await
            }
            Self::Modern { target, context } => {
                if is_call {
                    add_modern_meta(&mut message, context);
                }
                let out = Outbound {
                    protocol_version: Some(MODERN_VERSION),
                    method_headers: is_call,
                    trace,
                    ..Default::default()
                };
                target.post(&message, &out).await
            }
        }
    }

    /// Sends a notification or a response in the background, bounded by the target's deadline, so the
    /// client that triggered it never waits on the target. At most [`MAX_DETACHED`] such sends are under
    /// way per target; past that the message is dropped with a log line (a target that slow would not
    /// take it in time anyway).
    pub fn send_detached(&self, message: Value, what: &'static str) {
        let Some(slot) = self.target().detached_slot(MAX_DETACHED) else {
            tracing::warn!(
                target_name = self.target().name(),
                what,
                "too many messages already on their way to the target; dropped"
            );
            return;
        };
        let channel = self.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(error) = channel.send(message, None).await {
                tracing::debug!(target_name = channel.target().name(), %error, what, "not delivered to the target");
            }
        });
    }
}
