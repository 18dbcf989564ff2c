//! Errors from talking to a target; every variant names the target and keeps what caused it as its
//! `source()`. What a client receives for one is decided in one place (`route`'s failure mapping); the
//! text of a variant already carries its causes, so logs print it as it is.

use crate::budget::OverBudget;
use crate::net::error_chain;
use crate::net::tls::TlsError;
use crate::upstream::credentials::CredentialError;
use std::time::Duration;

/// What caused a transport failure, kept whole.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// `what`, then the causes of `source` when there is one.
fn described(what: &str, source: Option<&(dyn std::error::Error + Send + Sync)>) -> String {
    match source {
        Some(source) => format!("{what}: {}", error_chain(source)),
        None => what.to_owned(),
    }
}

/// Why an exchange with a target failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made, or it broke.
    #[error("target `{target}` is unreachable: {}", described(.what, .source.as_deref()))]
    Unreachable {
        /// Target name.
        target: String,
        /// What failed (connecting, reading the answer, resuming a stream).
        what: &'static str,
        /// The transport's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The connection was made but the TLS handshake failed (certificate, name, protocol).
    #[error("target `{target}` failed the TLS handshake: {}", error_chain(.source.as_ref()))]
    TlsHandshake {
        /// Target name.
        target: String,
        /// The transport's error.
        source: Cause,
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
    /// The answer could not be read as JSON-RPC.
    #[error("target `{target}` sent an invalid answer: {source}")]
    Unreadable {
        /// Target name.
        target: String,
        /// What the parser said.
        source: Cause,
    },
    /// The answer was JSON-RPC but not what MCP or the request called for.
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
    /// The target answered `initialize` with an error: no session, so nothing can be sent to it this way.
    #[error("target `{target}` refused initialize ({code}): {message}")]
    SessionRefused {
        /// Target name.
        target: String,
        /// The target's JSON-RPC error code.
        code: i64,
        /// The target's error message.
        message: String,
    },
    /// The target answered `subscriptions/listen` with an error (an unknown resource, say).
    #[error("target `{target}` refused subscriptions/listen ({code}): {message}")]
    ListenRefused {
        /// Target name.
        target: String,
        /// The target's JSON-RPC error code, which the client receives.
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

    /// `target` could not be reached: `what` failed, because of `source` when there is one.
    pub fn unreachable(target: &str, what: &'static str, source: Option<Cause>) -> Self {
        Self::Unreachable {
            target: target.into(),
            what,
            source,
        }
    }

    /// `target` sent something that is not a JSON-RPC message.
    pub fn unreadable(target: &str, source: impl Into<Cause>) -> Self {
        Self::Unreadable {
            target: target.into(),
            source: source.into(),
        }
    }

    /// A short, fixed name for the kind of failure (a metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::TlsHandshake { .. } => "tls_handshake",
            Self::Timeout { .. } => "timeout",
            Self::Status { .. } => "http_status",
            Self::Unreadable { .. } | Self::Garbage { .. } => "invalid_answer",
            Self::TooLarge { .. } => "too_large",
            Self::SessionRefused { .. } | Self::ListenRefused { .. } => "refused",
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
