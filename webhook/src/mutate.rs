//! The one mutation shared by the webhook and `inject`: a pod (raw JSON, so unknown fields survive) and its
//! annotations in, a JSON Patch out.

use crate::settings::{
    ADMIN_PORT, AnnotationError, DEFAULT_CONTAINER, Defaults, INJECT, RUN_AS_USER, STATUS, Settings, token_file_name,
};
use serde_json::{Value, json};

/// Name of the injected container.
pub const CONTAINER_NAME: &str = "mcplex";
/// Where the ConfigMap is mounted (a directory: subPath mounts never update).
pub const CONFIG_DIR: &str = "/etc/mcplex/config";
/// Where the mTLS Secret is mounted.
pub const TLS_DIR: &str = "/etc/mcplex/tls";
/// Where the projected ServiceAccount tokens are mounted (one file per audience).
pub const TOKEN_DIR: &str = "/var/run/secrets/mcplex";
/// The env var app containers find the endpoint in.
pub const ENDPOINT_ENV: &str = "MCP_SERVER_URL";

/// What the mutation decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The pod did not opt in.
    NotRequested,
    /// The pod already carries the sidecar (mutating twice equals mutating once).
    AlreadyInjected,
    /// Apply these JSON Patch operations to the pod.
    Patch(json_patch::Patch),
}

/// Why a pod cannot be injected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MutateError {
    /// An override annotation is invalid.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    /// The object is not a pod (template) with a `spec.containers` list.
    #[error("the object has no spec.containers list, so it is not a pod")]
    NotAPod,
    /// The pod shares the node's network namespace.
    #[error(
        "the pod uses hostNetwork, where the sidecar's 127.0.0.1 endpoint would be the node's loopback (every process on the node could use the pod's tools and identity, and two such pods on one node would clash on ports); run the agent without hostNetwork"
    )]
    HostNetwork,
    /// The pod runs on Windows nodes.
    #[error(
        "the pod runs on Windows (spec.os.name: windows) and the mcplex sidecar is a Linux image; run the agent on Linux nodes or remove mcplex.dev/inject"
    )]
    Windows,
    /// A container already declares a port the sidecar listens on (containers share the pod's network).
    #[error("container `{container}` already declares port {port}, which the sidecar needs ({purpose}); {fix}")]
    PortTaken {
        /// The container.
        container: String,
        /// The port.
        port: u16,
        /// What the sidecar uses it for.
        purpose: &'static str,
        /// How to resolve it.
        fix: &'static str,
    },
    /// The pod already has a volume with a name the sidecar injects.
    #[error("the pod already has a volume named `{0}`, a name the mcplex sidecar injects; rename that volume")]
    VolumeTaken(String),
    /// A container is named like the sidecar but the pod carries no injection marker.
    #[error(
        "spec.{0} already has a container named `mcplex` but the pod has no mcplex.dev/status marker, so it is not mcplex's sidecar; rename that container"
    )]
    ContainerNameTaken(&'static str),
    /// The server end (`mcplex.dev/serve`) cannot be added.
    #[error(transparent)]
    Serve(#[from] crate::serve_end::ServeError),
    /// `mcplex.dev/config` names a ConfigMap outside the names the platform allows.
    #[error(
        "annotation mcplex.dev/config={name:?} is not allowed: the webhook accepts only ConfigMaps named `{prefix}` or `{prefix}-*` (set by the platform with --config-map-prefix)"
    )]
    ConfigMapNotAllowed {
        /// The name asked for.
        name: String,
        /// The allowed prefix.
        prefix: String,
    },
}

impl MutateError {
    /// A short, fixed name for the refusal (a metrics label).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Annotation(_) => "invalid_annotation",
            Self::NotAPod => "not_a_pod",
            Self::HostNetwork => "host_network",
            Self::Windows => "windows",
            Self::PortTaken { .. } => "port_taken",
            Self::VolumeTaken(_) => "volume_taken",
            Self::ContainerNameTaken(_) => "container_name_taken",
            Self::ConfigMapNotAllowed { .. } => "config_map_not_allowed",
            Self::Serve(_) => "serve_unsafe",
        }
    }
}

/// Computes the patch that injects the sidecar into `pod` (an object with `metadata` and `spec`).
pub fn mutate(pod: &Value, defaults: &Defaults) -> Result<Outcome, MutateError> {
    let empty = serde_json::Map::new();
    let annotations = pod
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let agent = annotations.get(INJECT).and_then(Value::as_str) == Some("true");
    if annotations.contains_key(crate::serve_end::SERVE) {
        if agent {
            return Err(crate::serve_end::ServeError::BothRoles.into());
        }
        return crate::serve_end::mutate(pod, annotations, defaults);
    }
    if !agent {
        return Ok(Outcome::NotRequested);
    }
    let Some((spec, containers)) = pod_parts(pod, annotations)? else {
        return Ok(Outcome::AlreadyInjected);
    };
    let settings = Settings::from_annotations(annotations, defaults)?;
    refuse_unsafe(spec, &settings, defaults)?;
    let endpoint = format!("http://127.0.0.1:{}/mcp", settings.port);
    let mut ops = Vec::new();

    // App containers first: inserting the sidecar into `containers` later shifts their indices.
    for (index, container) in containers.iter().enumerate() {
        let env_var = json!({ "name": ENDPOINT_ENV, "value": endpoint });
        match container.get("env").and_then(Value::as_array) {
            Some(env) if env.iter().any(|e| e["name"] == ENDPOINT_ENV) => {}
            Some(_) => ops.push(add(&format!("/spec/containers/{index}/env/-"), env_var)),
            None => ops.push(add(&format!("/spec/containers/{index}/env"), json!([env_var]))),
        }
    }

    let volumes = volumes(&settings);
    let volume_names: Vec<Value> = volumes.iter().map(|v| v["name"].clone()).collect();
    ops.extend(append(spec.get("volumes"), "/spec/volumes", volumes));

    // A native sidecar starts before every init container, so they may use it too; a classic one
    // starts after them.
    let init_containers = spec.get("initContainers").and_then(Value::as_array);
    if settings.native_sidecar {
        for (index, container) in init_containers.into_iter().flatten().enumerate() {
            let env_var = json!({ "name": ENDPOINT_ENV, "value": endpoint });
            match container.get("env").and_then(Value::as_array) {
                Some(env) if env.iter().any(|e| e["name"] == ENDPOINT_ENV) => {}
                Some(_) => ops.push(add(&format!("/spec/initContainers/{index}/env/-"), env_var)),
                None => ops.push(add(&format!("/spec/initContainers/{index}/env"), json!([env_var]))),
            }
        }
    }

    let list = if settings.native_sidecar {
        "initContainers"
    } else {
        "containers"
    };
    let sidecar = container(&settings);
    match spec.get(list).and_then(Value::as_array) {
        Some(_) => ops.push(add(&format!("/spec/{list}/0"), sidecar)),
        None => ops.push(add(&format!("/spec/{list}"), json!([sidecar]))),
    }

    if pod.pointer("/metadata/annotations").is_none() {
        ops.push(add("/metadata/annotations", json!({})));
    }
    let status = json!({ "version": env!("CARGO_PKG_VERSION"), list: [CONTAINER_NAME], "volumes": volume_names });
    ops.push(add(&annotation_path(STATUS), Value::String(status.to_string())));
    if !annotations.contains_key(DEFAULT_CONTAINER)
        && let Some(app) = containers.first().and_then(|c| c["name"].as_str())
    {
        ops.push(add(&annotation_path(DEFAULT_CONTAINER), json!(app)));
    }
    let patch = serde_json::from_value(Value::Array(ops)).expect("operations are built from valid JSON Patch shapes");
    Ok(Outcome::Patch(patch))
}

/// The security context of every container mcplex adds: the image's non-root user, nothing to escalate
/// to, a read-only root, no capabilities (the Kubernetes "restricted" profile).
pub(crate) fn restricted_security_context() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": { "drop": ["ALL"] },
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

/// A pod's spec and its containers.
pub(crate) type PodParts<'p> = (&'p serde_json::Map<String, Value>, &'p Vec<Value>);

/// The pod's spec and containers, or `None` when the pod already carries mcplex's marker (mutating twice
/// equals mutating once).
pub(crate) fn pod_parts<'p>(
    pod: &'p Value,
    annotations: &serde_json::Map<String, Value>,
) -> Result<Option<PodParts<'p>>, MutateError> {
    let spec = pod.get("spec").and_then(Value::as_object).ok_or(MutateError::NotAPod)?;
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .ok_or(MutateError::NotAPod)?;
    Ok((!annotations.contains_key(STATUS)).then_some((spec, containers)))
}

/// Refuses what the sidecar cannot be added to safely, naming the reason and the fix.
fn refuse_unsafe(
    spec: &serde_json::Map<String, Value>,
    settings: &Settings,
    defaults: &Defaults,
) -> Result<(), MutateError> {
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        return Err(MutateError::HostNetwork);
    }
    if spec
        .get("os")
        .and_then(|os| os.get("name"))
        .and_then(Value::as_str)
        .is_some_and(|name| name.eq_ignore_ascii_case("windows"))
    {
        return Err(MutateError::Windows);
    }
    if !defaults.allows_config_map(&settings.config_map) {
        return Err(MutateError::ConfigMapNotAllowed {
            name: settings.config_map.clone(),
            prefix: defaults.config_map_prefix.clone(),
        });
    }
    for list in ["containers", "initContainers"] {
        for container in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
            let name = container.get("name").and_then(Value::as_str).unwrap_or_default();
            if name == CONTAINER_NAME {
                return Err(MutateError::ContainerNameTaken(list));
            }
            let ports = container.get("ports").and_then(Value::as_array).into_iter().flatten();
            for port in ports.filter_map(|p| p.get("containerPort").and_then(Value::as_u64)) {
                let taken = |purpose, fix| MutateError::PortTaken {
                    container: name.to_owned(),
                    port: port as u16,
                    purpose,
                    fix,
                };
                if port == u64::from(settings.port) {
                    return Err(taken(
                        "its MCP endpoint",
                        "pick another port for the sidecar with mcplex.dev/port",
                    ));
                }
                if port == u64::from(ADMIN_PORT) {
                    return Err(taken(
                        "probes and metrics",
                        "move the container off that port; the sidecar's admin port is fixed",
                    ));
                }
            }
        }
    }
    let injected: Vec<Value> = volumes(settings).into_iter().map(|v| v["name"].clone()).collect();
    let existing = spec.get("volumes").and_then(Value::as_array).into_iter().flatten();
    if let Some(name) = existing
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|name| injected.iter().any(|i| i == name))
    {
        return Err(MutateError::VolumeTaken(name.to_owned()));
    }
    Ok(())
}

pub(crate) fn add(path: &str, value: Value) -> Value {
    json!({ "op": "add", "path": path, "value": value })
}

/// The operations that append `items` to the list at `path`, where the pod has `existing`: one `add` per
/// item after what is there, or the whole list when the pod has none.
pub(crate) fn append(existing: Option<&Value>, path: &str, items: Vec<Value>) -> Vec<Value> {
    match existing.and_then(Value::as_array) {
        Some(_) => items.into_iter().map(|item| add(&format!("{path}/-"), item)).collect(),
        None => vec![add(path, Value::Array(items))],
    }
}

/// The JSON Pointer of an annotation, with `~` and `/` escaped (RFC 6901).
pub fn annotation_path(key: &str) -> String {
    format!("/metadata/annotations/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn volumes(settings: &Settings) -> Vec<Value> {
    let mut volumes = vec![json!({ "name": "mcplex-config", "configMap": { "name": settings.config_map } })];
    if let Some(secret) = &settings.tls_secret {
        volumes.push(json!({ "name": "mcplex-tls", "secret": { "secretName": secret } }));
    }
    if !settings.token_audiences.is_empty() {
        // One file per audience, so each target can be given only the token minted for it.
        let mut names = Vec::new();
        let sources: Vec<Value> = settings
            .token_audiences
            .iter()
            .map(|audience| {
                let path = token_file_name(audience, &names);
                names.push(path.clone());
                json!({ "serviceAccountToken": { "audience": audience, "expirationSeconds": 3600, "path": path } })
            })
            .collect();
        volumes.push(json!({ "name": "mcplex-token", "projected": { "sources": sources } }));
    }
    volumes
}

fn container(settings: &Settings) -> Value {
    let mut mounts = vec![json!({ "name": "mcplex-config", "mountPath": CONFIG_DIR, "readOnly": true })];
    if settings.tls_secret.is_some() {
        mounts.push(json!({ "name": "mcplex-tls", "mountPath": TLS_DIR, "readOnly": true }));
    }
    if !settings.token_audiences.is_empty() {
        mounts.push(json!({ "name": "mcplex-token", "mountPath": TOKEN_DIR, "readOnly": true }));
    }
    let probe = |path: &str, period: u32, failures: u32| json!({ "httpGet": { "path": path, "port": ADMIN_PORT }, "periodSeconds": period, "failureThreshold": failures, "timeoutSeconds": 1 });
    let mut container = json!({
        "name": CONTAINER_NAME,
        "image": settings.image,
        "args": [
            "--log-format", "json", "--log-level", settings.log_level,
            "run", "--config", format!("{CONFIG_DIR}/config.yaml"),
            "--listen", format!("127.0.0.1:{}", settings.port), "--admin", format!("0.0.0.0:{ADMIN_PORT}"),
            // The audit trail goes to stdout, apart from the logs on stderr, for the cluster's log pipeline.
            "--audit-log", "-",
        ],
        "ports": [{ "name": "mcplex-admin", "containerPort": ADMIN_PORT, "protocol": "TCP" }],
        "resources": {
            "requests": { "cpu": settings.cpu, "memory": settings.memory },
            "limits": { "memory": settings.memory },
        },
        "securityContext": restricted_security_context(),
        "volumeMounts": mounts,
        // The agent starts only once MCP is up: kubelet waits for a native sidecar's startup probe.
        "startupProbe": probe("/readyz", 1, 120),
        "readinessProbe": probe("/readyz", 5, 3),
        "livenessProbe": probe("/healthz", 10, 3),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    if let Some(profile) = &settings.profile
        && let Some(args) = container["args"].as_array_mut()
    {
        args.extend([json!("--profile"), json!(profile)]);
    }
    if settings.native_sidecar {
        container["restartPolicy"] = json!("Always");
    }
    container
}
