//! Custom `Mcp-Param-*` headers (2026-07-28, SEP-2243): a tool may mark arguments with `x-mcp-header` in
//! its input schema, and a `tools/call` then mirrors each such argument into a header, so intermediaries
//! can route on it without reading the body. mcplex checks the headers a client sends against the body,
//! and writes them for the targets it calls.

use super::headers::{decode, encode};
use http::{HeaderName, HeaderValue};
use serde_json::Value;
use std::sync::Arc;

/// The schema keyword that names an argument's header.
pub const SCHEMA_KEYWORD: &str = "x-mcp-header";
/// What goes in front of the keyword's value to make the header name (lower case, as `http` keeps names).
pub const HEADER_PREFIX: &str = "mcp-param-";

/// The JSON types an annotated argument may have (numbers with fractions do not print the same everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A JSON string.
    String,
    /// A JSON integer.
    Integer,
    /// `true` or `false`.
    Boolean,
}

/// One argument a tool mirrors into a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The chain of `properties` keys from the schema's root to the argument.
    pub path: Box<[Box<str>]>,
    /// `Mcp-Param-<keyword value>`.
    pub name: HeaderName,
    /// The argument's declared type.
    pub kind: ParamType,
}

/// Why a client's `Mcp-Param-*` headers were refused (HTTP 400 and -32020).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The header appears more than once.
    #[error("{0} header appears more than once")]
    Duplicate(HeaderName),
    /// The header is sent but the body has no such argument.
    #[error("{header} header is present but the body has no `{argument}` argument")]
    NoArgument {
        /// The header.
        header: HeaderName,
        /// The argument's path, dotted.
        argument: String,
    },
    /// The body has the argument but the header is missing.
    #[error("{header} header is missing but the body has a `{argument}` argument")]
    Missing {
        /// The header.
        header: HeaderName,
        /// The argument's path, dotted.
        argument: String,
    },
    /// The header is not visible ASCII, or its Base64 wrapping does not decode.
    #[error("{0} header holds a malformed value (invalid characters or Base64)")]
    Malformed(HeaderName),
    /// The header and the argument disagree.
    #[error("{header} header does not match the body's `{argument}` argument")]
    Mismatch {
        /// The header.
        header: HeaderName,
        /// The argument's path, dotted.
        argument: String,
    },
}

/// [`of_schema`] for a schema given as JSON text. A schema that names the keyword nowhere (and has no
/// escape that could spell it) has no annotations, so most schemas are never parsed into a tree.
pub fn of_schema_text(input_schema: Option<&str>) -> Option<Arc<[ParamHeader]>> {
    let text = input_schema.filter(|text| text.contains(SCHEMA_KEYWORD) || text.contains('\\'))?;
    of_schema(Some(&serde_json::from_str(text).ok()?))
}

/// The arguments a tool's input schema mirrors into headers; `None` when it has none, or when an
/// annotation is invalid (not a header token, on a type other than string, integer or boolean, or named
/// twice), since clients then leave the tool's headers out and nobody can check them.
pub fn of_schema(input_schema: Option<&Value>) -> Option<Arc<[ParamHeader]>> {
    let mut found = Vec::new();
    let mut stack: Vec<(Vec<Box<str>>, &Value)> = vec![(Vec::new(), input_schema?)];
    while let Some((path, schema)) = stack.pop() {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            continue;
        };
        for (key, property) in properties {
            let mut inner = path.clone();
            inner.push(key.as_str().into());
            if let Some(keyword) = property.get(SCHEMA_KEYWORD) {
                found.push(annotated(inner.clone(), keyword, property)?);
            }
            stack.push((inner, property));
        }
    }
    let mut names: Vec<&HeaderName> = found.iter().map(|p| &p.name).collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let unique = names.windows(2).all(|pair| pair[0] != pair[1]);
    (unique && !found.is_empty()).then(|| found.into())
}

fn annotated(path: Vec<Box<str>>, keyword: &Value, property: &Value) -> Option<ParamHeader> {
    let token = keyword.as_str().filter(|t| !t.is_empty())?;
    let name = HeaderName::from_bytes(format!("{HEADER_PREFIX}{token}").as_bytes()).ok()?;
    let kind = match property.get("type")?.as_str()? {
        "string" => ParamType::String,
        "integer" => ParamType::Integer,
        "boolean" => ParamType::Boolean,
        _ => return None,
    };
    Some(ParamHeader {
        path: path.into(),
        name,
        kind,
    })
}

fn argument_at<'a>(arguments: Option<&'a Value>, path: &[Box<str>]) -> Option<&'a Value> {
    path.iter()
        .try_fold(arguments?, |node, key| node.get(&**key))
        .filter(|value| !value.is_null())
}

/// The text a header carries for an argument; `None` for values no header can carry (objects, arrays).
fn rendered(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn dotted(path: &[Box<str>]) -> String {
    path.join(".")
}

/// The headers a `tools/call` with `arguments` carries to a target whose tool declares `params`.
pub fn headers_for(params: &[ParamHeader], arguments: Option<&Value>) -> Vec<(HeaderName, HeaderValue)> {
    params
        .iter()
        .filter_map(|param| {
            let text = rendered(argument_at(arguments, &param.path)?)?;
            Some((param.name.clone(), HeaderValue::from_str(&encode(&text)).ok()?))
        })
        .collect()
}

/// Checks a client's `Mcp-Param-*` headers (`sent`, as received) against the body's `arguments`.
pub fn check(
    params: &[ParamHeader],
    arguments: Option<&Value>,
    sent: &[(HeaderName, HeaderValue)],
) -> Result<(), ParamError> {
    for param in params {
        let mut values = sent.iter().filter(|(name, _)| *name == param.name).map(|(_, v)| v);
        let header = values.next();
        if header.is_some() && values.next().is_some() {
            return Err(ParamError::Duplicate(param.name.clone()));
        }
        let argument = || dotted(&param.path);
        let value = argument_at(arguments, &param.path);
        let (value, header) = match (value.and_then(|v| Some((v, rendered(v)?))), header) {
            (None, None) => continue,
            (None, Some(_)) if value.is_none() => {
                return Err(ParamError::NoArgument {
                    header: param.name.clone(),
                    argument: argument(),
                });
            }
            // A value no header can carry: a client leaves the header out, so one that sends it cannot match.
            (None, Some(_)) => {
                return Err(ParamError::Mismatch {
                    header: param.name.clone(),
                    argument: argument(),
                });
            }
            (Some(_), None) => {
                return Err(ParamError::Missing {
                    header: param.name.clone(),
                    argument: argument(),
                });
            }
            (Some(value), Some(header)) => (value, header),
        };
        let decoded = header
            .to_str()
            .ok()
            .and_then(decode)
            .ok_or_else(|| ParamError::Malformed(param.name.clone()))?;
        if !matches(param.kind, value.0, &value.1, &decoded) {
            return Err(ParamError::Mismatch {
                header: param.name.clone(),
                argument: argument(),
            });
        }
    }
    Ok(())
}

/// Whether a decoded header agrees with the argument: integers compare by value (`42` and `42.0` agree),
/// everything else by its text.
fn matches(kind: ParamType, value: &Value, rendered: &str, decoded: &str) -> bool {
    if kind == ParamType::Integer
        && let Some(number) = integral(value)
        && let Some((whole, fraction)) = canonical_decimal(decoded)
    {
        return fraction.bytes().all(|b| b == b'0') && whole.parse::<i128>() == Ok(number);
    }
    decoded == rendered
}

/// A JSON number with no fraction, exactly.
fn integral(value: &Value) -> Option<i128> {
    let exact = value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from));
    // A float is exact only within 2^53; beyond that its text is compared instead.
    exact.or_else(|| {
        value
            .as_f64()
            .filter(|n| n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0)
            .map(|n| n as i128)
    })
}

/// `-?digits(.digits)?` split at the point; `None` for any other shape (exponents never compare by value).
fn canonical_decimal(text: &str) -> Option<(&str, &str)> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let digits = whole.strip_prefix('-').unwrap_or(whole);
    (all_digits(digits) && fraction.is_none_or(all_digits)).then_some((whole, fraction.unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "count": {"type": "integer", "x-mcp-header": "Count"},
            "options": {"type": "object", "properties": {"dry": {"type": "boolean", "x-mcp-header": "Dry"}}},
            "plain": {"type": "string"}
        }})
    }

    fn header(name: &str, value: &str) -> (HeaderName, HeaderValue) {
        (
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        )
    }

    #[test]
    fn annotated_arguments_are_found_with_their_paths() {
        let params = of_schema(Some(&schema())).unwrap();
        let mut names: Vec<(&str, String)> = params.iter().map(|p| (p.name.as_str(), dotted(&p.path))).collect();
        names.sort();
        assert_eq!(
            names,
            [
                ("mcp-param-count", "count".to_owned()),
                ("mcp-param-dry", "options.dry".to_owned()),
                ("mcp-param-region", "region".to_owned())
            ]
        );
        assert_eq!(of_schema(Some(&json!({"properties": {"a": {"type": "string"}}}))), None);
        // Invalid annotations: a number type, a name that is not a token, a name used twice.
        for bad in [
            json!({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "a b"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "A"}, "b": {"type": "string", "x-mcp-header": "a"}}}),
        ] {
            assert_eq!(of_schema(Some(&bad)), None, "{bad}");
        }
    }

    #[test]
    fn written_headers_pass_the_check() {
        let params = of_schema(Some(&schema())).unwrap();
        let arguments = json!({"region": "eu-west 1 ü", "count": 3, "options": {"dry": true}, "plain": "x"});
        let written = headers_for(&params, Some(&arguments));
        assert_eq!(written.len(), 3);
        assert_eq!(check(&params, Some(&arguments), &written), Ok(()));
        // Absent together is fine; null counts as absent.
        assert_eq!(check(&params, Some(&json!({"count": null})), &[]), Ok(()));
    }

    #[test]
    fn each_disagreement_is_named() {
        let params = of_schema(Some(&schema())).unwrap();
        let arguments = json!({"region": "Hello"});
        let check_with =
            |sent: &[(HeaderName, HeaderValue)]| check(&params, Some(&arguments), sent).unwrap_err().to_string();
        assert!(check_with(&[]).contains("mcp-param-region header is missing"));
        assert!(check_with(&[header("mcp-param-region", "Bye")]).contains("does not match"));
        assert!(check_with(&[header("mcp-param-region", "=?base64?SGVsbG8?=")]).contains("malformed"));
        assert!(check_with(&[header("mcp-param-region", "=?base64?SGVs!!!bG8=?=")]).contains("malformed"));
        assert!(
            check_with(&[header("mcp-param-region", "Hello"), header("mcp-param-region", "Hello")])
                .contains("more than once")
        );
        assert!(
            check_with(&[header("mcp-param-region", "Hello"), header("mcp-param-count", "1")])
                .contains("no `count` argument")
        );
        // Valid Base64 decodes; a value that only looks half-wrapped is literal.
        assert_eq!(
            check(
                &params,
                Some(&arguments),
                &[header("mcp-param-region", "=?base64?SGVsbG8=?=")]
            ),
            Ok(())
        );
        let literal = json!({"region": "=?base64?SGVsbG8="});
        assert_eq!(
            check(
                &params,
                Some(&literal),
                &[header("mcp-param-region", "=?base64?SGVsbG8=")]
            ),
            Ok(())
        );
    }

    #[test]
    fn integers_compare_by_value() {
        let params = of_schema(Some(&schema())).unwrap();
        let arguments = json!({"count": 42});
        for (sent, ok) in [
            ("42", true),
            ("42.0", true),
            ("42.5", false),
            ("4.2e1", false),
            ("042", true),
            ("x", false),
        ] {
            let result = check(&params, Some(&arguments), &[header("mcp-param-count", sent)]);
            assert_eq!(result.is_ok(), ok, "{sent}: {result:?}");
        }
    }
}
