//! JSON-RPC envelopes: classifying raw messages and writing the errors mcplex itself returns.

use serde_json::{Map, Value, json};

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist here.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// The params are invalid (also: unknown tool, prompt or resource).
pub const INVALID_PARAMS: i64 = -32602;
/// Something failed inside mcplex.
pub const INTERNAL_ERROR: i64 = -32603;
/// A target could not be reached or answered badly (the message names it).
pub const TARGET_UNAVAILABLE: i64 = -32030;
/// A target did not answer within its timeout.
pub const TARGET_TIMEOUT: i64 = -32031;
/// The policy denied the call (the message names the rule); nothing was sent to the target.
pub const DENIED_BY_POLICY: i64 = -32032;
/// Modern era: an `Mcp-*` header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// Modern era: answering needs a client capability the request did not declare.
pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
/// The request names a protocol version mcplex does not speak.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// What kind of JSON-RPC message an object is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Has `method` and `id`.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `result` or `error`, and an `id`.
    Response,
}

/// A JSON-RPC message kept as its raw object, so unknown fields survive relaying.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The whole object.
    pub body: Map<String, Value>,
    /// Its kind.
    pub kind: Kind,
}

/// A message that is not valid JSON-RPC, with the id to answer to when one could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// The request's id, if it had a usable one.
    pub id: Option<Value>,
    /// What is wrong.
    pub reason: String,
}

impl Message {
    /// Checks the envelope of a parsed value.
    pub fn classify(value: Value) -> Result<Self, Invalid> {
        let Value::Object(body) = value else {
            let reason = if value.is_array() {
                "JSON-RPC batches are not supported; send one message per POST"
            } else {
                "a JSON-RPC message must be a JSON object"
            };
            return Err(Invalid {
                id: None,
                reason: reason.into(),
            });
        };
        let id = body.get("id").cloned();
        let id_ok = matches!(id, Some(Value::String(_)) | Some(Value::Number(_)));
        let invalid = |reason: &str| Invalid {
            id: if id_ok { id.clone() } else { None },
            reason: reason.into(),
        };
        if body.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(invalid("`jsonrpc` must be \"2.0\""));
        }
        if id.is_some() && !id_ok {
            return Err(invalid("`id` must be a string or a number"));
        }
        let kind = match body.get("method") {
            Some(Value::String(_)) if id_ok => Kind::Request,
            Some(Value::String(_)) => Kind::Notification,
            Some(_) => return Err(invalid("`method` must be a string")),
            None if id_ok && (body.contains_key("result") ^ body.contains_key("error")) => Kind::Response,
            None => {
                return Err(invalid(
                    "a message needs a `method`, or an `id` with exactly one of `result` and `error`",
                ));
            }
        };
        if let Some(params) = body.get("params")
            && !params.is_object()
            && !(params.is_array() && kind != Kind::Response)
        {
            return Err(invalid("`params` must be an object"));
        }
        Ok(Self { body, kind })
    }

    /// The method name of a request or notification.
    pub fn method(&self) -> &str {
        self.body.get("method").and_then(Value::as_str).unwrap_or("")
    }

    /// The id of a request or response.
    pub fn id(&self) -> Option<&Value> {
        self.body.get("id")
    }

    /// A string field of `params`, such as `name` or `uri`.
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.body.get("params")?.get(key)?.as_str()
    }

    /// The `params._meta` object, if any.
    pub fn meta(&self) -> Option<&Map<String, Value>> {
        self.body.get("params")?.get("_meta")?.as_object()
    }
}

/// A success response.
pub fn result(id: Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// An error response; `id` is `null` when the request's id could not be read.
pub fn error(id: Option<Value>, code: i64, message: impl Into<String>) -> Value {
    json!({ "jsonrpc": "2.0", "id": id.unwrap_or(Value::Null), "error": { "code": code, "message": message.into() } })
}

/// An error response carrying `data` (for errors whose data the protocol defines).
pub fn error_with_data(id: Option<Value>, code: i64, message: impl Into<String>, data: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id.unwrap_or(Value::Null), "error": { "code": code, "message": message.into(), "data": data } })
}

/// The error object of a response, if it is one: (code, message).
pub fn error_of(response: &Value) -> Option<(i64, &str)> {
    let error = response.get("error")?;
    Some((
        error.get("code")?.as_i64()?,
        error.get("message").and_then(Value::as_str).unwrap_or(""),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(value: Value) -> Result<Kind, Invalid> {
        Message::classify(value).map(|m| m.kind)
    }

    #[test]
    fn classifies_the_three_kinds() {
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","id":1,"method":"ping"})),
            Ok(Kind::Request)
        );
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","method":"notifications/initialized"})),
            Ok(Kind::Notification)
        );
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","id":"a","result":{}})),
            Ok(Kind::Response)
        );
    }

    #[test]
    fn rejects_bad_envelopes_with_reasons() {
        let err = classify(json!([1])).unwrap_err();
        assert!(err.reason.contains("batches"));
        let err = classify(json!({"jsonrpc":"1.0","id":3,"method":"x"})).unwrap_err();
        assert_eq!(err.id, Some(json!(3)));
        assert!(
            classify(json!({"jsonrpc":"2.0","id":{},"method":"x"}))
                .unwrap_err()
                .reason
                .contains("`id`")
        );
        assert!(
            classify(json!({"jsonrpc":"2.0","id":1,"method":"x","params":3}))
                .unwrap_err()
                .reason
                .contains("params")
        );
        assert!(classify(json!({"jsonrpc":"2.0","id":1,"result":{},"error":{}})).is_err());
    }
}
