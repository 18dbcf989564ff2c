//! A way to send messages to one target in the right era, on behalf of one kind of client.

use crate::upstream::error::UpstreamError;
use crate::upstream::reply::Reply;
use crate::upstream::session::LegacySession;
use crate::upstream::target::{Era, Outbound, Target};
use crate::upstream::{META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, MODERN_VERSION};
use http::HeaderValue;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Who the downstream client is: carried to modern targets in `_meta`, to legacy ones in `initialize`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientContext {
    /// The client's session-era protocol version (for legacy sessions opened on its behalf).
    pub protocol_version: String,
    /// The client's `clientInfo`.
    pub client_info: Value,
    /// The client's capabilities.
    pub capabilities: Value,
}

impl ClientContext {
    /// mcplex speaking for itself.
    pub fn mcplex() -> Self {
        Self {
            protocol_version: crate::upstream::LATEST_LEGACY_VERSION.into(),
            client_info: crate::upstream::mcplex_identity(),
            capabilities: json!({}),
        }
    }

    /// `initialize` params for a legacy session opened for this client.
    pub fn initialize_params(&self) -> Value {
        json!({ "protocolVersion": self.protocol_version, "capabilities": self.capabilities, "clientInfo": self.client_info })
    }
}

/// A route to one target in its era.
#[derive(Clone)]
pub enum Channel {
    /// A session with a legacy target.
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
        let dialects = target.dialects().await?;
        if dedicated && dialects.legacy {
            return Ok(Self::Legacy(
                LegacySession::connect(target.clone(), context.initialize_params()).await?,
            ));
        }
        match dialects.preferred() {
            Era::Modern => Ok(Self::Modern {
                target: target.clone(),
                context: context.clone(),
            }),
            Era::Legacy => Ok(Self::Legacy(target.control_session().await?)),
        }
    }

    /// The target this channel reaches.
    pub fn target(&self) -> &Arc<Target> {
        match self {
            Self::Legacy(session) => session.target(),
            Self::Modern { target, .. } => target,
        }
    }

    /// The era of the target.
    pub fn era(&self) -> Era {
        match self {
            Self::Legacy(_) => Era::Legacy,
            Self::Modern { .. } => Era::Modern,
        }
    }

    /// Sends one message, translating its `_meta` to the target's era.
    pub async fn send(&self, mut message: Value, authorization: Option<&HeaderValue>) -> Result<Reply, UpstreamError> {
        let is_call = message.get("method").is_some();
        match self {
            Self::Legacy(session) => {
                if is_call {
                    strip_modern_meta(&mut message);
                }
                session.send(&message, authorization).await
            }
            Self::Modern { target, context } => {
                if is_call {
                    add_modern_meta(&mut message, context);
                }
                let out = Outbound {
                    protocol_version: Some(MODERN_VERSION),
                    method_headers: is_call,
                    authorization,
                    ..Default::default()
                };
                target.post(&message, &out).await
            }
        }
    }
}

fn meta_of(message: &mut Value) -> Option<&mut Map<String, Value>> {
    let params = message.as_object_mut()?.entry("params").or_insert_with(|| json!({}));
    params
        .as_object_mut()?
        .entry("_meta")
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

/// Adds the per-request client context a modern target requires, keeping what the client sent.
pub fn add_modern_meta(message: &mut Value, context: &ClientContext) {
    let Some(meta) = meta_of(message) else { return };
    meta.insert(META_PROTOCOL_VERSION.into(), json!(MODERN_VERSION));
    meta.entry(META_CLIENT_INFO)
        .or_insert_with(|| context.client_info.clone());
    meta.entry(META_CLIENT_CAPABILITIES)
        .or_insert_with(|| context.capabilities.clone());
}

/// Removes modern-only `_meta` keys before a message reaches a legacy target.
pub fn strip_modern_meta(message: &mut Value) {
    let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else {
        return;
    };
    meta.retain(|key, _| !key.starts_with("io.modelcontextprotocol/"));
    if meta.is_empty() {
        params.remove("_meta");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_is_added_for_modern_and_stripped_for_legacy() {
        let mut message = json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"progressToken":5}}});
        add_modern_meta(&mut message, &ClientContext::mcplex());
        assert_eq!(message["params"]["_meta"][META_PROTOCOL_VERSION], MODERN_VERSION);
        assert_eq!(message["params"]["_meta"][META_CLIENT_INFO]["name"], "mcplex");
        strip_modern_meta(&mut message);
        assert_eq!(message["params"], json!({"_meta":{"progressToken":5}}));
        let mut bare =
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{META_PROTOCOL_VERSION: "x"}}});
        strip_modern_meta(&mut bare);
        assert_eq!(bare["params"], json!({}));
    }
}
