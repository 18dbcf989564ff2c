//! The server end's mutation. A pod annotated `mcplex.dev/serve: stdio` gets its MCP server container run
//! under `mcplex serve`: the server's image is the user's, so mcplex's static binary is brought in by an
//! init container through a shared volume, and the container's own `command` and `args` become what
//! `mcplex serve` runs. A pod annotated `mcplex.dev/serve: http` gets `mcplex serve --upstream` as a
//! native sidecar in front of its container's HTTP port. Either way callers must be checked (mTLS, or
//! bearer tokens per the config's `inbound.jwt`), because the server end listens on the pod's network.

use crate::mutate::{MutateError, Outcome, add, annotation_path, append};
use crate::settings::{AnnotationError, Defaults, STATUS};
use serde_json::{Map, Value, json};

/// The annotation that asks for the server end.
pub const SERVE: &str = "mcplex.dev/serve";
/// The annotation naming the server's container when the pod has more than one.
pub const SERVE_CONTAINER: &str = "mcplex.dev/serve-container";
/// The annotation naming the port `mcplex serve` listens on.
pub const SERVE_PORT: &str = "mcplex.dev/serve-port";
/// The annotation naming the Secret with `tls.crt`, `tls.key` and `ca.crt` (the CA of the callers' client
/// certificates).
pub const SERVE_TLS_SECRET: &str = "mcplex.dev/serve-tls-secret";
/// The annotation naming the ConfigMap whose `config.yaml` holds `inbound.jwt` and `policy`.
pub const SERVE_CONFIG: &str = "mcplex.dev/serve-config";
/// The annotation naming the served container's HTTP port (`http` mode; default: its only declared port).
pub const SERVE_UPSTREAM_PORT: &str = "mcplex.dev/serve-upstream-port";
/// The annotation naming the served container's MCP path (`http` mode; default `/mcp`).
pub const SERVE_UPSTREAM_PATH: &str = "mcplex.dev/serve-upstream-path";
/// The annotation naming headers that carry the caller to an HTTP server (`sub=X-User,namespace=X-Ns`).
pub const SERVE_CALLER_HEADERS: &str = "mcplex.dev/serve-caller-headers";
/// The native sidecar that fronts an HTTP server.
pub const FRONT_CONTAINER: &str = "mcplex-serve";
/// The port `mcplex serve` listens on by default.
pub const DEFAULT_SERVE_PORT: u16 = 15310;
/// The port of `mcplex serve`'s `/healthz` and `/metrics` (fixed, like the sidecar's admin port).
pub const SERVE_ADMIN_PORT: u16 = 15311;
/// Where the init container puts the binary.
pub const BIN_DIR: &str = "/mcplex-bin";
/// Where the serving Secret is mounted.
pub const SERVE_TLS_DIR: &str = "/etc/mcplex/serve-tls";
/// Where the serving ConfigMap is mounted.
pub const SERVE_CONFIG_DIR: &str = "/etc/mcplex/serve-config";
/// The init container that installs the binary.
pub const INSTALL_CONTAINER: &str = "mcplex-install";
/// The volumes this mutation adds.
const VOLUMES: [&str; 3] = ["mcplex-bin", "mcplex-serve-tls", "mcplex-serve-config"];

/// Why a pod cannot be given the server end.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServeError {
    /// `mcplex.dev/serve` has a value this webhook does not serve.
    #[error(
        "annotation mcplex.dev/serve={0:?} is not supported: use \"stdio\" (the container's command runs under mcplex serve) or \"http\" (mcplex serve fronts the container's HTTP port)"
    )]
    Mode(String),
    /// An HTTP server's port cannot be told.
    #[error(
        "container `{container}` declares {declared} ports, so mcplex cannot tell which one serves MCP; name it with mcplex.dev/serve-upstream-port"
    )]
    WhichUpstreamPort {
        /// The container.
        container: String,
        /// How many ports it declares.
        declared: usize,
    },
    /// The fronted port is one the server end takes itself.
    #[error(
        "mcplex.dev/serve-upstream-port {0} is the port mcplex serve itself takes; move the server or pick another port with mcplex.dev/serve-port"
    )]
    UpstreamIsFront(u16),
    /// A caller header is not `FIELD=NAME`.
    #[error(
        "mcplex.dev/serve-caller-headers entry {0:?} is not FIELD=NAME with FIELD one of sub, act, serviceAccount, namespace and NAME a header name"
    )]
    CallerHeader(String),
    /// More than one container could be the server.
    #[error(
        "the pod has {0} containers and mcplex cannot tell which one is the MCP server; name it with mcplex.dev/serve-container"
    )]
    WhichContainer(usize),
    /// The named container does not exist.
    #[error("mcplex.dev/serve-container names `{0}`, which is not a container of the pod")]
    NoSuchContainer(String),
    /// The container has no command in the spec.
    #[error(
        "container `{0}` has no command in the pod spec, and the webhook cannot know its image's entrypoint; set command (and args) to what starts the stdio server"
    )]
    NoCommand(String),
    /// The pod asks to be both an agent and a served server.
    #[error(
        "the pod asks for both mcplex.dev/inject (an agent's sidecar) and mcplex.dev/serve (a served MCP server); a pod is one or the other, so remove one of them"
    )]
    BothRoles,
    /// Nothing would check the callers.
    #[error(
        "the served server would take calls from anyone on the pod network; set mcplex.dev/serve-tls-secret (mTLS) or mcplex.dev/serve-config (a ConfigMap with inbound.jwt), or both"
    )]
    Unchecked,
}

/// Computes the patch that runs the pod's stdio server under `mcplex serve`.
pub fn mutate(pod: &Value, annotations: &Map<String, Value>, defaults: &Defaults) -> Result<Outcome, MutateError> {
    let text = |key: &str| annotations.get(key).and_then(Value::as_str);
    let fronts_http = match text(SERVE) {
        Some("stdio") => false,
        Some("http") => true,
        Some(other) => return Err(ServeError::Mode(other.to_owned()).into()),
        None => return Ok(Outcome::NotRequested),
    };
    let Some((spec, containers)) = crate::mutate::pod_parts(pod, annotations)? else {
        return Ok(Outcome::AlreadyInjected);
    };
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        return Err(MutateError::HostNetwork);
    }
    let index = match text(SERVE_CONTAINER) {
        Some(name) => containers
            .iter()
            .position(|c| c["name"] == name)
            .ok_or_else(|| ServeError::NoSuchContainer(name.to_owned()))?,
        None if containers.len() == 1 => 0,
        None => return Err(ServeError::WhichContainer(containers.len()).into()),
    };
    let server = &containers[index];
    let name = server["name"].as_str().unwrap_or_default().to_owned();
    let port = port_annotation(text(SERVE_PORT), SERVE_PORT)?.unwrap_or(DEFAULT_SERVE_PORT);
    let tls_secret = text(SERVE_TLS_SECRET);
    let config_map = text(SERVE_CONFIG);
    if tls_secret.is_none() && config_map.is_none() {
        return Err(ServeError::Unchecked.into());
    }
    if port == SERVE_ADMIN_PORT {
        return Err(AnnotationError {
            annotation: SERVE_PORT,
            value: port.to_string(),
            allowed: "a port other than 15311, which mcplex serve's /healthz and /metrics use",
        }
        .into());
    }
    refuse_taken(spec, port)?;

    let mut run = vec![
        json!("serve"),
        json!("--listen"),
        json!(format!("0.0.0.0:{port}")),
        json!("--admin"),
        json!(format!("0.0.0.0:{SERVE_ADMIN_PORT}")),
    ];
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    if let Some(secret) = tls_secret {
        for (flag, file) in [
            ("--tls-cert", "tls.crt"),
            ("--tls-key", "tls.key"),
            ("--client-ca", "ca.crt"),
        ] {
            run.push(json!(flag));
            run.push(json!(format!("{SERVE_TLS_DIR}/{file}")));
        }
        mounts.push(json!({"name": "mcplex-serve-tls", "mountPath": SERVE_TLS_DIR, "readOnly": true}));
        volumes.push(json!({"name": "mcplex-serve-tls", "secret": {"secretName": secret}}));
    }
    if let Some(config_map) = config_map {
        run.push(json!("--config"));
        run.push(json!(format!("{SERVE_CONFIG_DIR}/config.yaml")));
        mounts.push(json!({"name": "mcplex-serve-config", "mountPath": SERVE_CONFIG_DIR, "readOnly": true}));
        volumes.push(json!({"name": "mcplex-serve-config", "configMap": {"name": config_map}}));
    }
    let served = Served {
        spec,
        index,
        name,
        port,
        run,
        mounts,
        volumes,
    };
    let ops = if fronts_http {
        http_front(served, annotations, defaults)?
    } else {
        stdio_under_serve(served, annotations, defaults)?
    };
    let patch = serde_json::from_value(Value::Array(ops)).expect("operations are built from valid JSON Patch shapes");
    Ok(Outcome::Patch(patch))
}

/// What both modes settled: the served container, the port, `mcplex serve`'s arguments so far (its caller
/// checks) and the mounts and volumes those need.
struct Served<'a> {
    spec: &'a Map<String, Value>,
    index: usize,
    name: String,
    port: u16,
    run: Vec<Value>,
    mounts: Vec<Value>,
    volumes: Vec<Value>,
}

/// A port number from an annotation, when it is set.
fn port_annotation(value: Option<&str>, annotation: &'static str) -> Result<Option<u16>, AnnotationError> {
    value
        .map(|value| {
            value
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| AnnotationError {
                    annotation,
                    value: value.to_owned(),
                    allowed: "a port number from 1 to 65535",
                })
        })
        .transpose()
}

/// The ports `mcplex serve` takes, declared on the container that runs it.
fn port_entries(port: u16) -> [Value; 2] {
    [
        json!({"name": "mcp", "containerPort": port, "protocol": "TCP"}),
        json!({"name": "mcplex-admin", "containerPort": SERVE_ADMIN_PORT, "protocol": "TCP"}),
    ]
}

/// `stdio`: the container's command runs under `mcplex serve`, brought in by an init container.
fn stdio_under_serve(
    served: Served<'_>,
    annotations: &Map<String, Value>,
    defaults: &Defaults,
) -> Result<Vec<Value>, MutateError> {
    let Served {
        spec,
        index,
        name,
        port,
        run: checks,
        mut mounts,
        mut volumes,
    } = served;
    let server = &spec["containers"][index];
    let command = server
        .get("command")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ServeError::NoCommand(name.clone()))?;
    let mut run = vec![json!(format!("{BIN_DIR}/mcplex"))];
    run.extend(checks);
    mounts.insert(0, json!({"name": "mcplex-bin", "mountPath": BIN_DIR, "readOnly": true}));
    volumes.insert(0, json!({"name": "mcplex-bin", "emptyDir": {"sizeLimit": "64Mi"}}));
    run.push(json!("--"));
    run.extend(command.iter().cloned());
    run.extend(
        server
            .get("args")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .cloned(),
    );

    let at = format!("/spec/containers/{index}");
    let mut ops = vec![
        json!({"op": "add", "path": format!("{at}/command"), "value": run}),
        json!({"op": "add", "path": format!("{at}/args"), "value": []}),
    ];
    ops.extend(append(
        server.get("volumeMounts"),
        &format!("{at}/volumeMounts"),
        mounts,
    ));
    ops.extend(append(
        server.get("ports"),
        &format!("{at}/ports"),
        port_entries(port).to_vec(),
    ));
    ops.extend(append(spec.get("volumes"), "/spec/volumes", volumes.clone()));
    let image = annotations.get("mcplex.dev/image").and_then(Value::as_str);
    let install = install_container(image.unwrap_or(&defaults.image));
    match spec.get("initContainers").and_then(Value::as_array) {
        Some(_) => ops.push(add("/spec/initContainers/0", install)),
        None => ops.push(add("/spec/initContainers", json!([install]))),
    }
    let volume_names: Vec<Value> = volumes.iter().map(|v| v["name"].clone()).collect();
    let status = json!({"version": env!("CARGO_PKG_VERSION"), "serve": name, "initContainers": [INSTALL_CONTAINER], "volumes": volume_names});
    ops.push(add(&annotation_path(STATUS), Value::String(status.to_string())));
    Ok(ops)
}

/// `http`: `mcplex serve --upstream` as a native sidecar in front of the container's HTTP port.
fn http_front(
    served: Served<'_>,
    annotations: &Map<String, Value>,
    defaults: &Defaults,
) -> Result<Vec<Value>, MutateError> {
    let Served {
        spec,
        index,
        name,
        port,
        mut run,
        mounts,
        volumes,
    } = served;
    let text = |key: &str| annotations.get(key).and_then(Value::as_str);
    let server = &spec["containers"][index];
    let declared: Vec<u64> = server
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p["containerPort"].as_u64())
        .collect();
    let upstream_port = match port_annotation(text(SERVE_UPSTREAM_PORT), SERVE_UPSTREAM_PORT)? {
        Some(port) => port,
        None => match declared.as_slice() {
            [only] => u16::try_from(*only).map_err(|_| ServeError::WhichUpstreamPort {
                container: name.clone(),
                declared: 1,
            })?,
            _ => {
                return Err(ServeError::WhichUpstreamPort {
                    container: name,
                    declared: declared.len(),
                }
                .into());
            }
        },
    };
    if upstream_port == port || upstream_port == SERVE_ADMIN_PORT {
        return Err(ServeError::UpstreamIsFront(upstream_port).into());
    }
    let path = text(SERVE_UPSTREAM_PATH).unwrap_or("/mcp");
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err(AnnotationError {
            annotation: SERVE_UPSTREAM_PATH,
            value: path.to_owned(),
            allowed: "a URL path such as /mcp",
        }
        .into());
    }
    run.push(json!("--upstream"));
    run.push(json!(format!("http://127.0.0.1:{upstream_port}{path}")));
    for entry in text(SERVE_CALLER_HEADERS).into_iter().flat_map(|v| v.split(',')) {
        let entry = entry.trim();
        let valid = entry.split_once('=').is_some_and(|(field, header)| {
            ["sub", "act", "serviceAccount", "namespace"].contains(&field) && http::HeaderName::try_from(header).is_ok()
        });
        if !valid {
            return Err(ServeError::CallerHeader(entry.to_owned()).into());
        }
        run.push(json!("--caller-header"));
        run.push(json!(entry));
    }
    let image = text("mcplex.dev/image").unwrap_or(&defaults.image);
    let probe = |period: u32, failures: u32| json!({"httpGet": {"path": "/healthz", "port": SERVE_ADMIN_PORT}, "periodSeconds": period, "failureThreshold": failures, "timeoutSeconds": 1});
    let front = json!({
        "name": FRONT_CONTAINER,
        "image": image,
        "args": run,
        // A native sidecar: it starts before the pod's containers and stops after them.
        "restartPolicy": "Always",
        "ports": port_entries(port).to_vec(),
        "volumeMounts": mounts,
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": crate::mutate::restricted_security_context(),
        "startupProbe": probe(1, 30),
        "livenessProbe": probe(10, 3),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    let mut ops = Vec::new();
    if !volumes.is_empty() {
        ops.extend(append(spec.get("volumes"), "/spec/volumes", volumes.clone()));
    }
    ops.extend(append(spec.get("initContainers"), "/spec/initContainers", vec![front]));
    let volume_names: Vec<Value> = volumes.iter().map(|v| v["name"].clone()).collect();
    let status = json!({"version": env!("CARGO_PKG_VERSION"), "serve": name, "mode": "http", "initContainers": [FRONT_CONTAINER], "volumes": volume_names});
    ops.push(add(&annotation_path(STATUS), Value::String(status.to_string())));
    Ok(ops)
}

/// Refuses a port another container declares, and volume or container names this mutation adds.
fn refuse_taken(spec: &Map<String, Value>, port: u16) -> Result<(), MutateError> {
    for list in ["containers", "initContainers"] {
        for container in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
            let name = container["name"].as_str().unwrap_or_default();
            if name == INSTALL_CONTAINER || name == FRONT_CONTAINER {
                return Err(MutateError::ContainerNameTaken("initContainers"));
            }
            let declared = container.get("ports").and_then(Value::as_array).into_iter().flatten();
            for taken in declared.filter_map(|p| p["containerPort"].as_u64()) {
                if taken == u64::from(port) {
                    return Err(MutateError::PortTaken {
                        container: name.to_owned(),
                        port,
                        purpose: "mcplex serve's MCP endpoint",
                        fix: "pick another port for it with mcplex.dev/serve-port",
                    });
                }
                if taken == u64::from(SERVE_ADMIN_PORT) {
                    return Err(MutateError::PortTaken {
                        container: name.to_owned(),
                        port: SERVE_ADMIN_PORT,
                        purpose: "mcplex serve's /healthz and /metrics",
                        fix: "the admin port is fixed; move that container off it",
                    });
                }
            }
        }
    }
    let volumes = spec.get("volumes").and_then(Value::as_array).into_iter().flatten();
    for volume in volumes {
        if let Some(name) = volume["name"].as_str().filter(|n| VOLUMES.contains(n)) {
            return Err(MutateError::VolumeTaken(name.to_owned()));
        }
    }
    Ok(())
}

/// The init container that copies mcplex's static binary into the shared volume.
fn install_container(image: &str) -> Value {
    json!({
        "name": INSTALL_CONTAINER,
        "image": image,
        "args": ["install", BIN_DIR],
        "volumeMounts": [{"name": "mcplex-bin", "mountPath": BIN_DIR}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
        "securityContext": crate::mutate::restricted_security_context(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: Value, containers: Value) -> Value {
        json!({"metadata": {"name": "time", "annotations": annotations}, "spec": {"containers": containers}})
    }

    fn server() -> Value {
        json!([{"name": "time", "image": "python:3.12-slim", "command": ["uvx"], "args": ["mcp-server-time"]}])
    }

    fn patched(pod: &Value) -> Value {
        let annotations = pod["metadata"]["annotations"].as_object().unwrap();
        let Outcome::Patch(patch) = mutate(pod, annotations, &Defaults::default()).unwrap() else {
            panic!("a patch")
        };
        let mut out = pod.clone();
        json_patch::patch(&mut out, &patch).unwrap();
        out
    }

    #[test]
    fn the_containers_command_runs_under_mcplex_serve_with_its_caller_checks() {
        let annotations = json!({SERVE: "stdio", SERVE_TLS_SECRET: "time-tls", SERVE_CONFIG: "time-serve"});
        let out = patched(&pod(annotations, server()));
        let container = &out["spec"]["containers"][0];
        let command: Vec<&str> = container["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            command,
            [
                "/mcplex-bin/mcplex",
                "serve",
                "--listen",
                "0.0.0.0:15310",
                "--admin",
                "0.0.0.0:15311",
                "--tls-cert",
                "/etc/mcplex/serve-tls/tls.crt",
                "--tls-key",
                "/etc/mcplex/serve-tls/tls.key",
                "--client-ca",
                "/etc/mcplex/serve-tls/ca.crt",
                "--config",
                "/etc/mcplex/serve-config/config.yaml",
                "--",
                "uvx",
                "mcp-server-time",
            ]
        );
        assert_eq!(container["args"], json!([]));
        assert_eq!(container["ports"][0]["containerPort"], 15310);
        assert_eq!(container["ports"][1]["containerPort"], 15311);
        assert_eq!(out["spec"]["initContainers"][0]["name"], INSTALL_CONTAINER);
        assert_eq!(out["spec"]["initContainers"][0]["args"], json!(["install", BIN_DIR]));
        let volumes: Vec<&str> = out["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(volumes, VOLUMES);
        // Mutating the result again changes nothing.
        let again = out["metadata"]["annotations"].as_object().unwrap();
        assert_eq!(
            mutate(&out, again, &Defaults::default()).unwrap(),
            Outcome::AlreadyInjected
        );
    }

    #[test]
    fn what_cannot_be_made_safe_is_refused_with_the_fix() {
        let refused = |annotations: Value, containers: Value| {
            let pod = pod(annotations, containers);
            mutate(
                &pod,
                pod["metadata"]["annotations"].as_object().unwrap(),
                &Defaults::default(),
            )
            .unwrap_err()
            .to_string()
        };
        let checked = |extra: Value| {
            let mut a = json!({SERVE: "stdio", SERVE_TLS_SECRET: "tls"});
            a.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            a
        };
        assert!(refused(json!({SERVE: "stdio"}), server()).contains("mcplex.dev/serve-tls-secret"));
        assert!(refused(checked(json!({SERVE: "ftp"})), server()).contains("\"ftp\""));
        // `http`: the port to front must be clear, and not one mcplex serve takes.
        let http = |extra: Value| {
            checked(
                json!({SERVE: "http"})
                    .as_object()
                    .unwrap()
                    .clone()
                    .into_iter()
                    .chain(extra.as_object().unwrap().clone())
                    .collect(),
            )
        };
        let two_ports = json!([{"name": "a", "ports": [{"containerPort": 8080}, {"containerPort": 9090}]}]);
        assert!(refused(http(json!({})), two_ports).contains("mcplex.dev/serve-upstream-port"));
        let no_port = json!([{"name": "a"}]);
        assert!(refused(http(json!({})), no_port.clone()).contains("declares 0 ports"));
        assert!(
            refused(http(json!({SERVE_UPSTREAM_PORT: "15310"})), no_port.clone()).contains("mcplex serve itself takes")
        );
        assert!(
            refused(
                http(json!({SERVE_UPSTREAM_PORT: "8080", SERVE_CALLER_HEADERS: "uid=X-User"})),
                no_port.clone()
            )
            .contains("\"uid=X-User\"")
        );
        assert!(
            refused(
                http(json!({SERVE_UPSTREAM_PORT: "8080", SERVE_UPSTREAM_PATH: "mcp"})),
                no_port
            )
            .contains("a URL path")
        );
        let two = json!([{"name": "a", "command": ["x"]}, {"name": "b", "command": ["y"]}]);
        assert!(refused(checked(json!({})), two.clone()).contains("mcplex.dev/serve-container"));
        assert!(refused(checked(json!({SERVE_CONTAINER: "c"})), two).contains("`c`"));
        let no_command = json!([{"name": "a", "image": "srv"}]);
        assert!(refused(checked(json!({})), no_command).contains("set command"));
        let taken = json!([{"name": "a", "command": ["x"], "ports": [{"containerPort": 15310}]}]);
        assert!(refused(checked(json!({})), taken).contains("mcplex.dev/serve-port"));
        assert!(refused(checked(json!({SERVE_PORT: "0"})), server()).contains("1 to 65535"));
        assert!(refused(checked(json!({SERVE_PORT: "15311"})), server()).contains("/metrics"));
        let admin_taken = json!([{"name": "a", "command": ["x"], "ports": [{"containerPort": 15311}]}]);
        assert!(refused(checked(json!({})), admin_taken).contains("admin port is fixed"));
    }
}
