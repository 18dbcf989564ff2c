//! A way to send messages to one target in the right era, on behalf of one kind of client: the channel
//! itself, how a request is written for the target's era and its answer for the client's, the task ids a
//! client sees, and the GET stream of a session opened for one call.

mod call_get_stream;
mod request;
mod response;
mod task_id;

pub use call_get_stream::CallGetStream;
pub use request::{MetaFor, Outgoing, Rewrite, strip_modern_meta};
#[cfg(test)]
pub use request::{add_modern_meta, write_request};
pub use response::{AdaptError, rewrite_response};
pub use task_id::{client_task_id, split_client_task_id};

use crate::identity::Acting;
use crate::protocol::{ClientContext, Era, MODERN_VERSION};
use crate::telemetry::TraceContext;
use crate::upstream::link::Outbound;
use crate::upstream::{LegacySession, Link, Reply, Target, UpstreamError};
use http::{HeaderName, HeaderValue};
use serde_json::Value;
use std::sync::Arc;

/// Background sends (notifications, answers to a target's requests) under way to one target at most.
pub const MAX_DETACHED: usize = 64;

/// Whether a channel to a target that speaks the session protocol gets an upstream session of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// A session of the channel's own, so the target's requests and notifications reach one client (a
    /// session-era client's channel).
    OwnSession,
    /// Stateless requests where the target takes them, else the target's session shared by the pod.
    Shared,
}

/// How a channel reaches its target.
#[derive(Clone)]
pub enum Way {
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

/// A route to one target in its era, on behalf of one caller (or of the pod, for background work).
#[derive(Clone)]
pub struct Channel {
    way: Way,
    acting: Option<Arc<Acting>>,
}

impl Channel {
    /// Opens a channel. With [`Sharing::OwnSession`] (a session-era client) it is an upstream session of its
    /// own whenever the target speaks the session protocol, so server requests and subscriptions reach the
    /// client; otherwise stateless requests, or the target's shared session when it speaks nothing else. What is sent
    /// is sent for `acting` (a target with a token exchange gets a token on their behalf).
    pub async fn open(
        target: &Arc<Target>,
        context: &Arc<ClientContext>,
        sharing: Sharing,
        acting: Option<Arc<Acting>>,
    ) -> Result<Self, UpstreamError> {
        if target.retired().is_cancelled() {
            return Err(UpstreamError::Retired {
                target: target.name().into(),
            });
        }
        let dialects = target.dialects().await?;
        let way = if sharing == Sharing::OwnSession && dialects.legacy {
            Way::Legacy(
                target
                    .connect_session(context.initialize_params(), acting.clone())
                    .await?,
            )
        } else {
            match dialects.preferred() {
                Era::Modern => Way::Modern {
                    target: target.clone(),
                    context: context.clone(),
                },
                Era::Legacy => Way::Legacy(target.control_session().await?),
            }
        };
        Ok(Self { way, acting })
    }

    /// Opens the target's shared session, whatever else it speaks: how mcplex reads what a target of both
    /// eras offers its session-era clients.
    pub async fn session_era(target: &Arc<Target>) -> Result<Self, UpstreamError> {
        Ok(Self {
            way: Way::Legacy(target.control_session().await?),
            acting: None,
        })
    }

    /// Opens a channel for one call of a 2026-07-28 client that can answer requests: a modern target is
    /// reached as usual, a session-era one through a session of the call's own, opened with the client's
    /// capabilities (so the target may ask, and whatever its session sends belongs to this call). True
    /// when such a session was opened; the caller ends it.
    pub async fn open_for_call(
        target: &Arc<Target>,
        context: &Arc<ClientContext>,
        acting: Option<Arc<Acting>>,
    ) -> Result<(Self, bool), UpstreamError> {
        if target.retired().is_cancelled() {
            return Err(UpstreamError::Retired {
                target: target.name().into(),
            });
        }
        if target.dialects().await?.preferred() == Era::Modern {
            return Ok((Self::open(target, context, Sharing::Shared, acting).await?, false));
        }
        let session = target
            .connect_session(context.initialize_params(), acting.clone())
            .await?;
        Ok((
            Self {
                way: Way::Legacy(session),
                acting,
            },
            true,
        ))
    }

    /// The upstream session, when the target is reached through one.
    pub fn legacy_session(&self) -> Option<&Arc<LegacySession>> {
        match &self.way {
            Way::Legacy(session) => Some(session),
            Way::Modern { .. } => None,
        }
    }

    /// The link to the target this channel reaches.
    pub fn link(&self) -> &Arc<Link> {
        match &self.way {
            Way::Legacy(session) => session.target(),
            Way::Modern { target, .. } => target.link(),
        }
    }

    /// The era of the target.
    pub fn era(&self) -> Era {
        match &self.way {
            Way::Legacy(_) => Era::Legacy,
            Way::Modern { .. } => Era::Modern,
        }
    }

    /// Sends one message, translating its `_meta` to the target's era. The exchange up to the reply's
    /// headers (and a JSON body) is bounded by the target's deadline; a stream is the caller's to bound.
    pub async fn send(&self, message: Value, trace: Option<&TraceContext>) -> Result<Reply, UpstreamError> {
        self.send_call(Outgoing::Tree(message), trace, &[]).await
    }

    /// Sends a call with the `Mcp-Param-*` headers its tool declares (only 2026-07-28 targets get them).
    /// A relayed client request is written once, for this target's era, from its text.
    pub async fn send_call(
        &self,
        message: Outgoing,
        trace: Option<&TraceContext>,
        params: &[(HeaderName, HeaderValue)],
    ) -> Result<Reply, UpstreamError> {
        let is_call = message.has_method();
        let acting = self.acting.as_deref();
        match &self.way {
            Way::Legacy(session) => {
                let payload = message.into_payload(trace, MetaFor::Legacy);
                session.send(&payload, trace, acting).await
            }
            Way::Modern { target, context } => {
                let payload = message.into_payload(trace, MetaFor::Modern(context));
                let out = Outbound {
                    protocol_version: Some(MODERN_VERSION),
                    method_headers: is_call,
                    trace,
                    acting,
                    params,
                    ..Default::default()
                };
                target.post_payload(&payload, &out).await.map(|(reply, _)| reply)
            }
        }
    }

    /// Sends a notification or a response in the background, bounded by the target's deadline, so the
    /// client that triggered it never waits on the target. At most [`MAX_DETACHED`] such sends are under
    /// way per target; past that the message is dropped with a log line (a target that slow would not
    /// take it in time anyway).
    pub fn send_detached(&self, message: Value, what: &'static str) {
        let Some(slot) = self.link().detached_slot(MAX_DETACHED) else {
            tracing::warn!(
                target_name = self.link().name(),
                what,
                "too many messages already on their way to the target; dropped"
            );
            return;
        };
        let channel = self.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(error) = channel.send(message, None).await {
                tracing::debug!(target_name = channel.link().name(), %error, what, "not delivered to the target");
            }
        });
    }
}
