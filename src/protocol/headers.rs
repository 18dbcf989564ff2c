//! The modern era's routing headers (`Mcp-Method`, `Mcp-Name`): writing them and checking them against the body.

use super::header::{MCP_METHOD, MCP_NAME};
use super::{method, tasks};
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::borrow::Cow;

const BASE64_PREFIX: &str = "=?base64?";
const BASE64_SUFFIX: &str = "?=";

/// The body field that `Mcp-Name` mirrors for `method`, if any.
pub fn name_field(method: &str) -> Option<&'static str> {
    match method {
        method::TOOLS_CALL | method::PROMPTS_GET => Some("name"),
        method::RESOURCES_READ | method::RESOURCES_SUBSCRIBE | method::RESOURCES_UNSUBSCRIBE => Some("uri"),
        method::TASKS_GET | method::TASKS_UPDATE | method::TASKS_CANCEL => Some(tasks::TASK_ID),
        _ => None,
    }
}

/// Methods whose `Mcp-Method` value is static (no copy per request): the ones relayed most.
const STATIC_METHODS: [&str; 8] = [
    method::TOOLS_CALL,
    method::PROMPTS_GET,
    method::RESOURCES_READ,
    method::COMPLETE,
    method::PING,
    method::TASKS_GET,
    method::TASKS_UPDATE,
    method::TASKS_CANCEL,
];

/// The `Mcp-Method` and `Mcp-Name` values of one request, worked out once (a renewed session resends them).
#[derive(Debug, Clone, Default)]
pub struct Routing {
    method: Option<HeaderValue>,
    name: Option<HeaderValue>,
}

impl Routing {
    /// For a request `method` whose params field [`name_field`] names holds `name`.
    pub fn new(method: &str, name: Option<&str>) -> Self {
        let static_method = STATIC_METHODS.iter().find(|known| **known == method);
        Self {
            method: static_method.map_or_else(
                || HeaderValue::from_str(method).ok(),
                |known| Some(HeaderValue::from_static(known)),
            ),
            name: name
                .filter(|_| name_field(method).is_some())
                .and_then(|n| HeaderValue::from_str(&encode(n)).ok()),
        }
    }

    /// For a request body as a tree.
    pub fn of(message: &Value) -> Self {
        let Some(method) = message.get("method").and_then(Value::as_str) else {
            return Self::default();
        };
        let name = name_field(method).and_then(|field| message.get("params")?.get(field)?.as_str());
        Self::new(method, name)
    }

    /// Adds `Mcp-Method` and, where the method has one, `Mcp-Name`.
    pub fn write(&self, headers: &mut HeaderMap) {
        if let Some(method) = &self.method {
            headers.insert(MCP_METHOD, method.clone());
        }
        if let Some(name) = &self.name {
            headers.insert(MCP_NAME, name.clone());
        }
    }
}

/// Why a 2026-07-28 request's routing headers were refused (answered with HTTP 400 and -32020).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A header the request needs is absent.
    #[error("missing required {0} header")]
    Missing(&'static str),
    /// `Mcp-Name` is absent for a method that names something.
    #[error("missing required Mcp-Name header for `{0}`")]
    MissingName(String),
    /// A header appears more than once.
    #[error("duplicate {0} header")]
    Duplicate(&'static str),
    /// A header value is not visible ASCII.
    #[error("{0} header holds invalid characters")]
    NotText(&'static str),
    /// `Mcp-Name` uses the Base64 wrapping but its payload does not decode.
    #[error("Mcp-Name header is not valid Base64")]
    BadBase64,
    /// `Mcp-Method` disagrees with the body.
    #[error("Mcp-Method header `{header}` does not match body method `{body}`")]
    MethodMismatch {
        /// What the header said.
        header: String,
        /// What the body said.
        body: String,
    },
    /// `Mcp-Name` disagrees with the body.
    #[error("Mcp-Name header `{header}` does not match body {field} `{body}`")]
    NameMismatch {
        /// What the header said (decoded).
        header: String,
        /// The body field it mirrors.
        field: &'static str,
        /// What the body said.
        body: String,
    },
}

/// Checks the headers a modern client sent against its body: its `method`, and `name`, the string in the
/// params field [`name_field`] names for that method (if the body has it).
pub fn check(headers: &HeaderMap, method: &str, name: Option<&str>) -> Result<(), HeaderError> {
    match single(headers, &MCP_METHOD, "Mcp-Method")? {
        None => return Err(HeaderError::Missing("Mcp-Method")),
        Some(value) if value != method => {
            return Err(HeaderError::MethodMismatch {
                header: value.to_owned(),
                body: method.to_owned(),
            });
        }
        Some(_) => {}
    }
    let Some(field) = name_field(method) else { return Ok(()) };
    let Some(expected) = name else {
        return Ok(());
    };
    match single(headers, &MCP_NAME, "Mcp-Name")? {
        None => Err(HeaderError::MissingName(method.to_owned())),
        Some(raw) => {
            let decoded = decode(raw).ok_or(HeaderError::BadBase64)?;
            if decoded.as_ref() == expected {
                Ok(())
            } else {
                Err(HeaderError::NameMismatch {
                    header: decoded.into_owned(),
                    field,
                    body: expected.to_owned(),
                })
            }
        }
    }
}

fn single<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    display: &'static str,
) -> Result<Option<&'a str>, HeaderError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(HeaderError::Duplicate(display));
    }
    value.to_str().map(Some).map_err(|_| HeaderError::NotText(display))
}

/// Encodes a header value, wrapping it in Base64 when it is not plain visible ASCII (borrowed otherwise).
pub fn encode(value: &str) -> Cow<'_, str> {
    let needs_wrapping = value.bytes().any(|b| !(0x20..=0x7e).contains(&b))
        || value.starts_with([' ', '\t'])
        || value.ends_with([' ', '\t'])
        || (value.starts_with(BASE64_PREFIX) && value.ends_with(BASE64_SUFFIX));
    if !needs_wrapping || value.is_empty() {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!(
            "{BASE64_PREFIX}{}{BASE64_SUFFIX}",
            BASE64_STANDARD.encode(value)
        ))
    }
}

/// Decodes a header value, unwrapping Base64 when it is wrapped (borrowed otherwise); `None` when the
/// wrapping does not decode.
pub fn decode(value: &str) -> Option<Cow<'_, str>> {
    match value
        .strip_prefix(BASE64_PREFIX)
        .and_then(|v| v.strip_suffix(BASE64_SUFFIX))
    {
        Some(inner) => String::from_utf8(BASE64_STANDARD.decode(inner).ok()?)
            .ok()
            .map(Cow::Owned),
        None => Some(Cow::Borrowed(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn written_headers_pass_the_check_even_for_unicode_names() {
        for name in ["add", "größe", " padded "] {
            let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name}});
            let mut headers = HeaderMap::new();
            Routing::of(&body).write(&mut headers);
            assert_eq!(check(&headers, "tools/call", Some(name)), Ok(()));
        }
    }

    #[test]
    fn mismatches_are_named() {
        let mut headers = HeaderMap::new();
        assert!(
            check(&headers, "tools/call", Some("add"))
                .unwrap_err()
                .to_string()
                .contains("missing required Mcp-Method")
        );
        headers.insert(MCP_METHOD, HeaderValue::from_static("tools/list"));
        assert!(
            check(&headers, "tools/call", Some("add"))
                .unwrap_err()
                .to_string()
                .contains("does not match body method")
        );
        headers.insert(MCP_METHOD, HeaderValue::from_static("tools/call"));
        assert!(
            check(&headers, "tools/call", Some("add"))
                .unwrap_err()
                .to_string()
                .contains("missing required Mcp-Name")
        );
        headers.insert(MCP_NAME, HeaderValue::from_static("sub"));
        assert!(
            check(&headers, "tools/call", Some("add"))
                .unwrap_err()
                .to_string()
                .contains("`sub` does not match")
        );
    }
}
