//! Talking to targets: pooled HTTP(S) clients, era detection, legacy sessions and per-era channels.

pub mod channel;
pub mod credentials;
pub mod error;
pub mod http;
pub mod reply;
pub mod session;
pub mod target;
pub mod tls;

pub use crate::mcp_headers;
pub use channel::{Channel, ClientContext};
pub use error::UpstreamError;
pub use reply::{MessageStream, Reply};
pub use session::LegacySession;
pub use target::{Era, Target};

use serde_json::{Value, json};

/// The stateless protocol revision.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The newest session-era revision, used when mcplex opens a legacy session of its own.
pub const LATEST_LEGACY_VERSION: &str = "2025-11-25";
/// Session-era revisions mcplex accepts from clients.
pub const LEGACY_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];

/// `_meta` key holding the protocol version of a modern request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key holding the client's identity.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key holding the client's capabilities.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// mcplex's own identity, used where it speaks for itself (probes, catalog fetches).
pub fn mcplex_identity() -> Value {
    json!({ "name": "mcplex", "version": env!("CARGO_PKG_VERSION") })
}

/// Request `_meta` for modern requests mcplex sends on its own behalf.
pub fn mcplex_client_meta() -> Value {
    json!({
        META_PROTOCOL_VERSION: MODERN_VERSION,
        META_CLIENT_INFO: mcplex_identity(),
        META_CLIENT_CAPABILITIES: {},
    })
}

/// `initialize` params for legacy sessions mcplex opens on its own behalf.
pub fn mcplex_initialize_params() -> Value {
    json!({ "protocolVersion": LATEST_LEGACY_VERSION, "capabilities": {}, "clientInfo": mcplex_identity() })
}

/// Reads a reply to its final response (the message whose id is `id`), skipping anything else.
pub async fn final_response(reply: Reply, id: &Value, target: &str) -> Result<Value, UpstreamError> {
    match reply {
        Reply::Single(value) => Ok(value),
        Reply::Accepted => Err(UpstreamError::Garbage {
            target: target.into(),
            reason: "a request was answered with 202 and no response".into(),
        }),
        Reply::Stream(mut stream) => {
            while let Some(message) = stream.next().await {
                let message = message?;
                if message.get("id") == Some(id) && message.get("method").is_none() {
                    return Ok(message);
                }
            }
            Err(UpstreamError::Garbage {
                target: target.into(),
                reason: "the stream ended before the response".into(),
            })
        }
    }
}
