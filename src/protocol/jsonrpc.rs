//! JSON-RPC envelopes: classifying raw messages and writing the errors mcplex itself returns.

use super::raw::{self, Members, Span};
use bytes::Bytes;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::ops::Range;

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
/// The item's definition differs from its pin and `pinning: enforce` holds it back (the message names both
/// digests); nothing was sent to the target.
pub const HELD_BACK: i64 = -32033;
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

/// A JSON-RPC message from a client, kept as the text it sent with its envelope, `params` and
/// `params._meta` indexed: routing reads a few members and writes the rest through unchanged, so
/// unknown fields survive and nothing builds a tree of the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    text: String,
    /// Its kind.
    pub kind: Kind,
    top: Members,
    method: Option<Span>,
    id: Option<Value>,
    params: Option<Members>,
    meta: Option<Members>,
}

/// A message that is not valid JSON-RPC, with the id to answer to when one could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// The request's id, if it had a usable one.
    pub id: Option<Value>,
    /// What is wrong.
    pub reason: String,
}

/// Why a body is not a message.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    /// The body is not text.
    #[error("the body is not UTF-8 text")]
    NotText(#[source] std::str::Utf8Error),
    /// The body is not JSON.
    #[error("the body is not JSON ({0})")]
    NotJson(#[source] serde_json::Error),
    /// The body is JSON but not a JSON-RPC message.
    #[error("{}", .0.reason)]
    Invalid(Invalid),
}

impl Message {
    /// Reads a message from a body: JSON first (else [`Unreadable::NotJson`]), then its envelope.
    pub fn parse(body: Bytes) -> Result<Self, Unreadable> {
        let text = String::from_utf8(Vec::from(body)).map_err(|e| Unreadable::NotText(e.utf8_error()))?;
        // The envelope, `params` and `params._meta` in one pass over the text.
        let (top, [params, meta]) = match Members::index_path(&text, 0..text.len(), ["params", "_meta"]) {
            Ok(indexed) => indexed,
            Err(error) => return Err(not_an_object(&text, error)),
        };
        let raw = |key: &str| top.get(&text, key);
        let id = raw("id").and_then(|raw| serde_json::from_str::<Value>(raw).ok());
        let id_ok = matches!(id, Some(Value::String(_)) | Some(Value::Number(_)));
        let invalid = |reason: &str| {
            Unreadable::Invalid(Invalid {
                id: if id_ok { id.clone() } else { None },
                reason: reason.into(),
            })
        };
        if raw("jsonrpc").and_then(raw::string).as_deref() != Some("2.0") {
            return Err(invalid("`jsonrpc` must be \"2.0\""));
        }
        if id.is_some() && !id_ok {
            return Err(invalid("`id` must be a string or a number"));
        }
        let method = raw("method").map(raw::string);
        let kind = match &method {
            Some(Some(_)) if id_ok => Kind::Request,
            Some(Some(_)) => Kind::Notification,
            Some(None) => return Err(invalid("`method` must be a string")),
            None if id_ok && (top.has(&text, "result") ^ top.has(&text, "error")) => Kind::Response,
            None => {
                return Err(invalid(
                    "a message needs a `method`, or an `id` with exactly one of `result` and `error`",
                ));
            }
        };
        let params_at = top.range_of(&text, "params");
        if let Some(range) = &params_at {
            let is_object = text[range.clone()].starts_with('{');
            let is_array = text[range.clone()].starts_with('[');
            if !(is_object || is_array && kind != Kind::Response) {
                return Err(invalid("`params` must be an object"));
            }
        }
        let method = method.flatten().map(|name| Span::locate(&text, name));
        Ok(Self {
            kind,
            top,
            method,
            id,
            params,
            meta,
            text,
        })
    }

    /// The message as received.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The method name of a request or notification.
    pub fn method(&self) -> &str {
        self.method.as_ref().map_or("", |m| m.resolve(&self.text))
    }

    /// The id of a request or response.
    pub fn id(&self) -> Option<&Value> {
        self.id.as_ref()
    }

    /// The top-level members in order: key and raw JSON text.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.top.iter(&self.text)
    }

    /// The members of `params` in order, when it is an object.
    pub fn params(&self) -> Option<impl Iterator<Item = (&str, &str)>> {
        Some(self.params.as_ref()?.iter(&self.text))
    }

    /// The members of `params._meta` in order, when it is an object.
    pub fn meta(&self) -> Option<impl Iterator<Item = (&str, &str)>> {
        Some(self.meta.as_ref()?.iter(&self.text))
    }

    /// True when `params._meta` is an object.
    pub fn has_meta(&self) -> bool {
        self.meta.is_some()
    }

    /// True when a key came twice in the envelope, `params` or `params._meta`: the text then holds
    /// values that no member shows, so it cannot be edited in place.
    pub fn has_repeats(&self) -> bool {
        self.top.has_repeats()
            || self.params.as_ref().is_some_and(Members::has_repeats)
            || self.meta.as_ref().is_some_and(Members::has_repeats)
    }

    /// The raw JSON text of a top-level member.
    pub fn member(&self, key: &str) -> Option<&str> {
        self.top.get(&self.text, key)
    }

    /// Where the value of a top-level member lies in the text.
    pub fn range(&self, key: &str) -> Option<Range<usize>> {
        self.top.range_of(&self.text, key)
    }

    /// Where the value of a member of `params` lies in the text.
    pub fn param_range(&self, key: &str) -> Option<Range<usize>> {
        self.params.as_ref()?.range_of(&self.text, key)
    }

    /// Where the value of a member of `params._meta` lies in the text.
    pub fn meta_range(&self, key: &str) -> Option<Range<usize>> {
        self.meta.as_ref()?.range_of(&self.text, key)
    }

    /// True when `params` is an object with no members (`None` when it is not an object).
    pub fn params_empty(&self) -> Option<bool> {
        self.params.as_ref().map(Members::is_empty)
    }

    /// True when `params._meta` is an object with no members (`None` when it is not an object).
    pub fn meta_empty(&self) -> Option<bool> {
        self.meta.as_ref().map(Members::is_empty)
    }

    /// The raw JSON text of a member of `params`.
    pub fn param_raw(&self, key: &str) -> Option<&str> {
        self.params.as_ref()?.get(&self.text, key)
    }

    /// A string member of `params`, such as `name` or `uri`.
    pub fn param_str(&self, key: &str) -> Option<Cow<'_, str>> {
        raw::string(self.param_raw(key)?)
    }

    /// A member of `params` as a tree (for small members, on paths that need one).
    pub fn param_value(&self, key: &str) -> Option<Value> {
        serde_json::from_str(self.param_raw(key)?).ok()
    }

    /// `params` as a tree.
    pub fn params_value(&self) -> Option<Value> {
        serde_json::from_str(self.top.get(&self.text, "params")?).ok()
    }

    /// The raw JSON text of a member of `params._meta`.
    pub fn meta_raw(&self, key: &str) -> Option<&str> {
        self.meta.as_ref()?.get(&self.text, key)
    }

    /// A string member of `params._meta`.
    pub fn meta_str(&self, key: &str) -> Option<Cow<'_, str>> {
        raw::string(self.meta_raw(key)?)
    }

    /// A member of `params._meta` as a tree.
    pub fn meta_value(&self, key: &str) -> Option<Value> {
        serde_json::from_str(self.meta_raw(key)?).ok()
    }

    /// The whole message as a tree (for rare messages mcplex changes deeply).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// The error for text that is not a JSON object: a parse error, or a JSON value of another kind.
fn not_an_object(text: &str, error: serde_json::Error) -> Unreadable {
    let reason = match serde_json::from_str::<serde_json::Value>(text) {
        Err(_) => return Unreadable::NotJson(error),
        Ok(Value::Array(_)) => "JSON-RPC batches are not supported; send one message per POST",
        Ok(_) => "a JSON-RPC message must be a JSON object",
    };
    Unreadable::Invalid(Invalid {
        id: None,
        reason: reason.into(),
    })
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
        match Message::parse(Bytes::from(value.to_string())) {
            Ok(message) => Ok(message.kind),
            Err(Unreadable::Invalid(invalid)) => Err(invalid),
            Err(other) => panic!("{value} is JSON, yet: {other}"),
        }
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
