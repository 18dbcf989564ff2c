//! The agent-facing side: the loopback MCP endpoint, sessions, dispatch and relaying.

pub mod adapt;
pub mod dispatch;
pub mod guard;
pub mod handler;
pub mod listen;
pub mod pump;
pub mod relay;
pub mod respond;
pub mod session;

pub use handler::Endpoint;
