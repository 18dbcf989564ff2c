//! MCP vocabulary in one place: protocol versions and eras, `_meta` keys, header names, method names,
//! JSON-RPC envelopes and SSE framing. Nothing here does I/O.

pub mod headers;
pub mod jsonrpc;
pub mod params;
pub mod raw;
pub mod sse;

use http::HeaderName;
use serde_json::{Value, json};

/// The stateless protocol revision.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The newest session-era revision, used when mcplex opens a legacy session of its own.
pub const LATEST_LEGACY_VERSION: &str = "2025-11-25";
/// Session-era revisions mcplex speaks.
pub const LEGACY_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
/// The path of the MCP endpoint.
pub const ENDPOINT_PATH: &str = "/mcp";
/// Where OAuth 2.0 protected resource metadata is served (RFC 9728 §3); the endpoint's own path is
/// appended for the resource `<origin>/mcp`.
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The media type of a JSON body.
pub const JSON_MEDIA_TYPE: &str = "application/json";
/// The media type of a server-sent event stream.
pub const SSE_MEDIA_TYPE: &str = "text/event-stream";

/// True when a `Content-Type` value names `media_type` (case-insensitive, parameters such as `charset`
/// allowed). Checked on every message, so nothing is copied.
pub fn is_media_type(content_type: &str, media_type: &str) -> bool {
    let value = content_type.trim_start().as_bytes();
    value.len() >= media_type.len() && value[..media_type.len()].eq_ignore_ascii_case(media_type.as_bytes())
}

/// Every version mcplex speaks, oldest first (what `server/discover` and `-32022` errors list).
pub fn supported_versions() -> Vec<&'static str> {
    LEGACY_VERSIONS.iter().copied().chain([MODERN_VERSION]).collect()
}

/// Which protocol era a peer (client or target) speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// The 2025 revisions: `initialize`, sessions, server-to-client requests. JSON-RPC errors travel with HTTP 200.
    Legacy,
    /// 2026-07-28: stateless, per-request `_meta`; some errors map to HTTP 400/404.
    Modern,
}

impl Era {
    /// The era a protocol version string belongs to, if mcplex speaks it.
    pub fn of_version(version: &str) -> Option<Self> {
        if version == MODERN_VERSION {
            Some(Self::Modern)
        } else if LEGACY_VERSIONS.contains(&version) {
            Some(Self::Legacy)
        } else {
            None
        }
    }
}

/// The `MCP-Protocol-Version` header value for `version`: static for the versions mcplex speaks (no
/// allocation per request), `None` for text a header cannot carry.
pub fn version_header(version: &str) -> Option<http::HeaderValue> {
    LEGACY_VERSIONS
        .iter()
        .chain([&MODERN_VERSION])
        .find(|known| **known == version)
        .map(|known| http::HeaderValue::from_static(known))
        .or_else(|| http::HeaderValue::from_str(version).ok())
}

/// Characters MCP allows in tool and prompt names (`^[A-Za-z0-9_.-]{1,128}$`).
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// `_meta` keys of the 2026-07-28 revision.
pub mod meta {
    /// The request's protocol version.
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    /// The client's identity.
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    /// The client's capabilities.
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    /// The server's identity in `server/discover` results.
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    /// The subscription a `subscriptions/listen` notification belongs to.
    pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
    /// Every key the protocol reserves starts with this.
    pub const RESERVED_PREFIX: &str = "io.modelcontextprotocol/";
    /// W3C trace context of the request (SEP-414: unprefixed, as OpenTelemetry names it).
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace state of the request (SEP-414).
    pub const TRACESTATE: &str = "tracestate";
    /// The token a request asks its progress to be reported under; a `notifications/progress` names it
    /// with the same key in its `params`.
    pub const PROGRESS_TOKEN: &str = "progressToken";
}

/// HTTP header names of the Streamable HTTP transport.
pub mod header {
    use super::HeaderName;

    /// The legacy session id.
    pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
    /// The protocol version of a request.
    pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
    /// The JSON-RPC method of a 2026-07-28 request.
    pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
    /// The tool, prompt or resource a 2026-07-28 request names.
    pub const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
    /// Where a client resumes an SSE stream its server closed (SEP-1699).
    pub const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
    /// W3C trace context.
    pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    /// W3C trace state.
    pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
}

/// Method names mcplex treats specially.
pub mod method {
    /// Opens a legacy session.
    pub const INITIALIZE: &str = "initialize";
    /// Completes the legacy handshake.
    pub const INITIALIZED: &str = "notifications/initialized";
    /// Liveness check.
    pub const PING: &str = "ping";
    /// The 2026-07-28 replacement for `initialize`.
    pub const DISCOVER: &str = "server/discover";
    /// Sets the log level of a legacy session.
    pub const SET_LEVEL: &str = "logging/setLevel";
    /// The 2026-07-28 notification stream.
    pub const LISTEN: &str = "subscriptions/listen";
    /// Its acknowledgement.
    pub const LISTEN_ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
    /// Calls a tool.
    pub const TOOLS_CALL: &str = "tools/call";
    /// Gets a prompt.
    pub const PROMPTS_GET: &str = "prompts/get";
    /// Completes an argument.
    pub const COMPLETE: &str = "completion/complete";
    /// Reads a resource.
    pub const RESOURCES_READ: &str = "resources/read";
    /// Subscribes to a resource (legacy).
    pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
    /// Unsubscribes from a resource (legacy).
    pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
    /// A resource changed.
    pub const RESOURCES_UPDATED: &str = "notifications/resources/updated";
    /// A request was cancelled.
    pub const CANCELLED: &str = "notifications/cancelled";
    /// A log message of the server.
    pub const LOG_MESSAGE: &str = "notifications/message";
    /// Progress of a request that gave a progress token.
    pub const PROGRESS: &str = "notifications/progress";
    /// The client's roots changed.
    pub const ROOTS_LIST_CHANGED: &str = "notifications/roots/list_changed";
    /// Lists the tools.
    pub const TOOLS_LIST: &str = "tools/list";
    /// Lists the prompts.
    pub const PROMPTS_LIST: &str = "prompts/list";
    /// Lists the resources.
    pub const RESOURCES_LIST: &str = "resources/list";
    /// Lists the resource templates.
    pub const RESOURCE_TEMPLATES_LIST: &str = "resources/templates/list";
    /// The tool list changed.
    pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
    /// The prompt list changed.
    pub const PROMPTS_LIST_CHANGED: &str = "notifications/prompts/list_changed";
    /// The resource list (or its templates) changed.
    pub const RESOURCES_LIST_CHANGED: &str = "notifications/resources/list_changed";
    /// The suffix of every list-changed notification.
    pub const LIST_CHANGED_SUFFIX: &str = "/list_changed";

    /// True for a server's notification that one of its lists changed (the client's roots are not its).
    pub fn is_server_list_changed(name: &str) -> bool {
        name.ends_with(LIST_CHANGED_SUFFIX) && name != ROOTS_LIST_CHANGED
    }
    /// Tasks extension: a task's state, with its result inlined once it ended.
    pub const TASKS_GET: &str = "tasks/get";
    /// Tasks extension: answers to the input a task waits for.
    pub const TASKS_UPDATE: &str = "tasks/update";
    /// Tasks extension: asks a task to stop.
    pub const TASKS_CANCEL: &str = "tasks/cancel";
    /// Methods the 2026-07-28 revision removed: on its wire they are answered HTTP 404 and -32601.
    pub const REMOVED_IN_MODERN: [&str; 5] = [INITIALIZE, PING, SET_LEVEL, RESOURCES_SUBSCRIBE, RESOURCES_UNSUBSCRIBE];
}

/// `resultType` (2026-07-28): what kind of result a response carries.
pub mod result_type {
    /// The member's name.
    pub const KEY: &str = "resultType";
    /// A final result.
    pub const COMPLETE: &str = "complete";
}

/// Removes the 2026-07-28 `_meta` keys before a message reaches a session-era server (some refuse
/// a request that carries them on a session).
pub fn strip_modern_meta(message: &mut Value) {
    let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else {
        return;
    };
    meta.retain(|key, _| !key.starts_with(meta::RESERVED_PREFIX));
    if meta.is_empty() {
        params.remove("_meta");
    }
}

/// The `params._meta` object of a message, made where it is missing and put in place of anything that
/// is not an object (what a peer wrote there must not stop mcplex from writing its own keys); `None` for
/// a message that is not an object.
pub fn meta_object(message: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let params = message.as_object_mut()?.entry("params").or_insert_with(|| json!({}));
    if !params.is_object() {
        *params = json!({});
    }
    let meta = params.as_object_mut()?.entry("_meta").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut()
}

/// Gives a result mcplex wrote itself the shape the client's era expects (`resultType` in 2026-07-28).
pub fn own_result(era: Era, mut result: serde_json::Value) -> serde_json::Value {
    if era == Era::Modern
        && let Some(object) = result.as_object_mut()
    {
        object.insert(result_type::KEY.into(), result_type::COMPLETE.into());
    }
    result
}

/// Cache hints of 2026-07-28 results (`ttlMs`, `cacheScope`), which results of some methods must carry.
pub mod cache {
    /// How long the result stays fresh, in milliseconds.
    pub const TTL_MS: &str = "ttlMs";
    /// Who may share a cached copy (`public` or `private`).
    pub const SCOPE: &str = "cacheScope";
    /// The scope of a result cached for its caller alone.
    pub const PRIVATE: &str = "private";
    /// The methods whose results carry both.
    pub const METHODS: [&str; 6] = [
        super::method::TOOLS_LIST,
        super::method::PROMPTS_LIST,
        super::method::RESOURCES_LIST,
        super::method::RESOURCE_TEMPLATES_LIST,
        super::method::RESOURCES_READ,
        super::method::DISCOVER,
    ];
}

/// Multi round-trip requests (2026-07-28): a result that asks the client for input, and the retry
/// that carries the answers.
pub mod mrtr {
    /// `resultType` of a result that asks for input.
    pub const INPUT_REQUIRED: &str = "input_required";
    /// The result's map of named requests to the client (`{method, params}` each).
    pub const INPUT_REQUESTS: &str = "inputRequests";
    /// The retry's map of the client's results, under the same names.
    pub const INPUT_RESPONSES: &str = "inputResponses";
    /// Opaque state the retry carries back.
    pub const REQUEST_STATE: &str = "requestState";
    /// Requests a target may ask for, with the client capability each needs.
    pub const INPUT_METHODS: [(&str, &str); 3] = [
        ("elicitation/create", "elicitation"),
        ("sampling/createMessage", "sampling"),
        ("roots/list", "roots"),
    ];

    /// The client capability a request of `method` needs; `None` for a method clients are not asked.
    pub fn capability_for(method: &str) -> Option<&'static str> {
        INPUT_METHODS
            .iter()
            .find(|(known, _)| *known == method)
            .map(|(_, capability)| *capability)
    }
}

/// The tasks extension (SEP-2663, 2026-07-28 era): a target may answer `tools/call` with a task that the
/// client then polls by its id.
pub mod tasks {
    /// The extension's key under `capabilities.extensions`.
    pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";
    /// The field naming a task, at the top of results and in the params of `tasks/*` requests.
    pub const TASK_ID: &str = "taskId";
    /// The methods that name a task, routed to the target that created it.
    pub const METHODS: [&str; 3] = [
        super::method::TASKS_GET,
        super::method::TASKS_UPDATE,
        super::method::TASKS_CANCEL,
    ];
}

/// mcplex's own identity, used where it speaks for itself (probes, catalog fetches, results it writes).
pub fn mcplex_identity() -> Value {
    json!({ "name": "mcplex", "version": env!("CARGO_PKG_VERSION") })
}

/// Request `_meta` for 2026-07-28 requests mcplex sends on its own behalf.
pub fn mcplex_client_meta() -> Value {
    json!({
        meta::PROTOCOL_VERSION: MODERN_VERSION,
        meta::CLIENT_INFO: mcplex_identity(),
        meta::CLIENT_CAPABILITIES: {},
    })
}

/// Who a downstream client is: carried to modern targets in `_meta`, to legacy ones in `initialize`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientContext {
    /// The client's session-era protocol version (for legacy sessions opened on its behalf).
    pub protocol_version: String,
    /// The client's `clientInfo`.
    pub client_info: Value,
    /// The client's capabilities.
    pub capabilities: Value,
    /// `client_info` and `capabilities` as JSON text, written once: a relayed request that lacks them gets
    /// them copied in on every call.
    encoded: [Box<str>; 2],
}

impl ClientContext {
    /// A client's context; its `clientInfo` and capabilities are encoded here, once.
    pub fn new(protocol_version: impl Into<String>, client_info: Value, capabilities: Value) -> Self {
        let encoded = [&client_info, &capabilities].map(|value| value.to_string().into_boxed_str());
        Self {
            protocol_version: protocol_version.into(),
            client_info,
            capabilities,
            encoded,
        }
    }

    /// mcplex speaking for itself.
    pub fn mcplex() -> Self {
        Self::new(LATEST_LEGACY_VERSION, mcplex_identity(), json!({}))
    }

    /// mcplex fetching lists (and the shared session with a session-era target): it declares every
    /// capability it can carry to clients, because servers list tools that need sampling, elicitation or
    /// roots only to clients that declare them. A call from a client that cannot answer such a request
    /// gets the target's error at once (the request is refused for it), never a hang.
    pub fn catalog() -> Self {
        Self::new(
            LATEST_LEGACY_VERSION,
            mcplex_identity(),
            json!({ "sampling": {}, "elicitation": {}, "roots": { "listChanged": true } }),
        )
    }

    /// `clientInfo` as JSON text.
    pub fn client_info_json(&self) -> &str {
        &self.encoded[0]
    }

    /// The capabilities as JSON text.
    pub fn capabilities_json(&self) -> &str {
        &self.encoded[1]
    }

    /// `initialize` params for a legacy session opened for this client.
    pub fn initialize_params(&self) -> Value {
        json!({ "protocolVersion": self.protocol_version, "capabilities": self.capabilities, "clientInfo": self.client_info })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_eras() {
        assert_eq!(Era::of_version("2026-07-28"), Some(Era::Modern));
        assert_eq!(Era::of_version("2025-03-26"), Some(Era::Legacy));
        assert_eq!(Era::of_version("2024-11-05"), None);
    }

    #[test]
    fn media_types_match_without_case_or_parameters() {
        assert!(is_media_type("application/json", JSON_MEDIA_TYPE));
        assert!(is_media_type(" Application/JSON; charset=utf-8", JSON_MEDIA_TYPE));
        assert!(is_media_type("TEXT/event-stream", SSE_MEDIA_TYPE));
        assert!(!is_media_type("application/js", JSON_MEDIA_TYPE));
        assert!(!is_media_type("text/plain", SSE_MEDIA_TYPE));
        assert!(!is_media_type("", JSON_MEDIA_TYPE));
        // A multi-byte character where the type would end is not a match (and no panic).
        assert!(!is_media_type("application/jsoñ", JSON_MEDIA_TYPE));
    }
}
