//! Turns a parsed [`ConfigFile`] into a checked [`Config`], naming the key path of every problem.

use super::checks::{check_readable, check_tls, check_url};
use super::duration::parse_duration;
use super::schema::{
    AuthSpec, ConfigFile, ExposedFilterSpec, FilterSpec, InboundSpec, JwtSpec, PinsSpec, PolicySpec, ProtocolChoice,
    TargetSpec, TlsSpec, TokenExchangeSpec, WithoutCaller,
};
use super::search::{ToolSearch, check_tool_search};
use crate::catalog::pins::{Digest, PinSet, Pinning};
use crate::config::inbound::{DEFAULT_LEEWAY, InboundJwt, KeySource};
use crate::jwks::Keys;
use crate::policy::Policy;
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Deadline used when a target sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A config that passed every check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Targets in priority order.
    pub targets: Vec<TargetConfig>,
    /// Agent roles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// Validation of the caller's token, when on.
    pub inbound: Option<InboundJwt>,
    /// Per-call rules, when set.
    pub policy: Option<Arc<Policy>>,
    /// Tool search, when on (after [`super::select_profile`], the pod's profile's own when it has one).
    pub tool_search: Option<ToolSearch>,
}

/// One checked agent role.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Names of existing targets.
    pub targets: Vec<String>,
    /// Filter on exposed tool names.
    pub tools: ExposedFilterSpec,
    /// The role's own tool search, replacing the top-level one.
    pub tool_search: Option<ToolSearch>,
}

/// One checked target with its defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// Unique DNS-label name.
    pub name: String,
    /// Endpoint URL.
    pub url: http::Uri,
    /// Prefix for exposed names (may be empty).
    pub prefix: String,
    /// TLS files, for `https` targets.
    pub tls: Option<TlsSpec>,
    /// Outbound credentials.
    pub auth: Option<AuthSpec>,
    /// Tool filter and renames.
    pub tools: FilterSpec,
    /// Prompt filter and renames.
    pub prompts: FilterSpec,
    /// Per-request deadline.
    pub timeout: Duration,
    /// Pinned or probed protocol era.
    pub protocol: ProtocolChoice,
    /// Filter on exposed tool names, from the pod's profile (empty: every tool).
    pub exposed_tools: ExposedFilterSpec,
    /// How definitions are checked against `pins`.
    pub pinning: Pinning,
    /// Approved digests; `None` pins what the target first lists (when pinning is on).
    pub pins: Option<PinSet>,
}

/// One thing wrong with the config, at a key path such as `targets[1].url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where in the file.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Checks every target and returns all problems found, not just the first.
pub fn validate(file: ConfigFile) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut seen_names = HashSet::new();
    let mut targets = Vec::with_capacity(file.targets.len());
    for (index, spec) in file.targets.into_iter().enumerate() {
        let mut report = |key: &str, message: String| {
            problems.push(Problem {
                path: format!("targets[{index}]{}{key}", if key.is_empty() { "" } else { "." }),
                message,
            })
        };
        if !seen_names.insert(spec.name.clone()) {
            report("name", format!("`{}` is used by an earlier target", spec.name));
        }
        if let Some(target) = check_target(spec, &mut report) {
            targets.push(target);
        }
    }
    let mut profiles = BTreeMap::new();
    for (name, spec) in file.profiles {
        let mut report = |key: &str, message: String| {
            problems.push(Problem {
                path: format!("profiles.{name}{}{key}", if key.is_empty() { "" } else { "." }),
                message,
            })
        };
        if !is_dns_label(&name) {
            report(
                "",
                format!("`{name}` is not a DNS label (a-z, 0-9 and '-', as in the mcplex.dev/profile annotation)"),
            );
        }
        if spec.targets.is_empty() {
            report("targets", "list at least one target".into());
        }
        for (i, target) in spec.targets.iter().enumerate() {
            if !seen_names.contains(target) {
                report(&format!("targets[{i}]"), format!("no target is named `{target}`"));
            }
        }
        for (list, globs) in [("allow", &spec.tools.allow), ("deny", &spec.tools.deny)] {
            for (i, glob) in globs.iter().enumerate() {
                if glob.is_empty() {
                    report(&format!("tools.{list}[{i}]"), "an empty pattern matches nothing".into());
                }
            }
        }
        let tool_search = spec.tool_search.map(|search| {
            check_tool_search(search, &mut |key, message| {
                report(&format!("toolSearch.{key}"), message)
            })
        });
        profiles.insert(
            name,
            Profile {
                targets: spec.targets,
                tools: spec.tools,
                tool_search,
            },
        );
    }
    let tool_search = file.tool_search.map(|search| {
        check_tool_search(search, &mut |key, message| {
            problems.push(Problem {
                path: format!("toolSearch.{key}"),
                message,
            })
        })
    });
    let inbound = file.inbound.and_then(|spec| check_inbound(spec, &mut problems));
    let policy = file.policy.and_then(|spec| check_policy(&spec, &mut problems));
    if inbound.is_none() {
        for (index, target) in targets.iter().enumerate() {
            if target.auth.as_ref().is_some_and(|a| a.token_exchange.is_some()) {
                problems.push(Problem {
                    path: format!("targets[{index}].auth.tokenExchange"),
                    message: "needs inbound.jwt: only a caller's validated token is ever exchanged".into(),
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(Config {
            targets,
            profiles,
            inbound,
            policy,
            tool_search,
        })
    } else {
        Err(problems)
    }
}

fn check_target(spec: TargetSpec, report: &mut impl FnMut(&str, String)) -> Option<TargetConfig> {
    let mut failed = false;
    let mut fail = |key: &str, message: String| {
        failed = true;
        report(key, message)
    };
    if !is_dns_label(&spec.name) {
        fail(
            "name",
            format!(
                "`{}` is not a DNS label (1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit)",
                spec.name
            ),
        );
    }
    let url = check_url(&spec.url, spec.tls.is_some())
        .map_err(|e| fail("url", e.to_string()))
        .ok();
    let prefix = spec.prefix.clone().unwrap_or_else(|| spec.name.clone());
    if prefix.len() > 64 || !prefix.chars().all(crate::protocol::is_name_char) {
        fail(
            "prefix",
            format!("`{prefix}` may only hold A-Z, a-z, 0-9, '_', '.', '-' (at most 64)"),
        );
    }
    if let Some(tls) = &spec.tls {
        check_tls(tls, &mut fail);
    }
    if let Some(auth) = &spec.auth {
        check_auth(auth, &mut fail);
    }
    check_filter("tools", &spec.tools, &mut fail);
    check_filter("prompts", &spec.prompts, &mut fail);
    let pins = spec
        .pins
        .as_ref()
        .and_then(|pins| check_pins(spec.pinning, pins, &mut fail));
    let timeout = match &spec.timeout {
        None => Some(DEFAULT_TIMEOUT),
        Some(text) => parse_duration(text).map_err(|e| fail("timeout", e.to_string())).ok(),
    };
    if failed {
        return None;
    }
    Some(TargetConfig {
        name: spec.name,
        url: url?,
        prefix,
        tls: spec.tls,
        auth: spec.auth,
        tools: spec.tools,
        prompts: spec.prompts,
        timeout: timeout?,
        protocol: spec.protocol,
        exposed_tools: ExposedFilterSpec::default(),
        pinning: spec.pinning,
        pins,
    })
}

fn check_pins(mode: Pinning, spec: &PinsSpec, fail: &mut impl FnMut(&str, String)) -> Option<PinSet> {
    if mode == Pinning::Off {
        fail(
            "pins",
            "pins are only checked with `pinning: warn` or `pinning: enforce`; set one, or remove the pins".into(),
        );
        return None;
    }
    let mut pins = PinSet::default();
    let mut ok = true;
    for (kind, given, parsed) in [
        ("tools", &spec.tools, &mut pins.tools),
        ("prompts", &spec.prompts, &mut pins.prompts),
    ] {
        for (name, digest) in given {
            match digest.parse::<Digest>() {
                Ok(digest) => {
                    parsed.insert(name.clone(), digest);
                }
                Err(error) => {
                    ok = false;
                    fail(&format!("pins.{kind}.{name}"), error.to_string());
                }
            }
        }
    }
    ok.then_some(pins)
}

fn check_inbound(spec: InboundSpec, problems: &mut Vec<Problem>) -> Option<InboundJwt> {
    let jwt = spec.jwt?;
    let mut report = |key: &str, message: String| {
        problems.push(Problem {
            path: format!("inbound.jwt.{key}"),
            message,
        })
    };
    check_jwt(jwt, &mut report)
}

fn check_jwt(jwt: JwtSpec, report: &mut impl FnMut(&str, String)) -> Option<InboundJwt> {
    let mut failed = false;
    let mut fail = |key: &str, message: String| {
        failed = true;
        report(key, message)
    };
    if jwt.issuer.is_empty() {
        fail("issuer", "must be the issuer's URL, as in the tokens' `iss`".into());
    }
    if jwt.audiences.is_empty() || jwt.audiences.iter().any(String::is_empty) {
        fail("audiences", "list at least one non-empty audience".into());
    }
    let keys = match (&jwt.jwks.file, &jwt.jwks.url) {
        (Some(file), None) => match std::fs::read(file) {
            Ok(text) => Keys::parse(&text, &format!("`{}`", file.display()))
                .map(|_| KeySource::File(file.clone()))
                .map_err(|e| fail("jwks.file", e.to_string()))
                .ok(),
            Err(e) => {
                fail("jwks.file", format!("cannot read `{}`: {e}", file.display()));
                None
            }
        },
        (None, Some(url)) => check_url(url, false)
            .map(|url| KeySource::Url {
                url,
                ca: jwt.jwks.ca.clone(),
                token_file: jwt.jwks.token_file.clone(),
            })
            .map_err(|e| fail("jwks.url", e.to_string()))
            .ok(),
        _ => {
            fail("jwks", "set exactly one of file, url".into());
            None
        }
    };
    if let Some(ca) = &jwt.jwks.ca {
        check_readable(ca).unwrap_or_else(|e| fail("jwks.ca", e.to_string()));
    }
    if let Some(token) = &jwt.jwks.token_file {
        if jwt.jwks.url.is_none() {
            fail(
                "jwks.tokenFile",
                "a token is presented only when fetching a url; set jwks.url".into(),
            );
        }
        check_readable(token).unwrap_or_else(|e| fail("jwks.tokenFile", e.to_string()));
    }
    if let Some(resource) = &jwt.resource {
        check_url(resource, false)
            .map(drop)
            .unwrap_or_else(|e| fail("resource", e.to_string()));
    }
    let leeway = match &jwt.leeway {
        None => Some(DEFAULT_LEEWAY),
        Some(text) => parse_duration(text).map_err(|e| fail("leeway", e.to_string())).ok(),
    };
    if failed {
        return None;
    }
    Some(InboundJwt {
        issuer: jwt.issuer,
        audiences: jwt.audiences,
        keys: keys?,
        resource: jwt.resource,
        leeway: leeway?,
        scopes: jwt.scopes,
    })
}

fn check_policy(spec: &PolicySpec, problems: &mut Vec<Problem>) -> Option<Arc<Policy>> {
    match Policy::parse(&spec.cedar) {
        Ok(policy) => Some(Arc::new(policy)),
        Err(found) => {
            problems.extend(found.into_iter().map(|p| Problem {
                path: "policy.cedar".into(),
                message: if p.line == 0 {
                    p.message
                } else {
                    format!("line {}, column {}: {}", p.line, p.column, p.message)
                },
            }));
            None
        }
    }
}

fn check_exchange(exchange: &TokenExchangeSpec, fail: &mut impl FnMut(&str, String)) {
    check_url(&exchange.token_endpoint, false)
        .map(drop)
        .unwrap_or_else(|e| fail("auth.tokenExchange.tokenEndpoint", e.to_string()));
    if exchange.audience.is_none() && exchange.resource.is_none() {
        fail(
            "auth.tokenExchange",
            "set audience, resource or both: the exchanged token must be meant for this target".into(),
        );
    }
    if exchange.client_id.is_some() != exchange.client_secret_file.is_some() {
        fail(
            "auth.tokenExchange",
            "`clientId` and `clientSecretFile` go together".into(),
        );
    }
    if let Some(file) = &exchange.client_secret_file {
        check_readable(file).unwrap_or_else(|e| fail("auth.tokenExchange.clientSecretFile", e.to_string()));
    }
    if let Some(ca) = &exchange.ca {
        check_readable(ca).unwrap_or_else(|e| fail("auth.tokenExchange.ca", e.to_string()));
    }
    if exchange.actor_path.is_some() && exchange.actor_audience.is_none() {
        fail(
            "auth.tokenExchange.actorPath",
            "needs actorAudience (the audience of the pod's token sent as the actor)".into(),
        );
    }
    match &exchange.without_caller {
        Some(WithoutCaller::ClientCredentials) if exchange.client_id.is_none() => fail(
            "auth.tokenExchange.withoutCaller",
            "clientCredentials needs clientId and clientSecretFile (mcplex's own client at the token endpoint)".into(),
        ),
        Some(WithoutCaller::ServiceAccountToken(token)) if !is_audience(&token.audience) => fail(
            "auth.tokenExchange.withoutCaller.serviceAccountToken.audience",
            "must be non-empty, without spaces or commas (pods list audiences comma-separated)".into(),
        ),
        _ => {}
    }
}

/// True for an audience a pod can list in `mcplex.dev/token-audiences`.
fn is_audience(audience: &str) -> bool {
    !audience.is_empty() && !audience.contains(|c: char| c.is_whitespace() || c == ',')
}

fn check_auth(auth: &AuthSpec, fail: &mut impl FnMut(&str, String)) {
    if auth.passthrough.is_some() {
        fail(
            "auth.passthrough",
            "is not supported: mcplex never forwards the agent's own token; give the target its own credential with serviceAccountToken or header".into(),
        );
    }
    let chosen = usize::from(auth.service_account_token.is_some())
        + usize::from(auth.header.is_some())
        + usize::from(auth.token_exchange.is_some());
    if chosen != 1 && auth.passthrough.is_none() {
        fail(
            "auth",
            "set exactly one of serviceAccountToken, header, tokenExchange".into(),
        );
    }
    if let Some(exchange) = &auth.token_exchange {
        check_exchange(exchange, fail);
    }
    if let Some(token) = &auth.service_account_token
        && !is_audience(&token.audience)
    {
        fail(
            "auth.serviceAccountToken.audience",
            "must be non-empty, without spaces or commas (pods list audiences comma-separated)".into(),
        );
    }
    if let Some(header) = &auth.header {
        if http::HeaderName::from_bytes(header.name.as_bytes()).is_err() {
            fail(
                "auth.header.name",
                format!("`{}` is not a valid HTTP header name", header.name),
            );
        }
        check_readable(&header.value_file).unwrap_or_else(|e| fail("auth.header.valueFile", e.to_string()));
    }
}

fn check_filter(kind: &str, filter: &FilterSpec, fail: &mut impl FnMut(&str, String)) {
    for (list, globs) in [("allow", &filter.allow), ("deny", &filter.deny)] {
        for (i, glob) in globs.iter().enumerate() {
            if glob.is_empty() {
                fail(
                    &format!("{kind}.{list}[{i}]"),
                    "an empty pattern matches nothing".into(),
                );
            }
        }
    }
    for (from, to) in &filter.rename {
        if to.is_empty() || to.len() > 128 || !to.chars().all(crate::protocol::is_name_char) {
            fail(
                &format!("{kind}.rename.{from}"),
                format!("`{to}` may only hold A-Z, a-z, 0-9, '_', '.', '-' (1 to 128)"),
            );
        }
    }
}

fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}
