//! The config file as users write it (YAML, camelCase keys, unknown keys rejected).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Upstream MCP servers, in priority order (the first one keeps a contested name).
    #[serde(default)]
    pub targets: Vec<TargetSpec>,
    /// Agent roles: a pod that names one (`mcplex.dev/profile`) sees only its targets and tools.
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileSpec>,
}

/// One agent role: the targets it may use and, optionally, which of their tools.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// Names of targets in `targets`.
    pub targets: Vec<String>,
    /// Globs of exposed tool names (as the agent sees them, prefix included) to keep or hide.
    #[serde(default)]
    pub tools: ExposedFilterSpec,
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
