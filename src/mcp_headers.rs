//! The modern era's routing headers (`Mcp-Method`, `Mcp-Name`): writing them and checking them against the body.

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;

const BASE64_PREFIX: &str = "=?base64?";
const BASE64_SUFFIX: &str = "?=";

/// The body field that `Mcp-Name` mirrors for `method`, if any.
pub fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    }
}

/// Adds `Mcp-Method` and, where the method has one, `Mcp-Name` for a request body.
pub fn add(headers: &mut HeaderMap, message: &Value) {
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(method) {
        headers.insert("mcp-method", value);
    }
    let name = name_field(method).and_then(|field| message.get("params")?.get(field)?.as_str());
    if let Some(value) = name.and_then(|n| HeaderValue::from_str(&encode(n)).ok()) {
        headers.insert("mcp-name", value);
    }
}

/// Checks the headers a modern client sent against its body (`method` and `params`); the error says which header is wrong.
pub fn check(headers: &HeaderMap, method: &str, params: Option<&Value>) -> Result<(), String> {
    match single(headers, "mcp-method")? {
        None => return Err("missing required Mcp-Method header".into()),
        Some(value) if value != method => {
            return Err(format!(
                "Mcp-Method header `{value}` does not match body method `{method}`"
            ));
        }
        Some(_) => {}
    }
    let Some(field) = name_field(method) else { return Ok(()) };
    let Some(expected) = params.and_then(|p| p.get(field)).and_then(Value::as_str) else {
        return Ok(());
    };
    match single(headers, "mcp-name")? {
        None => Err(format!("missing required Mcp-Name header for `{method}`")),
        Some(raw) => {
            let decoded = decode(raw).ok_or("Mcp-Name header is not valid Base64")?;
            if decoded == expected {
                Ok(())
            } else {
                Err(format!(
                    "Mcp-Name header `{decoded}` does not match body {field} `{expected}`"
                ))
            }
        }
    }
}

fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(format!("duplicate {name} header"));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| format!("{name} header holds invalid characters"))
}

/// Encodes a header value, wrapping it in Base64 when it is not plain visible ASCII.
pub fn encode(value: &str) -> String {
    let needs_wrapping = value.bytes().any(|b| !(0x20..=0x7e).contains(&b))
        || value.starts_with([' ', '\t'])
        || value.ends_with([' ', '\t'])
        || (value.starts_with(BASE64_PREFIX) && value.ends_with(BASE64_SUFFIX));
    if !needs_wrapping || value.is_empty() {
        value.to_owned()
    } else {
        format!("{BASE64_PREFIX}{}{BASE64_SUFFIX}", BASE64_STANDARD.encode(value))
    }
}

fn decode(value: &str) -> Option<String> {
    match value
        .strip_prefix(BASE64_PREFIX)
        .and_then(|v| v.strip_suffix(BASE64_SUFFIX))
    {
        Some(inner) => String::from_utf8(BASE64_STANDARD.decode(inner).ok()?).ok(),
        None => Some(value.to_owned()),
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
            add(&mut headers, &body);
            assert_eq!(check(&headers, "tools/call", body.get("params")), Ok(()));
        }
    }

    #[test]
    fn mismatches_are_named() {
        let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add"}});
        let mut headers = HeaderMap::new();
        assert!(
            check(&headers, "tools/call", body.get("params"))
                .unwrap_err()
                .contains("missing required Mcp-Method")
        );
        headers.insert("mcp-method", HeaderValue::from_static("tools/list"));
        assert!(
            check(&headers, "tools/call", body.get("params"))
                .unwrap_err()
                .contains("does not match body method")
        );
        headers.insert("mcp-method", HeaderValue::from_static("tools/call"));
        assert!(
            check(&headers, "tools/call", body.get("params"))
                .unwrap_err()
                .contains("missing required Mcp-Name")
        );
        headers.insert("mcp-name", HeaderValue::from_static("sub"));
        assert!(
            check(&headers, "tools/call", body.get("params"))
                .unwrap_err()
                .contains("`sub` does not match")
        );
    }
}
