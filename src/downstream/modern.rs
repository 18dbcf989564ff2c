//! What makes a request a 2026-07-28 one, and the checks such a request must pass before anything
//! serves it (the sidecar's endpoint and `mcplex serve` ask the same).

use crate::downstream::respond::{self, Body};
use crate::protocol::header::MCP_PROTOCOL_VERSION;
use crate::protocol::{self, jsonrpc, meta};
use http::{HeaderMap, Response, StatusCode};
use serde_json::json;

/// The `MCP-Protocol-Version` header as text (`(not text)` when it is not), when the request has one.
pub fn version_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(MCP_PROTOCOL_VERSION)
        .map(|v| v.to_str().unwrap_or("(not text)").to_owned())
}

/// Whether a message without a session speaks 2026-07-28: its `_meta` or its version header says so.
pub fn speaks_modern(headers: &HeaderMap, message: &jsonrpc::Message) -> bool {
    message.meta_str(meta::PROTOCOL_VERSION).is_some()
        || headers
            .get(MCP_PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v >= protocol::MODERN_VERSION)
}

/// Checks a 2026-07-28 request: the answer for the client when it fails.
pub fn check_request(headers: &HeaderMap, message: &jsonrpc::Message) -> Result<(), Box<Response<Body>>> {
    let id = message.id().cloned();
    let fail = |status: StatusCode, code: i64, text: String| {
        Err(Box::new(respond::error_with_status(status, id.clone(), code, &text)))
    };
    let header_version = version_header(headers);
    let meta_version = message.meta_str(meta::PROTOCOL_VERSION);
    // A 2026-07-28 request: its _meta first (-32602), then the version header (-32020), the version
    // itself (-32022), then the routing headers (-32020), as the revision orders them.
    let capabilities = message.meta_raw(meta::CLIENT_CAPABILITIES);
    let missing = if !message.has_meta() {
        Some("_meta".to_owned())
    } else if meta_version.is_none() {
        Some(format!("_meta `{}`", meta::PROTOCOL_VERSION))
    } else if !capabilities.is_some_and(|raw| raw.starts_with('{')) {
        Some(format!("_meta `{}`", meta::CLIENT_CAPABILITIES))
    } else {
        None
    };
    if let Some(missing) = missing {
        return fail(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_PARAMS,
            format!("Invalid params: {missing} is required"),
        );
    }
    let Some(header_version) = header_version else {
        return fail(
            StatusCode::BAD_REQUEST,
            jsonrpc::HEADER_MISMATCH,
            "missing MCP-Protocol-Version header".into(),
        );
    };
    if meta_version.as_deref() != Some(header_version.as_str()) {
        return fail(
            StatusCode::BAD_REQUEST,
            jsonrpc::HEADER_MISMATCH,
            format!(
                "MCP-Protocol-Version header `{header_version}` does not match _meta protocolVersion `{}`",
                meta_version.as_deref().unwrap_or("(absent)")
            ),
        );
    }
    if header_version != protocol::MODERN_VERSION {
        let error = jsonrpc::error_with_data(
            id.clone(),
            jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
            format!(
                "protocol version `{header_version}` is not supported; use {} or a session-era version with initialize",
                protocol::MODERN_VERSION
            ),
            json!({ "supported": protocol::supported_versions(), "requested": header_version }),
        );
        return Err(Box::new(respond::json_with_status(StatusCode::BAD_REQUEST, &error)));
    }
    let name = protocol::headers::name_field(message.method()).and_then(|field| message.param_str(field));
    if let Err(problem) = protocol::headers::check(headers, message.method(), name.as_deref()) {
        return fail(StatusCode::BAD_REQUEST, jsonrpc::HEADER_MISMATCH, problem.to_string());
    }
    Ok(())
}
