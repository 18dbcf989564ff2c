//! The agent-facing side: the loopback MCP endpoint, session-era sessions, HTTP and SSE. No routing:
//! every message goes to `route` and its [`crate::route::Outcome`] comes back as an HTTP response.

pub mod authn;
pub mod guard;
pub mod handler;
pub mod modern;
pub mod respond;
pub mod session_store;

pub use handler::Endpoint;
