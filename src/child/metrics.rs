//! What `mcplex serve` counts, for its `/metrics`: sessions (so server processes) open, processes started and
//! how they ended, and requests by outcome with their time. Names follow the sidecar's (`mcplex_serve_*`).

use super::process::Ended;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    outcome: &'static str,
}

/// The counters of one `mcplex serve`.
pub struct ServeMetrics {
    registry: Registry,
    sessions: Gauge,
    pooled: Gauge,
    started: Counter,
    ended: Family<EndLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
}

impl Default for ServeMetrics {
    fn default() -> Self {
        let mut metrics = Self {
            registry: Registry::default(),
            sessions: Gauge::default(),
            pooled: Gauge::default(),
            started: Counter::default(),
            ended: Family::default(),
            requests: Family::default(),
            // 0.25 ms to about 16 s, as the sidecar's call durations.
            duration: Histogram::new(exponential_buckets(0.000_25, 2.0, 17)),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "mcplex_serve_sessions",
            "Client sessions open, each with its server process",
            metrics.sessions.clone(),
        );
        registry.register(
            "mcplex_serve_pool_processes",
            "Warm server processes of the pool for 2026-07-28 requests (those parked for input included)",
            metrics.pooled.clone(),
        );
        registry.register(
            "mcplex_serve_processes_started",
            "Server processes started",
            metrics.started.clone(),
        );
        registry.register(
            "mcplex_serve_processes_ended",
            "Server processes ended, by why: exited, garbage, too_long, not_reading or stopped (by mcplex)",
            metrics.ended.clone(),
        );
        registry.register(
            "mcplex_serve_requests",
            "Client requests answered, by outcome: ok, error, denied, timeout or unavailable",
            metrics.requests.clone(),
        );
        registry.register(
            "mcplex_serve_request_duration_seconds",
            "Time from a client request to its answer from the server process",
            metrics.duration.clone(),
        );
        metrics
    }
}

impl ServeMetrics {
    /// A session and its process started.
    pub fn started(&self) {
        self.started.inc();
        self.sessions.inc();
    }

    /// A session's process ended.
    pub fn ended(&self, how: &Ended) {
        self.sessions.dec();
        self.count_end(how);
    }

    /// A process of the pool started.
    pub fn pool_started(&self) {
        self.started.inc();
        self.pooled.inc();
    }

    /// A process of the pool ended.
    pub fn pool_ended(&self, how: &Ended) {
        self.pooled.dec();
        self.count_end(how);
    }

    fn count_end(&self, how: &Ended) {
        let reason = match how {
            Ended::Exited { .. } => "exited",
            Ended::Garbage { .. } => "garbage",
            Ended::TooLong { .. } => "too_long",
            Ended::NotReading { .. } => "not_reading",
            Ended::Stopped { .. } => "stopped",
        };
        self.ended.get_or_create(&EndLabels { reason }).inc();
    }

    /// A client request was answered.
    pub fn answered(&self, outcome: &'static str, took: Duration) {
        self.requests.get_or_create(&RequestLabels { outcome }).inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
