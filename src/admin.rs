//! The admin endpoint (never MCP): `/healthz`, `/readyz`, `/status` (JSON) and `/metrics` (Prometheus).
//!
//! The port is reachable from the whole cluster network (the kubelet probes it, Prometheus scrapes it), so
//! what it tells depends on who asks: probes and metrics to anyone, `/status` (target URLs, upstream
//! errors, item counts) only to clients on the pod's loopback unless the operator opens it.

use crate::catalog::ItemKind;
use crate::catalog::pins::{PinBook, Pinning};
use crate::downstream::Endpoint;
use crate::downstream::respond::{self, Body};
use crate::metrics::Scrape;
use crate::serve::Peer;
use http::{Request, Response, StatusCode};
use serde_json::json;
use std::sync::Arc;

/// The content type of the OpenMetrics text exposition `/metrics` serves.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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
    /// True when a request from `peer` may read `/status`.
    pub fn allows(self, peer: Peer) -> bool {
        match self {
            Self::Anyone => true,
            Self::Loopback => peer.0.ip().is_loopback(),
        }
    }
}

/// Answers one admin request from `peer`.
pub async fn handle<B>(
    endpoint: Arc<Endpoint>,
    access: StatusAccess,
    peer: Peer,
    request: Request<B>,
) -> Response<Body> {
    let router = &endpoint.router;
    match request.uri().path() {
        "/healthz" => respond::plain(StatusCode::OK, "ok"),
        "/readyz" if router.is_ready() => respond::plain(StatusCode::OK, "ready"),
        "/readyz" => respond::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the config is not loaded yet",
        ),
        "/status" if access.allows(peer) => respond::json_with_status(StatusCode::OK, &status(&endpoint)),
        "/status" => respond::plain(
            StatusCode::FORBIDDEN,
            "/status names targets and their errors, so it is served only to clients on the pod's loopback: use `kubectl port-forward` to the admin port, or start mcplex with --public-status",
        ),
        // The page ends with `# EOF` exactly: OpenMetrics parsers reject anything after it.
        "/metrics" => respond::with_type(StatusCode::OK, OPENMETRICS, metrics(&endpoint)),
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
                "listsTruncated": state.items.as_ref().is_some_and(|i| i.truncated),
                "fetchedSecondsAgo": state.fetched_at.map(|at| at.elapsed().as_secs()),
                "callsInFlight": slot.target.as_ref().map_or(0, |t| t.exchanges_in_flight()),
                "eras": slot.target.as_ref().and_then(|t| t.known_dialects()).map(|d| json!({"modern": d.modern, "session": d.legacy})),
                "pinning": slot.inspect_pins(pinning_status),
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
        "toolSearch": snapshot.config.tool_search.as_ref().map(|search| {
            let indexed = endpoint.router.search_indexed();
            json!({
                "visible": search.visible,
                "results": search.results,
                "indexedTools": indexed.map(|(_, tools)| tools),
                "indexedGeneration": indexed.map(|(generation, _)| generation),
                "indexBytes": endpoint.router.search_index_bytes().map(|(index, _)| index),
                "toolsJsonBytes": endpoint.router.search_index_bytes().map(|(_, json)| json),
                "semantic": search.embeddings.as_ref().map(|settings| {
                    let vectors = endpoint.router.vectors.latest().filter(|v| v.client.settings() == settings);
                    json!({
                        "url": settings.url.to_string(),
                        "model": settings.model,
                        "vectors": vectors.as_ref().map_or(0, |v| v.vectors.len()),
                        "of": vectors.as_ref().map(|v| v.of),
                        "vectorsGeneration": vectors.as_ref().map(|v| v.generation),
                        "vectorBytes": vectors.as_ref().map(|v| v.vectors.heap_bytes()),
                        "lastError": endpoint.router.vectors.status().last_error,
                    })
                }),
            })
        }),
    })
}

/// A target's pinning: its mode, where its pins come from, and each definition held back or flagged with
/// both digests (`null` when pinning is off).
fn pinning_status(book: &PinBook) -> serde_json::Value {
    if book.mode() == Pinning::Off {
        return serde_json::Value::Null;
    }
    let drifts = |held: bool| -> Vec<_> {
        book.drifts()
            .iter()
            .filter(|d| d.held == held)
            .map(|d| {
                json!({
                    "kind": d.kind.singular(),
                    "name": d.name,
                    "exposed": d.exposed,
                    "pinnedSha256": d.pinned.map(|p| p.to_string()),
                    "seenSha256": d.seen.to_string(),
                })
            })
            .collect()
    };
    json!({
        "mode": book.mode().as_str(),
        "pins": book.source().as_str(),
        "held": drifts(true),
        "flagged": drifts(false),
    })
}

fn metrics(endpoint: &Endpoint) -> String {
    let router = &endpoint.router;
    let snapshot = router.snapshot();
    router.metrics.encode(Scrape {
        ready: router.is_ready(),
        sessions: endpoint.sessions.len(),
        streams: endpoint.open_streams(),
        targets: snapshot
            .slots
            .iter()
            .map(|slot| (Arc::from(slot.name.as_str()), slot.items().is_some()))
            .collect(),
        items: ItemKind::ALL
            .iter()
            .map(|kind| (kind.result_key(), snapshot.catalog.entries(*kind).len()))
            .collect(),
        collisions: snapshot.catalog.collisions.len(),
        generation: snapshot.generation,
        budget_used: router.budget.held_bytes(),
        audit_dropped: router.audit.dropped(),
    })
}
