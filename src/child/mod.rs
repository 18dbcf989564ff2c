//! The server end's child-process transport (`mcplex serve -- COMMAND`): a stdio MCP server served as a
//! Streamable HTTP endpoint of both eras: one process per session-era client session, and a pool of warm
//! processes for 2026-07-28 requests. A process that exits, hangs,
//! writes something that is not JSON-RPC on stdout or floods stderr costs only its own session: its
//! client gets a JSON-RPC error naming what happened, the log gets its exit status and last stderr lines,
//! and the next session gets a fresh process.

pub mod front;
mod listen;
pub mod metrics;
pub mod pool;
pub mod process;
pub mod session;
mod stateless;

pub use front::{Accounting, CALLER_META, Caller, Checks, FrontLimits, StdioFront, answer_outcome};
pub use process::ServerCommand;

/// What mcplex says to a server process when it speaks as the process's client itself (a pool process, a
/// listen stream's process), not on behalf of one.
mod own_client {
    use crate::protocol::{self, jsonrpc, method};
    use serde_json::{Value, json};

    /// The session-era `initialize` request, with mcplex's identity and `capabilities`.
    pub fn initialize(id: Value, capabilities: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "method": method::INITIALIZE, "params": {
            "protocolVersion": protocol::LATEST_LEGACY_VERSION,
            "capabilities": capabilities,
            "clientInfo": protocol::mcplex_identity(),
        }})
    }

    /// The notification that completes the handshake.
    pub fn initialized() -> Value {
        json!({"jsonrpc": "2.0", "method": method::INITIALIZED})
    }

    /// The answer to a request of the process that no client can answer now: a ping is answered, anything
    /// else refused, saying `why`; `None` for what is not a request.
    pub fn unanswerable(request: &Value, why: &str) -> Option<Value> {
        request.get("method")?;
        let id = request.get("id")?.clone();
        Some(if request["method"] == method::PING {
            jsonrpc::result(id, json!({}))
        } else {
            jsonrpc::error(Some(id), jsonrpc::METHOD_NOT_FOUND, why)
        })
    }
}

/// The bounds of one server process.
pub mod limits {
    use std::time::Duration;

    /// Longest message a process may write on stdout, in bytes (as the sidecar takes from a target).
    pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
    /// Messages queued for a process's stdin (and from its stdout) before the sender waits.
    pub const INPUT_QUEUE: usize = 64;
    /// Longest a write to a process's stdin may wait before the process counts as no longer reading.
    pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);
    /// Longest stderr line logged whole, in bytes.
    pub const MAX_STDERR_LINE: usize = 8 * 1024;
    /// Stderr lines of one process logged per second at most.
    pub const STDERR_LINES_PER_SECOND: u32 = 50;
    /// Last stderr lines kept for the report when a process ends.
    pub const STDERR_TAIL: usize = 5;
    /// How long a process has to exit after SIGTERM before it gets SIGKILL.
    pub const STOP_GRACE: Duration = Duration::from_secs(5);
    /// Messages for a session's GET stream kept while no stream is open.
    pub const STREAM_BACKLOG: usize = 256;
}
