//! The config: its YAML schema, validation with key paths, loading, and the live watcher.

mod checks;
pub mod duration;
pub mod inbound;
pub mod schema;
pub mod search;
pub mod validate;
pub mod watch;

pub use search::{Embeddings, ToolSearch};
pub use validate::{Config, Problem, TargetConfig};

use std::path::{Path, PathBuf};

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not YAML of the expected shape (unknown keys, wrong types).
    #[error("config file {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the key path and line.
        message: String,
    },
    /// The sidecar was started for a profile the config does not define.
    #[error("config file {path} defines no profile `{profile}` (it defines: {defined})")]
    UnknownProfile {
        /// The file.
        path: PathBuf,
        /// The profile asked for.
        profile: String,
        /// The profiles the file defines, comma-separated.
        defined: String,
    },
    /// The file parsed but some values are wrong.
    #[error("config file {path} has {} problem(s):\n  {}", problems.len(), problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// Parses and validates config text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let file: schema::ConfigFile = if text.trim().is_empty() {
        schema::ConfigFile {
            targets: Vec::new(),
            profiles: Default::default(),
            inbound: None,
            policy: None,
            tool_search: None,
        }
    } else {
        yaml_serde::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?
    };
    validate::validate(file).map_err(|problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// The config as a pod with `profile` sees it: every target without a profile; else only the profile's
/// targets, each with the profile's tool filter.
pub fn select_profile(config: Config, profile: Option<&str>, path: &Path) -> Result<Config, ConfigError> {
    let Some(name) = profile else { return Ok(config) };
    let Some(chosen) = config.profiles.get(name).cloned() else {
        let defined: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
        return Err(ConfigError::UnknownProfile {
            path: path.to_owned(),
            profile: name.to_owned(),
            defined: if defined.is_empty() {
                "none".into()
            } else {
                defined.join(", ")
            },
        });
    };
    let targets = config
        .targets
        .into_iter()
        .filter(|t| chosen.targets.contains(&t.name))
        .map(|mut t| {
            t.exposed_tools = chosen.tools.clone();
            t
        })
        .collect();
    // The role's own tool search replaces the file's.
    let tool_search = chosen.tool_search.or(config.tool_search.clone());
    Ok(Config {
        targets,
        tool_search,
        ..config
    })
}

/// Reads, parses and validates the config file at `path`.
pub fn load(path: &Path) -> Result<(Config, String), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config = parse(&text, path)?;
    Ok((config, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> String {
        parse(text, Path::new("c.yaml")).unwrap_err().to_string()
    }

    #[test]
    fn accepts_the_design_example_and_fills_defaults() {
        let config = parse(
            "targets:\n  - name: math\n    url: http://math:8080/mcp\n    tools: { allow: [\"add\", \"mul*\"], rename: { add: plus } }\n    timeout: 5s\n  - name: date\n    url: https://date/mcp\n    prefix: \"\"\n    protocol: legacy\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        assert_eq!(config.targets[0].prefix, "math");
        assert_eq!(config.targets[0].timeout, std::time::Duration::from_secs(5));
        assert_eq!(config.targets[1].prefix, "");
        assert_eq!(config.targets[1].timeout, validate::DEFAULT_TIMEOUT);
        assert_eq!(config.targets[1].protocol, schema::ProtocolChoice::Legacy);
    }

    #[test]
    fn unknown_key_names_its_path() {
        let message = errors("targets:\n  - name: a\n    url: http://a/mcp\n    colour: red\n");
        assert!(message.contains("targets[0]"), "{message}");
        assert!(message.contains("colour"), "{message}");
    }

    #[test]
    fn semantic_problems_name_their_paths() {
        let message = errors(
            "targets:\n  - name: a\n    url: http://a/mcp\n  - name: a\n    url: ftp://b\n    timeout: 3\n  - name: Bad_Name\n    url: https://c/mcp\n    tls: { cert: /nonexistent/tls.crt }\n",
        );
        for expected in [
            "targets[1].name: `a` is used by an earlier target",
            "targets[1].url: `ftp://b` must start with http:// or https://",
            "targets[1].timeout: `3` has no unit",
            "targets[2].name: `Bad_Name` is not a DNS label",
            "targets[2].tls.cert: cannot read `/nonexistent/tls.crt`",
            "targets[2].tls: `cert` and `key` go together",
        ] {
            assert!(message.contains(expected), "missing {expected:?} in:\n{message}");
        }
    }

    #[test]
    fn identity_and_policy_problems_name_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, "{\"keys\": 3}").unwrap();
        let message = errors(&format!(
            "targets:\n  - name: a\n    url: http://a/mcp\n    auth: {{ tokenExchange: {{ tokenEndpoint: http://sts/token }} }}\ninbound:\n  jwt: {{ issuer: https://idp, audiences: [], jwks: {{ file: {} }} }}\npolicy:\n  cedar: |\n    permit(principal, action, resource);\n    forbid(principal action, resource);\n",
            jwks.display()
        ));
        for expected in [
            "inbound.jwt.audiences: list at least one",
            "inbound.jwt.jwks.file: `",
            "is not a JSON Web Key Set",
            "targets[0].auth.tokenExchange: set audience, resource or both",
            "policy.cedar: line 2, column",
        ] {
            assert!(message.contains(expected), "missing {expected:?} in:\n{message}");
        }
        let without_inbound = errors(
            "targets:\n  - name: a\n    url: http://a/mcp\n    auth: { tokenExchange: { tokenEndpoint: http://sts/token, audience: a } }\n",
        );
        assert!(
            without_inbound.contains("targets[0].auth.tokenExchange: needs inbound.jwt"),
            "{without_inbound}"
        );
    }

    #[test]
    fn pinning_problems_name_their_keys() {
        let good = "a".repeat(64);
        let message = errors(&format!(
            "targets:\n  - name: a\n    url: http://a/mcp\n    pins: {{ tools: {{ add: \"{good}\" }} }}\n  - name: b\n    url: http://b/mcp\n    pinning: enforce\n    pins: {{ tools: {{ add: \"{}\", sub: \"{good}\" }}, prompts: {{ ask: 12 }} }}\n",
            "A".repeat(64)
        ));
        for expected in [
            "targets[0].pins: pins are only checked with `pinning: warn` or `pinning: enforce`",
            "targets[1].pins.tools.add: `AAAA",
            "is not a SHA-256 digest: write 64 lowercase hex digits",
            "targets[1].pins.prompts.ask: `12` is not a SHA-256 digest",
        ] {
            assert!(message.contains(expected), "missing {expected:?} in:\n{message}");
        }
        let unknown = errors("targets:\n  - name: a\n    url: http://a/mcp\n    pinning: strict\n");
        assert!(
            unknown.contains("targets[0].pinning") && unknown.contains("strict"),
            "{unknown}"
        );
        let config = parse(
            &format!("targets:\n  - name: a\n    url: http://a/mcp\n    pinning: warn\n    pins: {{ tools: {{ add: \"{good}\" }} }}\n  - name: b\n    url: http://b/mcp\n"),
            Path::new("c.yaml"),
        )
        .unwrap();
        assert_eq!(config.targets[0].pinning, schema::Pinning::Warn);
        assert_eq!(config.targets[0].pins.as_ref().unwrap().tools["add"].to_string(), good);
        assert!(config.targets[0].pins.as_ref().unwrap().prompts.is_empty());
        assert_eq!(
            (config.targets[1].pinning, &config.targets[1].pins),
            (schema::Pinning::Off, &None)
        );
    }

    #[test]
    fn without_caller_takes_a_name_or_a_token_and_checks_what_each_needs() {
        let inbound = "inbound:\n  jwt: { issuer: https://idp, audiences: [m], jwks: { url: https://idp/jwks } }\n";
        let target = |without: &str| {
            format!(
                "targets:\n  - name: a\n    url: http://a/mcp\n    auth:\n      tokenExchange:\n        tokenEndpoint: http://sts/token\n        audience: a\n        withoutCaller: {without}\n{inbound}"
            )
        };
        let chosen = |without: &str| {
            let config = parse(&target(without), Path::new("c.yaml")).unwrap();
            let auth = config.targets[0].auth.clone().unwrap();
            auth.token_exchange.unwrap().without_caller.unwrap()
        };
        assert_eq!(chosen("none"), schema::WithoutCaller::None);
        assert_eq!(chosen("exchange"), schema::WithoutCaller::Exchange);
        assert_eq!(
            chosen("{ serviceAccountToken: { audience: a-mcp } }"),
            schema::WithoutCaller::ServiceAccountToken(schema::ServiceAccountTokenAuth {
                audience: "a-mcp".into(),
                path: None
            })
        );
        let message = errors(&target("clientCredentials"));
        assert!(
            message.contains("targets[0].auth.tokenExchange.withoutCaller: clientCredentials needs clientId"),
            "{message}"
        );
        let message = errors(&target("{ serviceAccountToken: { audience: \"a, b\" } }"));
        assert!(
            message.contains("withoutCaller.serviceAccountToken.audience: must be non-empty"),
            "{message}"
        );
        let message = errors(&target("sometimes"));
        assert!(
            message.contains("targets[0].auth.tokenExchange") && message.contains("`sometimes` is not one of exchange"),
            "{message}"
        );
    }

    #[test]
    fn tool_search_is_checked_and_a_profile_brings_its_own() {
        let text = "targets:\n  - name: a\n    url: http://a/mcp\ntoolSearch: { visible: [\"a_*\"] }\nprofiles:\n  sre: { targets: [a], toolSearch: { visible: [], results: 12 } }\n  dev: { targets: [a] }\n";
        let config = parse(text, Path::new("c.yaml")).unwrap();
        let top = config.tool_search.clone().unwrap();
        assert_eq!(
            (top.visible, top.results),
            (vec!["a_*".to_string()], search::DEFAULT_SEARCH_RESULTS)
        );
        let sre = select_profile(config.clone(), Some("sre"), Path::new("c.yaml")).unwrap();
        let search = sre.tool_search.unwrap();
        assert_eq!((search.visible.len(), search.results), (0, 12));
        let dev = select_profile(config, Some("dev"), Path::new("c.yaml")).unwrap();
        assert_eq!(
            dev.tool_search.unwrap().visible,
            ["a_*"],
            "without its own, a profile keeps the file's"
        );
        let message = errors(
            "toolSearch: { visible: [\"\"], results: 51 }\nprofiles:\n  p: { targets: [], toolSearch: { results: 0 } }\n",
        );
        for expected in [
            "toolSearch.results: 51 is out of range: a search returns 1 to 50 matches",
            "toolSearch.visible[0]: an empty pattern matches nothing",
            "profiles.p.toolSearch.results: 0 is out of range",
        ] {
            assert!(message.contains(expected), "missing {expected:?} in:\n{message}");
        }
    }

    #[test]
    fn empty_file_is_an_empty_config() {
        assert!(parse("", Path::new("c.yaml")).unwrap().targets.is_empty());
    }
}
