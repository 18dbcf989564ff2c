//! Errors from talking to a target; every variant names the target.

use crate::jsonrpc;
use std::time::Duration;

/// Why an exchange with a target failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made, or it broke.
    #[error("target `{target}` is unreachable: {reason}")]
    Unreachable {
        /// Target name.
        target: String,
        /// The transport error.
        reason: String,
    },
    /// No answer within the target's timeout.
    #[error("target `{target}` did not answer within {after:?}")]
    Timeout {
        /// Target name.
        target: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// An HTTP status that carries no JSON-RPC answer.
    #[error("target `{target}` answered HTTP {status}: {body}")]
    Status {
        /// Target name.
        target: String,
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The answer was not valid JSON-RPC.
    #[error("target `{target}` sent an invalid answer: {reason}")]
    Garbage {
        /// Target name.
        target: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The target's TLS files or credentials could not be used.
    #[error("target `{target}` cannot be configured: {reason}")]
    Setup {
        /// Target name.
        target: String,
        /// What failed.
        reason: String,
    },
    /// The legacy session was forgotten by the target (HTTP 404).
    #[error("target `{target}` expired the session")]
    SessionExpired {
        /// Target name.
        target: String,
    },
}

impl UpstreamError {
    /// The JSON-RPC error code a client receives for this failure.
    pub fn code(&self) -> i64 {
        match self {
            Self::Timeout { .. } => jsonrpc::TARGET_TIMEOUT,
            _ => jsonrpc::TARGET_UNAVAILABLE,
        }
    }

    /// True when the target could not be reached at all (as opposed to answering badly).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Timeout { .. })
    }
}
