//! The config file as users write it (YAML, camelCase keys, unknown keys rejected).

pub use crate::catalog::pins::Pinning;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigFile {
    /// Upstream MCP servers, in priority order (the first one keeps a contested name).
    #[serde(default)]
    pub targets: Vec<TargetSpec>,
    /// Agent roles: a pod that names one (`mcplex.dev/profile`) sees only its targets and tools.
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileSpec>,
    /// Who may call: validation of the caller's bearer token (off when absent).
    pub inbound: Option<InboundSpec>,
    /// Which caller may use which tool, prompt and resource (everything is allowed when absent).
    pub policy: Option<PolicySpec>,
    /// Agents find tools with `find_tools` instead of getting every tool listed (absent: every tool is listed).
    pub tool_search: Option<ToolSearchSpec>,
}

/// Tool search: `tools/list` holds the `visible` tools and mcplex's `find_tools` and `call_tool`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSearchSpec {
    /// Globs (`*`, `?`) of exposed tool names that stay listed beside the search tools.
    #[serde(default)]
    pub visible: Vec<String>,
    /// How many matches a search returns when the agent does not say (1 to 50).
    pub results: Option<usize>,
    /// A sentence-embedding endpoint whose vectors add a semantic signal to the ranking (absent: lexical only).
    pub embeddings: Option<EmbeddingsSpec>,
}

/// An OpenAI-compatible `/v1/embeddings` endpoint the platform runs (text-embeddings-inference, vLLM,
/// Ollama, Infinity and the like).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmbeddingsSpec {
    /// The endpoint's full URL, e.g. `http://embedder.ai.svc:8080/v1/embeddings`.
    pub url: String,
    /// The model name sent in each request.
    pub model: String,
    /// A file holding an API key, sent as a bearer token (read at every request, so a rotated Secret applies).
    pub api_key_file: Option<PathBuf>,
    /// Deadline of one request, e.g. `2s` (the default).
    pub timeout: Option<String>,
    /// TLS to the endpoint (a CA bundle, a client certificate).
    pub tls: Option<TlsSpec>,
}

/// Checks applied to every request from the agent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundSpec {
    /// Require a bearer JWT and validate it.
    pub jwt: Option<JwtSpec>,
}

/// How a caller's bearer JWT is validated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtSpec {
    /// The `iss` the token must carry; also announced as the authorization server (RFC 9728).
    pub issuer: String,
    /// The token's `aud` must hold one of these.
    pub audiences: Vec<String>,
    /// Where the issuer's signing keys are.
    pub jwks: JwksSpec,
    /// The resource identifier announced in the protected resource metadata; defaults to the URL the
    /// agent used (`http://<Host>/mcp`).
    pub resource: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, e.g. `30s` (the default).
    pub leeway: Option<String>,
    /// Scopes announced in the protected resource metadata.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A JSON Web Key Set, from a file or a URL: set exactly one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwksSpec {
    /// A mounted file, re-read when a token names a key it does not hold.
    pub file: Option<PathBuf>,
    /// An `http(s)` URL, fetched at first use and again when a token names an unknown key.
    pub url: Option<String>,
    /// A PEM CA bundle for an https `url` (the system roots otherwise).
    pub ca: Option<PathBuf>,
    /// A bearer token to present when fetching `url`, read again for every fetch (a Kubernetes API server
    /// serves its ServiceAccount issuer's keys only to callers with a token, such as the pod's own).
    pub token_file: Option<PathBuf>,
}

/// Per-call authorization rules.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Cedar policies; a call is allowed when some `permit` matches and no `forbid` does.
    pub cedar: String,
}

/// One agent role: the targets it may use and, optionally, which of their tools.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfileSpec {
    /// Names of targets in `targets`.
    pub targets: Vec<String>,
    /// Globs of exposed tool names (as the agent sees them, prefix included) to keep or hide.
    #[serde(default)]
    pub tools: ExposedFilterSpec,
    /// Tool search for this role; replaces the top-level `toolSearch`.
    pub tool_search: Option<ToolSearchSpec>,
}

/// Allow/deny globs on exposed names.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExposedFilterSpec {
    /// Globs (`*`, `?`) of exposed names to keep; empty means all.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Globs of exposed names to hide; wins over `allow`.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// One upstream MCP server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetSpec {
    /// DNS-label style name, unique in the file.
    pub name: String,
    /// Streamable HTTP endpoint of the server.
    pub url: String,
    /// Prefix joined to exposed names with `_`; defaults to the name, `""` keeps names as they are.
    pub prefix: Option<String>,
    /// TLS files for an `https` URL.
    pub tls: Option<TlsSpec>,
    /// Credentials presented to the server.
    pub auth: Option<AuthSpec>,
    /// Which tools are exposed and under what names.
    #[serde(default)]
    pub tools: FilterSpec,
    /// Which prompts are exposed and under what names.
    #[serde(default)]
    pub prompts: FilterSpec,
    /// Per-request deadline, e.g. `30s` (progress notifications extend it).
    pub timeout: Option<String>,
    /// Which protocol era to speak; `auto` probes.
    #[serde(default)]
    pub protocol: ProtocolChoice,
    /// Whether tool and prompt definitions are checked against `pins`.
    #[serde(default)]
    pub pinning: Pinning,
    /// Approved digests of the target's tools and prompts (`mcplex pins` prints them).
    pub pins: Option<PinsSpec>,
}

/// Approved definitions: the target's own item name to the SHA-256 (hex) of its RFC 8785 canonical JSON.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinsSpec {
    /// Tools by the target's name for them.
    #[serde(default)]
    pub tools: BTreeMap<String, String>,
    /// Prompts by the target's name for them.
    #[serde(default)]
    pub prompts: BTreeMap<String, String>,
}

/// TLS settings: a CA bundle to trust, and optionally a client certificate for mTLS.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsSpec {
    /// PEM bundle of trusted CAs; the system roots are used when absent.
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain (mTLS).
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// Name to verify in the server certificate, when it differs from the URL host.
    pub server_name: Option<String>,
}

/// Outbound credentials for one target: set exactly one of the fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthSpec {
    /// A projected ServiceAccount token, sent as a bearer token.
    pub service_account_token: Option<ServiceAccountTokenAuth>,
    /// A header whose value is read from a file (a mounted Secret).
    pub header: Option<HeaderAuth>,
    /// On-Behalf-Of: the caller's validated token exchanged (RFC 8693) for one meant for this target.
    pub token_exchange: Option<TokenExchangeSpec>,
    /// Removed: mcplex never forwards the agent's own token. Still parsed so the error can say why.
    pub passthrough: Option<bool>,
}

/// A projected ServiceAccount token.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceAccountTokenAuth {
    /// The audience the token must be minted for; mcplex checks the token's `aud` before sending it.
    pub audience: String,
    /// The token file, or a directory of projected tokens searched for one with this audience;
    /// defaults to the directory the webhook projects into (`/var/run/secrets/mcplex`).
    pub path: Option<PathBuf>,
}

/// An RFC 8693 token exchange at an authorization server, on behalf of the caller.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenExchangeSpec {
    /// The authorization server's token endpoint.
    pub token_endpoint: String,
    /// The `audience` asked for (the target's logical name at the authorization server).
    pub audience: Option<String>,
    /// The `resource` asked for (the target's URI, RFC 8707).
    pub resource: Option<String>,
    /// The `scope` asked for.
    pub scope: Option<String>,
    /// The pod's projected ServiceAccount token with this audience is sent as the `actor_token`.
    pub actor_audience: Option<String>,
    /// Where the projected actor token is (file or directory); the webhook's directory by default.
    pub actor_path: Option<PathBuf>,
    /// Client id for client authentication at the token endpoint (HTTP Basic).
    pub client_id: Option<String>,
    /// File holding the client secret (a mounted Secret).
    pub client_secret_file: Option<PathBuf>,
    /// A PEM CA bundle for an https token endpoint (the system roots otherwise).
    pub ca: Option<PathBuf>,
    /// The credential for work no caller asked for (list fetches, probes); `exchange` when absent.
    pub without_caller: Option<WithoutCaller>,
}

/// How a target behind a token exchange is reached when no caller is behind the request (mcplex fetching
/// its lists or probing its era): there is no caller's token to exchange then.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "WithoutCallerText")]
pub enum WithoutCaller {
    /// The pod's own token (the `actorAudience` token) is exchanged as the subject; no credential without
    /// an actor token. An authorization server that trusts only its own tokens refuses this.
    Exchange,
    /// mcplex's own client gets a token with the client credentials grant (RFC 6749 §4.4) at the same
    /// endpoint, for the same audience, resource and scope: needs `clientId` and `clientSecretFile`.
    ClientCredentials,
    /// The pod's projected ServiceAccount token minted for this audience, as `auth.serviceAccountToken` sends it.
    ServiceAccountToken(ServiceAccountTokenAuth),
    /// No credential: for a target that lists its tools to anyone.
    None,
}

/// `withoutCaller` as written: a name, or a map naming the token. (An enum with a payload would need a YAML
/// tag such as `!serviceAccountToken`; this keeps the plain map form the other keys use.)
#[derive(Deserialize)]
#[serde(untagged)]
enum WithoutCallerText {
    Name(String),
    Token(TokenChoice),
}

/// `{ serviceAccountToken: { audience, path } }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenChoice {
    service_account_token: ServiceAccountTokenAuth,
}

impl TryFrom<WithoutCallerText> for WithoutCaller {
    type Error = String;

    fn try_from(text: WithoutCallerText) -> Result<Self, String> {
        match text {
            WithoutCallerText::Token(choice) => Ok(Self::ServiceAccountToken(choice.service_account_token)),
            WithoutCallerText::Name(name) => match name.as_str() {
                "exchange" => Ok(Self::Exchange),
                "clientCredentials" => Ok(Self::ClientCredentials),
                "none" => Ok(Self::None),
                _ => Err(format!(
                    "`{name}` is not one of exchange, clientCredentials, none or {{ serviceAccountToken: {{ audience: ... }} }}"
                )),
            },
        }
    }
}

/// A header read from a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderAuth {
    /// Header name, e.g. `Authorization` or `X-Api-Key`.
    pub name: String,
    /// File holding the value; re-read periodically.
    pub value_file: PathBuf,
}

/// Allow/deny glob lists and a rename table for one kind of item.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Globs (`*`, `?`) of upstream names to expose; empty means all.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Globs of upstream names to hide; wins over `allow`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Upstream name to the name used before prefixing.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
}

/// Which protocol era a target speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolChoice {
    /// Probe with `server/discover`, fall back to `initialize`.
    #[default]
    Auto,
    /// Always speak 2026-07-28.
    Modern,
    /// Always speak the 2025 session protocol.
    Legacy,
}
