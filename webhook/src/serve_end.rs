//! The server end's mutation: a pod annotated `mcplex.dev/serve: stdio` gets its MCP server container run
//! under `mcplex serve`. The server's image is the user's, so mcplex's static binary is brought in by an
//! init container through a shared volume; the container's own `command` and `args` become what
//! `mcplex serve` runs. Callers must be checked (mTLS, or bearer tokens per the config's `inbound.jwt`),
//! because the server now listens on the pod's network.

use crate::mutate::{MutateError, Outcome, annotation_path};
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
        "annotation mcplex.dev/serve={0:?} is not supported: use \"stdio\" (the container's command runs under mcplex serve); fronting an HTTP server is not available yet"
    )]
    Mode(String),
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
    match text(SERVE) {
        Some("stdio") => {}
        Some(other) => return Err(ServeError::Mode(other.to_owned()).into()),
        None => return Ok(Outcome::NotRequested),
    }
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
    let command = server
        .get("command")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ServeError::NoCommand(name.clone()))?;
    let port = match text(SERVE_PORT) {
        None => DEFAULT_SERVE_PORT,
        Some(value) => value
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| AnnotationError {
                annotation: SERVE_PORT,
                value: value.to_owned(),
                allowed: "a port number from 1 to 65535",
            })?,
    };
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
        json!(format!("{BIN_DIR}/mcplex")),
        json!("serve"),
        json!("--listen"),
        json!(format!("0.0.0.0:{port}")),
        json!("--admin"),
        json!(format!("0.0.0.0:{SERVE_ADMIN_PORT}")),
    ];
    let mut mounts = vec![json!({"name": "mcplex-bin", "mountPath": BIN_DIR, "readOnly": true})];
    let mut volumes = vec![json!({"name": "mcplex-bin", "emptyDir": {"sizeLimit": "64Mi"}})];
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
    match server.get("volumeMounts").and_then(Value::as_array) {
        Some(_) => ops.extend(mounts.into_iter().map(|m| add(&format!("{at}/volumeMounts/-"), m))),
        None => ops.push(add(&format!("{at}/volumeMounts"), Value::Array(mounts))),
    }
    let port_entries = [
        json!({"name": "mcp", "containerPort": port, "protocol": "TCP"}),
        json!({"name": "mcplex-admin", "containerPort": SERVE_ADMIN_PORT, "protocol": "TCP"}),
    ];
    match server.get("ports").and_then(Value::as_array) {
        Some(_) => ops.extend(port_entries.into_iter().map(|p| add(&format!("{at}/ports/-"), p))),
        None => ops.push(add(&format!("{at}/ports"), Value::Array(port_entries.to_vec()))),
    }
    match spec.get("volumes").and_then(Value::as_array) {
        Some(_) => ops.extend(volumes.iter().cloned().map(|v| add("/spec/volumes/-", v))),
        None => ops.push(add("/spec/volumes", Value::Array(volumes.clone()))),
    }
    let install = install_container(text("mcplex.dev/image").unwrap_or(&defaults.image));
    match spec.get("initContainers").and_then(Value::as_array) {
        Some(_) => ops.push(add("/spec/initContainers/0", install)),
        None => ops.push(add("/spec/initContainers", json!([install]))),
    }
    let volume_names: Vec<Value> = volumes.iter().map(|v| v["name"].clone()).collect();
    let status = json!({"version": env!("CARGO_PKG_VERSION"), "serve": name, "initContainers": [INSTALL_CONTAINER], "volumes": volume_names});
    ops.push(add(&annotation_path(STATUS), Value::String(status.to_string())));
    let patch = serde_json::from_value(Value::Array(ops)).expect("operations are built from valid JSON Patch shapes");
    Ok(Outcome::Patch(patch))
}

/// Refuses a port another container declares, and volume or container names this mutation adds.
fn refuse_taken(spec: &Map<String, Value>, port: u16) -> Result<(), MutateError> {
    for list in ["containers", "initContainers"] {
        for container in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
            let name = container["name"].as_str().unwrap_or_default();
            if name == INSTALL_CONTAINER {
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

fn add(path: &str, value: Value) -> Value {
    json!({ "op": "add", "path": path, "value": value })
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
        assert!(refused(checked(json!({SERVE: "http"})), server()).contains("\"http\""));
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
