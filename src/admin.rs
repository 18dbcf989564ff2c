//! The admin endpoint (never MCP): `/healthz`, `/readyz`, `/status` (JSON) and `/metrics` (Prometheus).
//!
//! The port is reachable from the whole cluster network (the kubelet probes it, Prometheus scrapes it), so
//! what it tells depends on who asks: probes and metrics to anyone, `/status` (target URLs, upstream
//! errors, item counts) only to clients on the pod's loopback unless the operator opens it.

use crate::catalog::ItemKind;
use crate::downstream::Endpoint;
use crate::downstream::respond::{self, Body};
use crate::serve::Peer;
use http::{Request, Response, StatusCode};
use serde_json::json;
use std::fmt::Write;
use std::sync::Arc;

/// Who may read `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusAccess {
    /// Only clients on the pod's loopback (`kubectl port-forward`, `kubectl exec`).
    #[default]
    Loopback,
    /// Anyone who reaches the admin port.
    Anyone,
}

impl StatusAccess {
    /// True when a request from `peer` may read `/status` (a request with no known peer may not).
    pub fn allows(self, peer: Option<&Peer>) -> bool {
        match self {
            Self::Anyone => true,
            Self::Loopback => peer.is_some_and(|Peer(addr)| addr.ip().is_loopback()),
        }
    }
}

/// Answers one admin request.
pub async fn handle<B>(endpoint: Arc<Endpoint>, access: StatusAccess, request: Request<B>) -> Response<Body> {
    let router = &endpoint.router;
    match request.uri().path() {
        "/healthz" => respond::plain(StatusCode::OK, "ok"),
        "/readyz" if router.is_ready() => respond::plain(StatusCode::OK, "ready"),
        "/readyz" => respond::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the config is not loaded yet",
        ),
        "/status" if access.allows(request.extensions().get::<Peer>()) => {
            respond::json_with_status(StatusCode::OK, &status(&endpoint))
        }
        "/status" => respond::plain(
            StatusCode::FORBIDDEN,
            "/status names targets and their errors, so it is served only to clients on the pod's loopback: use `kubectl port-forward` to the admin port, or start mcplex with --public-status",
        ),
        "/metrics" => {
            let mut response = respond::plain(StatusCode::OK, &metrics(&endpoint));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        _ => respond::plain(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz, /status or /metrics",
        ),
    }
}

fn status(endpoint: &Endpoint) -> serde_json::Value {
    let snapshot = endpoint.router.snapshot();
    let targets: Vec<_> = snapshot
        .slots
        .iter()
        .map(|slot| {
            let state = slot.state();
            let count = |kind| state.items.as_ref().map_or(0, |i| i.entries(kind).len());
            json!({
                "name": slot.name,
                "url": slot.target.as_ref().map(|t| t.config.url.to_string()),
                "up": state.items.is_some(),
                "error": state.error,
                "tools": count(ItemKind::Tools),
                "prompts": count(ItemKind::Prompts),
                "resources": count(ItemKind::Resources),
                "fetchedSecondsAgo": state.fetched_at.map(|at| at.elapsed().as_secs()),
                "callsInFlight": slot.target.as_ref().map_or(0, |t| t.exchanges_in_flight()),
                "eras": slot.target.as_ref().and_then(|t| t.known_dialects()).map(|d| json!({"modern": d.modern, "session": d.legacy})),
            })
        })
        .collect();
    let collisions: Vec<_> = snapshot
        .catalog
        .collisions
        .iter()
        .map(|c| json!({"kind": c.kind, "name": c.name, "keptBy": c.kept_by, "hiddenFrom": c.hidden_from}))
        .collect();
    json!({
        "ready": endpoint.router.is_ready(),
        "generation": snapshot.generation,
        "sessions": endpoint.sessions.len(),
        "streams": endpoint.open_streams(),
        "targets": targets,
        "collisions": collisions,
        "unfriendlyNames": snapshot.catalog.unfriendly_names,
    })
}

fn metrics(endpoint: &Endpoint) -> String {
    let snapshot = endpoint.router.snapshot();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP mcplex_ready 1 once the config is loaded and the catalog built.\n# TYPE mcplex_ready gauge\nmcplex_ready {}",
        u8::from(endpoint.router.is_ready())
    );
    let _ = writeln!(
        out,
        "# HELP mcplex_sessions Open session-era client sessions.\n# TYPE mcplex_sessions gauge\nmcplex_sessions {}",
        endpoint.sessions.len()
    );
    let _ = writeln!(
        out,
        "# HELP mcplex_target_up 1 when the target's lists were fetched.\n# TYPE mcplex_target_up gauge"
    );
    for slot in &snapshot.slots {
        let _ = writeln!(
            out,
            "mcplex_target_up{{target=\"{}\"}} {}",
            slot.name,
            u8::from(slot.items().is_some())
        );
    }
    let _ = writeln!(
        out,
        "# HELP mcplex_catalog_items Items exposed after merging.\n# TYPE mcplex_catalog_items gauge"
    );
    for kind in ItemKind::ALL {
        let _ = writeln!(
            out,
            "mcplex_catalog_items{{kind=\"{}\"}} {}",
            kind.result_key(),
            snapshot.catalog.entries(kind).len()
        );
    }
    let _ = writeln!(
        out,
        "# HELP mcplex_name_collisions Items hidden because an earlier target has the name.\n# TYPE mcplex_name_collisions gauge\nmcplex_name_collisions {}",
        snapshot.catalog.collisions.len()
    );
    let _ = writeln!(
        out,
        "# HELP mcplex_config_generation Catalog swaps since start.\n# TYPE mcplex_config_generation counter\nmcplex_config_generation {}",
        snapshot.generation
    );
    out
}
