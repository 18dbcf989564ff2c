//! The sidecar settings a pod asks for through its `mcplex.dev/*` annotations, each one validated.

use serde_json::{Map, Value};

/// Annotation that opts a pod in.
pub const INJECT: &str = "mcplex.dev/inject";
/// Marker written on injected pods.
pub const STATUS: &str = "mcplex.dev/status";
/// Annotation naming the container `kubectl` picks by default.
pub const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// The MCP port inside the pod (DESIGN §2).
pub const DEFAULT_PORT: u16 = 15301;
/// The admin port (probes, metrics); fixed so probes and the Service stay simple.
pub const ADMIN_PORT: u16 = 15302;
/// Numeric user the sidecar runs as (matches the image's USER).
pub const RUN_AS_USER: i64 = 65532;

/// A `mcplex.dev/*` annotation whose value is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {annotation}={value:?} is invalid: {allowed}")]
pub struct AnnotationError {
    /// The annotation key.
    pub annotation: &'static str,
    /// The value found.
    pub value: String,
    /// What would be accepted.
    pub allowed: &'static str,
}

/// Everything the mutation needs to know, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// ConfigMap holding `config.yaml`.
    pub config_map: String,
    /// Secret with `tls.crt`, `tls.key`, `ca.crt`, when mTLS is wanted.
    pub tls_secret: Option<String>,
    /// Audiences to project ServiceAccount tokens for, one token file each (the targets' audiences).
    pub token_audiences: Vec<String>,
    /// Sidecar image.
    pub image: String,
    /// MCP port on loopback.
    pub port: u16,
    /// CPU request.
    pub cpu: String,
    /// Memory request and limit.
    pub memory: String,
    /// Sidecar log filter.
    pub log_level: String,
    /// Inject as a native sidecar (init container with `restartPolicy: Always`).
    pub native_sidecar: bool,
    /// The agent role (`profiles.<name>` of the config) the sidecar serves; `None` serves every target.
    pub profile: Option<String>,
}

/// Defaults that come from the webhook's own configuration rather than the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// Image used when the pod does not name one.
    pub image: String,
    /// The ConfigMaps a pod may name in `mcplex.dev/config`: this name, or this name followed by `-`
    /// and anything. The platform team owns those names; an agent team cannot point its sidecar at a
    /// ConfigMap of its own making.
    pub config_map_prefix: String,
}

/// The ConfigMap name pods get by default, and the default allowed prefix.
pub const DEFAULT_CONFIG_MAP: &str = "mcplex";

impl Default for Defaults {
    fn default() -> Self {
        Self {
            image: format!("ghcr.io/mcplex/mcplex:{}", env!("CARGO_PKG_VERSION")),
            config_map_prefix: DEFAULT_CONFIG_MAP.into(),
        }
    }
}

impl Defaults {
    /// True when a pod may use the ConfigMap `name`.
    pub fn allows_config_map(&self, name: &str) -> bool {
        name == self.config_map_prefix
            || name
                .strip_prefix(self.config_map_prefix.as_str())
                .is_some_and(|rest| rest.len() > 1 && rest.starts_with('-'))
    }
}

impl Settings {
    /// Reads and validates the annotations; the first invalid one is reported.
    pub fn from_annotations(annotations: &Map<String, Value>, defaults: &Defaults) -> Result<Self, AnnotationError> {
        let get = |key: &str| annotations.get(key).and_then(Value::as_str);
        let name = |key: &'static str, default: Option<&str>| -> Result<Option<String>, AnnotationError> {
            match get(key).or(default) {
                None => Ok(None),
                Some(value) if is_dns_subdomain(value) => Ok(Some(value.to_owned())),
                Some(value) => Err(invalid(
                    key,
                    value,
                    "a Kubernetes object name (lowercase a-z, 0-9, '-', '.', at most 253 characters)",
                )),
            }
        };
        let token_audiences = token_audiences(get(TOKEN_AUDIENCE), get(TOKEN_AUDIENCES))?;
        let image = match get("mcplex.dev/image") {
            Some(value) if !is_image_reference(value) => {
                return Err(invalid(
                    "mcplex.dev/image",
                    value,
                    "an image reference such as registry.example/mcplex:1.2.3 or ...@sha256:<64 hex>",
                ));
            }
            Some(value) => value.to_owned(),
            None => defaults.image.clone(),
        };
        let port = match get("mcplex.dev/port") {
            None => DEFAULT_PORT,
            Some(value) => match value.parse::<u16>() {
                Ok(port) if port >= 1024 && port != ADMIN_PORT => port,
                _ => {
                    return Err(invalid(
                        "mcplex.dev/port",
                        value,
                        "a port from 1024 to 65535, not the admin port 15302",
                    ));
                }
            },
        };
        let quantity = |key: &'static str, default: &str| match get(key) {
            None => Ok(default.to_owned()),
            Some(value) if is_quantity(value) => Ok(value.to_owned()),
            Some(value) => Err(invalid(
                key,
                value,
                "a Kubernetes quantity such as 100m, 0.5, 64Mi or 1G",
            )),
        };
        let log_level = match get("mcplex.dev/log-level") {
            None => "info".to_owned(),
            Some(value @ ("trace" | "debug" | "info" | "warn" | "error")) => value.to_owned(),
            Some(value) => {
                return Err(invalid(
                    "mcplex.dev/log-level",
                    value,
                    "one of trace, debug, info, warn, error",
                ));
            }
        };
        let profile = match get(PROFILE) {
            None => None,
            Some(value) if is_dns_label(value) => Some(value.to_owned()),
            Some(value) => {
                return Err(invalid(
                    PROFILE,
                    value,
                    "a profile name of the config (a DNS label: a-z, 0-9 and '-', at most 63 characters)",
                ));
            }
        };
        let native_sidecar = match get("mcplex.dev/native-sidecar") {
            None | Some("true") => true,
            Some("false") => false,
            Some(value) => return Err(invalid("mcplex.dev/native-sidecar", value, "\"true\" or \"false\"")),
        };
        Ok(Self {
            config_map: name("mcplex.dev/config", Some(DEFAULT_CONFIG_MAP))?.unwrap_or_default(),
            tls_secret: name("mcplex.dev/tls-secret", None)?,
            token_audiences,
            image,
            port,
            cpu: quantity("mcplex.dev/cpu", "50m")?,
            memory: quantity("mcplex.dev/memory", "128Mi")?,
            log_level,
            native_sidecar,
            profile,
        })
    }
}

/// Annotation naming the agent role the pod plays (a profile of the config).
pub const PROFILE: &str = "mcplex.dev/profile";

/// True for a DNS label: 1-63 of a-z, 0-9 and '-', starting and ending with a letter or digit.
fn is_dns_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Annotation listing the audiences (comma-separated) the pod's targets expect tokens for.
pub const TOKEN_AUDIENCES: &str = "mcplex.dev/token-audiences";
/// Annotation naming one audience (the older, single-target form of [`TOKEN_AUDIENCES`]).
pub const TOKEN_AUDIENCE: &str = "mcplex.dev/token-audience";
/// Most tokens one pod may have projected (each is a file the kubelet keeps refreshing).
pub const MAX_TOKEN_AUDIENCES: usize = 32;

/// Both audience annotations merged, in order, without repeats.
fn token_audiences(single: Option<&str>, list: Option<&str>) -> Result<Vec<String>, AnnotationError> {
    let mut audiences: Vec<String> = Vec::new();
    let sources = [(TOKEN_AUDIENCE, single), (TOKEN_AUDIENCES, list)];
    for (key, value) in sources.into_iter().filter_map(|(key, value)| Some((key, value?))) {
        let entries: Vec<&str> = if key == TOKEN_AUDIENCES {
            value.split(',').map(str::trim).collect()
        } else {
            vec![value]
        };
        for entry in entries {
            if entry.is_empty() || entry.len() > 253 || entry.contains(|c: char| c.is_whitespace() || c == ',') {
                return Err(invalid(
                    key,
                    value,
                    "non-empty audiences of at most 253 characters, without spaces, separated by commas",
                ));
            }
            if !audiences.iter().any(|a| a == entry) {
                audiences.push(entry.to_owned());
            }
        }
        if audiences.len() > MAX_TOKEN_AUDIENCES {
            return Err(invalid(key, value, "at most 32 audiences per pod"));
        }
    }
    Ok(audiences)
}

/// The file a token for `audience` is projected to: readable, unique within `taken`, never starting
/// with a dot (the kubelet's own entries do). The sidecar finds tokens by their `aud` claim, not by name.
pub fn token_file_name(audience: &str, taken: &[String]) -> String {
    let safe: String = audience
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let base = format!("aud-{safe}");
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

fn invalid(annotation: &'static str, value: &str, allowed: &'static str) -> AnnotationError {
    AnnotationError {
        annotation,
        value: value.to_owned(),
        allowed,
    }
}

/// RFC 1123 subdomain, as Kubernetes object names are.
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
        })
}

/// A Kubernetes resource quantity: a decimal number with an optional SI, binary or exponent suffix.
pub fn is_quantity(text: &str) -> bool {
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits_end);
    let number = number.strip_prefix(['+', '-']).unwrap_or(number);
    let number_ok = !number.is_empty()
        && number.chars().filter(|c| *c == '.').count() <= 1
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number != ".";
    let suffix_ok = matches!(
        suffix,
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E"
    ) || suffix
        .strip_prefix(['e', 'E'])
        .map(|exp| exp.strip_prefix(['+', '-']).unwrap_or(exp))
        .is_some_and(|exp| !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit()));
    number_ok && suffix_ok && !text.starts_with('-')
}

/// A container image reference: `[registry/]path[:tag][@sha256:digest]`, lowercase path, no spaces.
pub fn is_image_reference(image: &str) -> bool {
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let Some(hex) = digest.strip_prefix("sha256:") else {
            return false;
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return false;
        }
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (path, tag) = match rest[last_slash..].split_once(':') {
        Some((name, tag)) => (&rest[..last_slash + name.len()], Some(tag)),
        None => (rest, None),
    };
    let tag_ok = tag.is_none_or(|t| {
        !t.is_empty()
            && t.len() <= 128
            && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && !t.starts_with(['.', '-'])
    });
    let mut components = path.split('/');
    let first = components.next().unwrap_or("");
    // The first component may be a registry host with a port and dots.
    let registry_ok = !first.is_empty() && first.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    let rest_ok = components.all(|c| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    });
    let lowercase_path = path.contains('/') || first.bytes().all(|b| !b.is_ascii_uppercase());
    tag_ok && registry_ok && rest_ok && lowercase_path && !path.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(annotations: Value) -> Result<Settings, AnnotationError> {
        Settings::from_annotations(annotations.as_object().unwrap(), &Defaults::default())
    }

    #[test]
    fn defaults_apply() {
        let s = settings(json!({"mcplex.dev/inject": "true"})).unwrap();
        assert_eq!(
            (s.config_map.as_str(), s.port, s.native_sidecar, s.cpu.as_str()),
            ("mcplex", 15301, true, "50m")
        );
        assert!(s.image.starts_with("ghcr.io/mcplex/mcplex:"));
    }

    #[test]
    fn each_bad_annotation_is_named() {
        for (key, value) in [
            ("mcplex.dev/port", "80"),
            ("mcplex.dev/port", "15302"),
            ("mcplex.dev/port", "http"),
            ("mcplex.dev/cpu", "lots"),
            ("mcplex.dev/memory", "64MB"),
            ("mcplex.dev/image", "Not An Image"),
            ("mcplex.dev/image", "repo/app@sha256:xyz"),
            ("mcplex.dev/native-sidecar", "yes"),
            ("mcplex.dev/log-level", "loud"),
            ("mcplex.dev/config", "Bad_Name"),
            ("mcplex.dev/tls-secret", "-x"),
            ("mcplex.dev/profile", "SRE team"),
            ("mcplex.dev/token-audience", "two words"),
            ("mcplex.dev/token-audiences", "math-mcp,,date-mcp"),
            ("mcplex.dev/token-audiences", "math-mcp, two words"),
        ] {
            let error = settings(json!({ key: value })).unwrap_err();
            assert_eq!(error.annotation, key, "{value}");
            assert!(
                error.to_string().contains(key) && error.to_string().contains(value),
                "{error}"
            );
        }
    }

    #[test]
    fn quantities_and_images() {
        for ok in ["100m", "0.5", "1", "64Mi", "1G", "1e3", "2.5Gi"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "m", "1.2.3", "64MB", "-1", "1e", "."] {
            assert!(!is_quantity(bad), "{bad}");
        }
        for ok in [
            "mcplex",
            "ghcr.io/mcplex/mcplex:0.1.0",
            "localhost:5000/a/b:tag",
            "r.io/x@sha256:".to_string().as_str(),
        ] {
            let ok = if ok.ends_with("sha256:") {
                format!("{ok}{}", "a".repeat(64))
            } else {
                ok.to_owned()
            };
            assert!(is_image_reference(&ok), "{ok}");
        }
        for bad in ["", "has space", "ghcr.io/Upper/x", "x:", "x:-tag"] {
            assert!(!is_image_reference(bad), "{bad}");
        }
    }
}
