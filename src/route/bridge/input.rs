//! Era bridging, session-era client → 2026-07-28 target: a target that answers a call with
//! `resultType: "input_required"` has its input requests asked of the client as real requests
//! (`elicitation/create`, `sampling/createMessage`, `roots/list`) on the call's stream; the client's
//! results go back as `inputResponses` with the same `requestState` on a retry of the original
//! request, round after round, until the target completes the call.

use crate::metrics::Delivery;
use crate::protocol::mrtr;
use crate::protocol::raw::RawMessage;
use crate::route::channel::Channel;
use crate::route::channel::Outgoing;
use crate::route::session::ClientSession;
use crate::route::session::EncodedMessage;
use crate::telemetry::TraceContext;
use crate::upstream::{Received, Reply, UpstreamError};
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Rounds of input one call may take; a target asking for more is cut off.
pub const MAX_ROUNDS: usize = 16;
/// Inputs one round may ask for.
pub const MAX_INPUTS: usize = 16;
/// How long the client has to answer a round (elicitation waits for a person).
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(600);

/// Why a bridged call ended without the target's final answer.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The target's request is malformed or asks for something mcplex cannot ask of a client.
    #[error("target `{target}` asked for input mcplex cannot carry: {reason}")]
    BadRequest {
        /// The target.
        target: String,
        /// What was wrong.
        reason: String,
    },
    /// The client did not declare the capability the request needs.
    #[error("target `{target}` needs `{method}` from the client, which did not declare the `{capability}` capability")]
    MissingCapability {
        /// The target.
        target: String,
        /// The request's method.
        method: String,
        /// The capability it needs.
        capability: &'static str,
    },
    /// The client answered a request with an error.
    #[error("the client refused the `{method}` target `{target}` asked for: {message}")]
    Refused {
        /// The target.
        target: String,
        /// The request's method.
        method: String,
        /// The client's error message.
        message: String,
    },
    /// More rounds than [`MAX_ROUNDS`].
    #[error("target `{target}` asked for input more than {MAX_ROUNDS} times in one call")]
    TooManyRounds {
        /// The target.
        target: String,
    },
    /// The client did not answer within [`ANSWER_DEADLINE`].
    #[error("the client did not answer target `{target}`'s input requests within {ANSWER_DEADLINE:?}")]
    NoAnswer {
        /// The target.
        target: String,
    },
    /// The client has too many requests from targets open.
    #[error("{0}")]
    TooManyPending(#[from] crate::route::session::TooManyPending),
    /// The retry failed on the way.
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    /// The client went away.
    #[error("the client went away")]
    ClientGone,
}

/// Whether a final response asks the client for input.
pub fn asks_for_input(message: &RawMessage) -> bool {
    message
        .object()
        .ok()
        .and_then(|o| o.get("result"))
        .and_then(|result| serde_json::from_str::<ResultType<'_>>(result.get()).ok())
        .is_some_and(|r| r.result_type.as_deref() == Some(mrtr::INPUT_REQUIRED))
}

#[derive(serde::Deserialize)]
struct ResultType<'a> {
    #[serde(rename = "resultType", borrow)]
    result_type: Option<std::borrow::Cow<'a, str>>,
}

/// One bridged call: what it needs to ask the client and retry at the target.
pub struct Bridge<'a> {
    /// The channel to the target.
    pub channel: &'a Channel,
    /// The client's session.
    pub session: &'a Arc<ClientSession>,
    /// The request as first sent to the target (the retries repeat it).
    pub original: &'a Value,
    /// The call's stream to the client.
    pub tx: &'a mpsc::Sender<EncodedMessage>,
    /// The trace context the target receives.
    pub trace: Option<&'a TraceContext>,
    /// The `Mcp-Param-*` headers of the call, repeated on every retry.
    pub params: &'a [(HeaderName, HeaderValue)],
}

impl Bridge<'_> {
    /// Runs input rounds from the target's first `input_required` answer until a final one, which is
    /// returned with the retry's upstream id (the caller rewrites it for the client).
    pub async fn run(&self, mut answer: RawMessage) -> Result<RawMessage, BridgeError> {
        let target = self.channel.link().name().to_owned();
        for _ in 0..MAX_ROUNDS {
            let result = answer
                .value()
                .ok()
                .and_then(|mut v| v.get_mut("result").map(Value::take))
                .unwrap_or_default();
            let responses = self.ask_round(&target, &result).await?;
            let mut retry = self.original.clone();
            let params = retry
                .as_object_mut()
                .map(|o| o.entry("params").or_insert_with(|| json!({})))
                .and_then(Value::as_object_mut)
                .ok_or_else(|| BridgeError::BadRequest {
                    target: target.clone(),
                    reason: "the original request has no params object".into(),
                })?;
            params.insert(mrtr::INPUT_RESPONSES.into(), Value::Object(responses));
            match result.get(mrtr::REQUEST_STATE) {
                Some(state) => params.insert(mrtr::REQUEST_STATE.into(), state.clone()),
                None => params.remove(mrtr::REQUEST_STATE),
            };
            let id = self.channel.link().next_request_id();
            retry["id"] = id.clone();
            answer = self.send(retry, &id).await?;
            if !asks_for_input(&answer) {
                return Ok(answer);
            }
        }
        Err(BridgeError::TooManyRounds { target })
    }

    /// Asks the client every input of one round, all at once, and collects the results by name.
    async fn ask_round(&self, target: &str, result: &Value) -> Result<Map<String, Value>, BridgeError> {
        let bad = |reason: String| BridgeError::BadRequest {
            target: target.to_owned(),
            reason,
        };
        let requests = match result.get(mrtr::INPUT_REQUESTS) {
            None => return Ok(Map::new()),
            Some(Value::Object(requests)) => requests,
            Some(_) => return Err(bad(format!("`{}` is not an object", mrtr::INPUT_REQUESTS))),
        };
        if requests.len() > MAX_INPUTS {
            return Err(bad(format!(
                "{} inputs in one round (at most {MAX_INPUTS})",
                requests.len()
            )));
        }
        let capabilities = &self.session.context.capabilities;
        let mut asked = Vec::with_capacity(requests.len());
        for (name, request) in requests {
            let method = request.get("method").and_then(Value::as_str).unwrap_or_default();
            let Some(capability) = mrtr::capability_for(method) else {
                return Err(bad(format!("input `{name}` has method `{method}`")));
            };
            if capabilities.get(capability).is_none() {
                return Err(BridgeError::MissingCapability {
                    target: target.to_owned(),
                    method: method.to_owned(),
                    capability,
                });
            }
            let (message, answered) = self.session.ask(method, request.get("params"))?;
            self.session.count_server_request(self.channel, Delivery::Bridged);
            if self.tx.send(EncodedMessage::of(&message)).await.is_err() {
                return Err(BridgeError::ClientGone);
            }
            asked.push((name.clone(), method.to_owned(), answered));
        }
        let mut responses = Map::new();
        let collect = async {
            for (name, method, answered) in asked {
                let reply = answered.await.map_err(|_| BridgeError::ClientGone)?;
                if let Some(result) = reply.get("result") {
                    responses.insert(name, result.clone());
                } else {
                    let message = reply
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("no result")
                        .to_owned();
                    return Err(BridgeError::Refused {
                        target: target.to_owned(),
                        method,
                        message,
                    });
                }
            }
            Ok(())
        };
        let outcome = tokio::select! {
            _ = self.tx.closed() => Err(BridgeError::ClientGone),
            done = tokio::time::timeout(ANSWER_DEADLINE, collect) => done.unwrap_or_else(|_| Err(BridgeError::NoAnswer { target: target.to_owned() })),
        };
        // Requests the client never answered must not wait in the session for ever.
        self.session.forget_unanswered();
        outcome.map(|()| responses)
    }

    /// Sends a retry and reads the target's final answer to it; notifications on its stream go to the client.
    async fn send(&self, retry: Value, id: &Value) -> Result<RawMessage, BridgeError> {
        let link = self.channel.link();
        match self
            .channel
            .send_call(Outgoing::Tree(retry), self.trace, self.params)
            .await?
        {
            Reply::Single(Received { message, .. }) => Ok(message),
            Reply::Accepted => Err(UpstreamError::Garbage {
                target: link.name().into(),
                reason: "a retry was answered with 202 and no response".into(),
            }
            .into()),
            Reply::Stream(mut stream) => loop {
                let next = tokio::select! {
                    _ = self.tx.closed() => return Err(BridgeError::ClientGone),
                    next = tokio::time::timeout(link.config.timeout, stream.next()) => next,
                };
                let received = match next {
                    Err(_) => {
                        return Err(UpstreamError::Timeout {
                            target: link.name().into(),
                            after: link.config.timeout,
                        }
                        .into());
                    }
                    Ok(None) => return Err(stream.garbage("the stream ended before the response".into()).into()),
                    Ok(Some(received)) => received?,
                };
                let Ok(object) = received.message.object() else {
                    continue;
                };
                if !object.has("method") && object.value("id").as_ref() == Some(id) {
                    return Ok(received.message);
                }
                if object.has("method") && !object.has("id") {
                    let chunk = EncodedMessage {
                        json: received.message.into_bytes(),
                        hold: received.hold,
                    };
                    if self.tx.send(chunk).await.is_err() {
                        return Err(BridgeError::ClientGone);
                    }
                }
            },
        }
    }
}
