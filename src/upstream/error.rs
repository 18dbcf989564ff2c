//! Errors from talking to a target; every variant names the target.

use crate::budget::OverBudget;
use crate::net::tls::TlsError;
use crate::protocol::jsonrpc;
use crate::upstream::credentials::CredentialError;
use std::time::Duration;

/// Why an exchange with a target failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made, or it broke (the reason carries the transport's error chain).
    #[error("target `{target}` is unreachable: {reason}")]
    Unreachable {
        /// Target name.
        target: String,
        /// The transport error and its causes.
        reason: String,
    },
    /// The connection was made but the TLS handshake failed (certificate, name, protocol).
    #[error("target `{target}` failed the TLS handshake: {reason}")]
    TlsHandshake {
        /// Target name.
        target: String,
        /// The transport error and its causes.
        reason: String,
    },
    /// No answer within the target's deadline.
    #[error("target `{target}` did not answer within {after:?}")]
    Timeout {
        /// Target name.
        target: String,
        /// The deadline that ran out.
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
    /// The answer was not valid JSON-RPC or MCP.
    #[error("target `{target}` sent an invalid answer: {reason}")]
    Garbage {
        /// Target name.
        target: String,
        /// What was wrong with it.
        reason: String,
    },
    /// One message from the target was larger than mcplex accepts.
    #[error("target `{target}` sent a message larger than the {limit} byte limit")]
    TooLarge {
        /// Target name.
        target: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The target refused to open a session.
    #[error("target `{target}` refused initialize ({code}): {message}")]
    Refused {
        /// Target name.
        target: String,
        /// The JSON-RPC error code.
        code: i64,
        /// The target's error message.
        message: String,
    },
    /// The target's TLS files could not be used.
    #[error("target `{target}` cannot use its TLS settings: {source}")]
    Tls {
        /// Target name.
        target: String,
        /// What failed.
        source: TlsError,
    },
    /// The target's credential could not be read.
    #[error("target `{target}` has no usable credential: {source}")]
    Credential {
        /// Target name.
        target: String,
        /// What failed.
        source: CredentialError,
    },
    /// The legacy session was forgotten by the target (HTTP 404).
    #[error("target `{target}` expired the session")]
    SessionExpired {
        /// Target name.
        target: String,
    },
    /// Holding the target's answer would exceed mcplex's message budget.
    #[error("the answer of target `{target}` was dropped: {source}")]
    OverBudget {
        /// Target name.
        target: String,
        /// The budget that was spent.
        source: OverBudget,
    },
    /// The target was removed from the config while the exchange waited.
    #[error("target `{target}` was removed from the config")]
    Retired {
        /// Target name.
        target: String,
    },
}

impl UpstreamError {
    /// A request of mcplex's that `target` answered with HTTP 202 and no response.
    pub fn no_response(target: &str) -> Self {
        Self::Garbage {
            target: target.into(),
            reason: "a request was answered with 202 and no response".into(),
        }
    }

    /// The JSON-RPC error code a client receives for this failure.
    pub fn code(&self) -> i64 {
        match self {
            Self::Timeout { .. } => jsonrpc::TARGET_TIMEOUT,
            Self::OverBudget { .. } => jsonrpc::INTERNAL_ERROR,
            _ => jsonrpc::TARGET_UNAVAILABLE,
        }
    }

    /// A short, fixed name for the kind of failure (a metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::TlsHandshake { .. } => "tls_handshake",
            Self::Timeout { .. } => "timeout",
            Self::Status { .. } => "http_status",
            Self::Garbage { .. } => "invalid_answer",
            Self::TooLarge { .. } => "too_large",
            Self::Refused { .. } => "refused",
            Self::Tls { .. } => "tls",
            Self::Credential { .. } => "credential",
            Self::SessionExpired { .. } => "session_expired",
            Self::OverBudget { .. } => "over_budget",
            Self::Retired { .. } => "retired",
        }
    }

    /// True when the target could not be reached at all (as opposed to answering badly).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::TlsHandshake { .. } | Self::Timeout { .. }
        )
    }
}
