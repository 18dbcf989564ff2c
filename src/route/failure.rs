//! What a client receives when routing fails: the one place a failure becomes a JSON-RPC error code and
//! message. The error is walked through its `source()` chain and the first error that decides a code
//! decides it, so a wrapper (a bridge error around a target's timeout, say) answers as its cause.
//! The HTTP status then follows from the code and the client's era (`downstream::respond`).

use crate::protocol::jsonrpc;
use crate::route::bridge::{BridgeError, ParkError, SubscribeError};
use crate::route::channel::AdaptError;
use crate::upstream::UpstreamError;
use serde_json::Value;
use std::error::Error;

/// The JSON-RPC code a client receives for `error`.
pub fn client_code(error: &(dyn Error + 'static)) -> i64 {
    let mut next = Some(error);
    // Bounded: an error chain is short.
    for _ in 0..32 {
        let Some(error) = next else { break };
        if let Some(code) = own_code(error) {
            return code;
        }
        next = error.source();
    }
    jsonrpc::INTERNAL_ERROR
}

/// The error answer to request `id` for `error`: its code, and its text (which names the target and the cause).
pub fn error_answer(id: Value, error: &(dyn Error + 'static)) -> Value {
    jsonrpc::error(Some(id), client_code(error), error.to_string())
}

/// The code one error decides by itself; `None` when its cause decides.
fn own_code(error: &(dyn Error + 'static)) -> Option<i64> {
    if let Some(error) = error.downcast_ref::<UpstreamError>() {
        return Some(match error {
            UpstreamError::Timeout { .. } => jsonrpc::TARGET_TIMEOUT,
            UpstreamError::OverBudget { .. } => jsonrpc::INTERNAL_ERROR,
            // The client asked for the subscription: the target's reason for refusing it is its answer.
            UpstreamError::ListenRefused { code, .. } => *code,
            _ => jsonrpc::TARGET_UNAVAILABLE,
        });
    }
    if let Some(error) = error.downcast_ref::<BridgeError>() {
        return match error {
            BridgeError::MissingCapability { .. } => Some(jsonrpc::MISSING_CLIENT_CAPABILITY),
            BridgeError::BadRequest { .. } => Some(jsonrpc::TARGET_UNAVAILABLE),
            BridgeError::NoAnswer { .. } => Some(jsonrpc::TARGET_TIMEOUT),
            BridgeError::Upstream(_) => None,
            BridgeError::Refused { .. }
            | BridgeError::TooManyRounds { .. }
            | BridgeError::TooManyPending(_)
            | BridgeError::ClientGone => Some(jsonrpc::INTERNAL_ERROR),
        };
    }
    if let Some(error) = error.downcast_ref::<ParkError>() {
        return Some(match error {
            ParkError::Full | ParkError::NoRandomness => jsonrpc::INTERNAL_ERROR,
            ParkError::Forged | ParkError::Gone | ParkError::OtherCaller | ParkError::MissingResponse(_) => {
                jsonrpc::INVALID_PARAMS
            }
        });
    }
    if let Some(error) = error.downcast_ref::<SubscribeError>() {
        return match error {
            SubscribeError::TooManyWatched { .. } => Some(jsonrpc::INVALID_PARAMS),
            SubscribeError::Upstream(_) => None,
        };
    }
    if let Some(error) = error.downcast_ref::<AdaptError>() {
        return Some(match error {
            AdaptError::NotJson { .. } | AdaptError::NotResponse { .. } => jsonrpc::TARGET_UNAVAILABLE,
            AdaptError::InputRequired { .. } => jsonrpc::INTERNAL_ERROR,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn timeout() -> UpstreamError {
        UpstreamError::Timeout {
            target: "math".into(),
            after: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_wrapper_answers_as_its_cause_unless_it_decides_itself() {
        assert_eq!(client_code(&timeout()), jsonrpc::TARGET_TIMEOUT);
        assert_eq!(client_code(&BridgeError::Upstream(timeout())), jsonrpc::TARGET_TIMEOUT);
        assert_eq!(
            client_code(&SubscribeError::Upstream(timeout())),
            jsonrpc::TARGET_TIMEOUT
        );
        let refused = UpstreamError::ListenRefused {
            target: "math".into(),
            code: -32002,
            message: "no such resource".into(),
        };
        assert_eq!(client_code(&SubscribeError::Upstream(refused)), -32002);
        assert_eq!(
            client_code(&SubscribeError::TooManyWatched { limit: 1 }),
            jsonrpc::INVALID_PARAMS
        );
        assert_eq!(client_code(&BridgeError::ClientGone), jsonrpc::INTERNAL_ERROR);
        assert_eq!(client_code(&ParkError::Gone), jsonrpc::INVALID_PARAMS);
        let unreachable = UpstreamError::unreachable("math", "the request failed", Some("refused".into()));
        assert_eq!(client_code(&unreachable), jsonrpc::TARGET_UNAVAILABLE);
        assert_eq!(client_code(&std::io::Error::other("unknown")), jsonrpc::INTERNAL_ERROR);
    }

    #[test]
    fn the_answer_names_the_target_and_keeps_the_cause() {
        let unreachable = UpstreamError::unreachable(
            "math",
            "the request failed",
            Some(Box::new(std::io::Error::other("connection refused"))),
        );
        assert!(unreachable.source().is_some());
        let answer = error_answer(serde_json::json!(7), &unreachable);
        assert_eq!(answer["id"], 7);
        assert_eq!(answer["error"]["code"], jsonrpc::TARGET_UNAVAILABLE);
        assert_eq!(
            answer["error"]["message"],
            "target `math` is unreachable: the request failed: connection refused"
        );
    }
}
