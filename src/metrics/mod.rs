//! Prometheus metrics: what the platform team watches to answer "which tool of which target is slow or
//! failing for this agent". One registry per sidecar (tests run many in one process). Label values come
//! from bounded sets: target names from the config, method names from a fixed list, outcomes and error
//! kinds from enums here; tool names only when the operator opts in, and then at most a fixed number.

use crate::audit::{AuditEntry, AuditLog};
use crate::sync::lock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

mod labels;
mod search;

use labels::PinLabels;
pub use labels::{CallOutcome, Delivery, Name, OTHER_TOOLS};
pub use search::SearchMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    target: Name,
    method: &'static str,
    outcome: CallOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    target: Name,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    target: Name,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    target: Name,
    delivery: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    target: Name,
    tool: Name,
    outcome: CallOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// What the metrics record; the defaults are what `mcplex run` uses.
#[derive(Debug, Clone, Copy)]
pub struct MetricsOptions {
    /// Count and time every routed request (off only to measure what it costs).
    pub calls: bool,
    /// Distinct tool names given their own series in `mcplex_tool_calls_total`; 0 turns the metric off.
    pub tool_names: usize,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        Self {
            calls: true,
            tool_names: 0,
        }
    }
}

/// The state `/metrics` reports that is read when scraped rather than counted.
pub struct Scrape {
    /// Config loaded and every target fetched or past its start-up deadline.
    pub ready: bool,
    /// Session-era client sessions open.
    pub sessions: usize,
    /// SSE streams open to clients.
    pub streams: usize,
    /// Each configured target and whether its lists were fetched.
    pub targets: Vec<(Arc<str>, bool)>,
    /// Exposed items per kind.
    pub items: Vec<(&'static str, usize)>,
    /// Items hidden by name collisions.
    pub collisions: usize,
    /// Catalog swaps since start.
    pub generation: u64,
    /// Bytes of messages held in the budget now.
    pub budget_used: usize,
    /// Audit lines dropped since start because the writer fell behind.
    pub audit_dropped: u64,
}

/// Every metric of one sidecar.
pub struct Metrics {
    registry: Registry,
    options: MetricsOptions,
    requests: Family<CallLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<TargetLabels, Gauge>,
    upstream_errors: Family<ErrorLabels, Counter>,
    config_reloads: Family<ResultLabels, Counter>,
    tls_reloads: Family<ResultLabels, Counter>,
    server_requests: Family<DeliveryLabels, Counter>,
    tool_calls: Family<ToolLabels, Counter>,
    tools_seen: Mutex<HashSet<Arc<str>>>,
    routes: Mutex<RouteCache>,
    ready: Gauge,
    sessions: Gauge,
    streams: Gauge,
    target_up: Family<TargetLabels, Gauge>,
    items: Family<KindLabels, Gauge>,
    pin_changes: Family<PinLabels, Counter>,
    pin_drifting: Family<PinLabels, Gauge>,
    /// Tool search counters.
    pub search: SearchMetrics,
    collisions: Gauge,
    generation: Gauge,
    budget_used: Gauge,
    audit_dropped: Gauge,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 16 s: a relay hop is sub-millisecond, a tool may take its whole timeout.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 17))
}

impl Metrics {
    /// Registers every metric.
    pub fn new(options: MetricsOptions) -> Arc<Self> {
        let mut registry = Registry::default();
        let mut metrics = Self {
            registry: Registry::default(),
            options,
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            in_flight: Family::default(),
            upstream_errors: Family::default(),
            config_reloads: Family::default(),
            tls_reloads: Family::default(),
            server_requests: Family::default(),
            tool_calls: Family::default(),
            tools_seen: Mutex::new(HashSet::new()),
            routes: Mutex::new(RouteCache::default()),
            ready: Gauge::default(),
            sessions: Gauge::default(),
            streams: Gauge::default(),
            target_up: Family::default(),
            items: Family::default(),
            pin_changes: Family::default(),
            pin_drifting: Family::default(),
            search: SearchMetrics::default(),
            collisions: Gauge::default(),
            generation: Gauge::default(),
            budget_used: Gauge::default(),
            audit_dropped: Gauge::default(),
        };
        let m = &metrics;
        registry.register(
            "mcplex_requests",
            "Requests routed to targets, by target, method and outcome",
            m.requests.clone(),
        );
        registry.register(
            "mcplex_request_duration_seconds",
            "Time from routing a request to its answer, by target and method",
            m.duration.clone(),
        );
        registry.register(
            "mcplex_requests_in_flight",
            "Requests routed to a target and not yet answered",
            m.in_flight.clone(),
        );
        registry.register(
            "mcplex_upstream_errors",
            "Failed exchanges with targets (calls, list fetches, probes), by kind",
            m.upstream_errors.clone(),
        );
        registry.register(
            "mcplex_config_reloads",
            "Config edits applied (accepted) or refused with the last good config kept (rejected)",
            m.config_reloads.clone(),
        );
        registry.register(
            "mcplex_tls_reloads",
            "Rotated target TLS files taken (ok) or refused with the old ones kept (failed)",
            m.tls_reloads.clone(),
        );
        registry.register(
            "mcplex_server_requests",
            "Requests targets sent to clients (sampling, elicitation, roots), by how they were delivered",
            m.server_requests.clone(),
        );
        if options.tool_names > 0 {
            registry.register(
                "mcplex_tool_calls",
                "tools/call by exposed tool name (opt-in; names past the cap are counted as _other)",
                m.tool_calls.clone(),
            );
        }
        registry.register(
            "mcplex_ready",
            "1 once the config is loaded and every target fetched or past its start-up deadline",
            m.ready.clone(),
        );
        registry.register(
            "mcplex_sessions",
            "Open session-era client sessions",
            m.sessions.clone(),
        );
        registry.register("mcplex_streams", "Open SSE streams to clients", m.streams.clone());
        registry.register(
            "mcplex_target_up",
            "1 when the target's lists were fetched",
            m.target_up.clone(),
        );
        registry.register("mcplex_catalog_items", "Items exposed after merging", m.items.clone());
        registry.register(
            "mcplex_pin_changes",
            "Drifts of pinned definitions seen (held, flagged) and ended (restored, removed), by target and kind",
            m.pin_changes.clone(),
        );
        registry.register(
            "mcplex_pin_drifting",
            "Definitions that differ from their pins now: held back (enforce) or flagged (warn)",
            m.pin_drifting.clone(),
        );
        registry.register(
            "mcplex_name_collisions",
            "Items hidden because an earlier target has the name",
            m.collisions.clone(),
        );
        registry.register(
            "mcplex_config_generation",
            "Catalog swaps since start",
            m.generation.clone(),
        );
        registry.register(
            "mcplex_message_budget_used_bytes",
            "Bytes of messages held (request bodies, answers, queued stream messages)",
            m.budget_used.clone(),
        );
        registry.register(
            "mcplex_audit_dropped_lines",
            "Audit lines lost since start because the audit writer fell behind",
            m.audit_dropped.clone(),
        );
        m.search.register(&mut registry);
        metrics.registry = registry;
        // Series with a known, fixed label set start at zero, so rate() and alerts see them before the first event.
        for result in ["accepted", "rejected"] {
            metrics.config_reloads.get_or_create(&ResultLabels { result }).inc_by(0);
        }
        for result in ["ok", "failed"] {
            metrics.tls_reloads.get_or_create(&ResultLabels { result }).inc_by(0);
        }
        Arc::new(metrics)
    }

    /// Starts a configured target's fixed series at zero (requests in flight, server-request deliveries).
    pub fn add_target(&self, target: &str) {
        let target = Name(target.into());
        self.in_flight
            .get_or_create(&TargetLabels { target: target.clone() })
            .inc_by(0);
        for delivery in Delivery::ALL {
            self.server_requests
                .get_or_create(&DeliveryLabels {
                    target: target.clone(),
                    delivery: delivery.as_str(),
                })
                .inc_by(0);
        }
    }

    /// Starts recording one routed request; the record ends when it is finished or dropped.
    pub fn call(self: &Arc<Self>, target: &Arc<str>, method: &'static str, tool: Option<&str>) -> CallRecord {
        if !self.options.calls {
            return CallRecord::off();
        }
        CallRecord {
            recording: Some(self.recording(target, method, tool)),
            audit: None,
            started: Instant::now(),
        }
    }

    fn recording(self: &Arc<Self>, target: &Arc<str>, method: &'static str, tool: Option<&str>) -> Recording {
        let series = self.route_series(target, method);
        series.in_flight.inc();
        Recording {
            metrics: self.clone(),
            series,
            target: Name(target.clone()),
            method,
            tool: tool.filter(|_| self.options.tool_names > 0).map(Arc::from),
        }
    }

    /// The series of one route, resolved in the families once and kept: a call touches four of them, and
    /// every family lookup hashes its labels under the family's lock.
    fn route_series(&self, target: &Arc<str>, method: &'static str) -> Arc<RouteSeries> {
        let mut routes = lock(&self.routes);
        if let Some(series) = routes.get(&(target.clone(), method)) {
            return series.clone();
        }
        let name = Name(target.clone());
        let series = Arc::new(RouteSeries {
            in_flight: self
                .in_flight
                .get_or_create(&TargetLabels { target: name.clone() })
                .clone(),
            duration: self
                .duration
                .get_or_create(&RouteLabels { target: name, method })
                .clone(),
            requests: std::array::from_fn(|_| OnceLock::new()),
        });
        routes.insert((target.clone(), method), series.clone());
        series
    }

    /// Counts a failed exchange with a target.
    pub fn upstream_error(&self, target: &str, kind: &'static str) {
        let target = Name(target.into());
        self.upstream_errors.get_or_create(&ErrorLabels { target, kind }).inc();
    }

    /// Counts one drift of a pinned definition appearing (`held`, `flagged`) or ending (`restored`, `removed`).
    pub fn pin_change(&self, target: &str, kind: &'static str, action: &'static str) {
        let target = Name(target.into());
        self.pin_changes
            .get_or_create(&PinLabels { target, kind, action })
            .inc();
    }

    /// Sets how many of a target's definitions of `kind` drift now, by whether they are held or flagged.
    pub fn pins_drifting(&self, target: &str, kind: &'static str, action: &'static str, count: usize) {
        let target = Name(target.into());
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.pin_drifting
            .get_or_create(&PinLabels { target, kind, action })
            .set(count);
    }

    /// Counts a config edit: applied, or refused.
    pub fn config_reload(&self, accepted: bool) {
        let result = if accepted { "accepted" } else { "rejected" };
        self.config_reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// Counts a TLS file rotation: taken, or refused.
    pub fn tls_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.tls_reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// Counts a request a target sent to a client, by how it was delivered (or refused).
    pub fn server_request(&self, target: &str, delivery: Delivery) {
        let target = Name(target.into());
        let delivery = delivery.as_str();
        self.server_requests
            .get_or_create(&DeliveryLabels { target, delivery })
            .inc();
    }

    /// The text exposition (OpenMetrics), with the scrape-time state set first.
    pub fn encode(&self, now: Scrape) -> String {
        self.ready.set(i64::from(now.ready));
        self.sessions.set(now.sessions as i64);
        self.streams.set(now.streams as i64);
        // Removed targets must disappear from the gauge, so it is rebuilt each scrape.
        self.target_up.clear();
        for (name, up) in now.targets {
            self.target_up
                .get_or_create(&TargetLabels { target: Name(name) })
                .set(i64::from(up));
        }
        for (kind, count) in now.items {
            self.items.get_or_create(&KindLabels { kind }).set(count as i64);
        }
        self.collisions.set(now.collisions as i64);
        self.generation.set(now.generation as i64);
        self.budget_used.set(now.budget_used as i64);
        self.audit_dropped.set(now.audit_dropped as i64);
        let mut text = String::new();
        // Encoding into a String cannot fail on I/O; a formatting error would leave a partial page.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    fn tool_label(&self, tool: &Arc<str>) -> Name {
        let mut seen = lock(&self.tools_seen);
        // A known tool is looked up once (an insert would hash it again on every call).
        if seen.contains(tool) {
            Name(tool.clone())
        } else if seen.len() < self.options.tool_names {
            seen.insert(tool.clone());
            Name(tool.clone())
        } else {
            Name(OTHER_TOOLS.into())
        }
    }
}

/// The series of each route seen, by target and method. The keys come from the config, not from clients,
/// so foldhash's fast variant is enough.
type RouteCache = HashMap<(Arc<str>, &'static str), Arc<RouteSeries>, foldhash::fast::RandomState>;

/// The series a route (target and method) records into; a call's outcome counter is created on its first use,
/// as a family lookup would.
struct RouteSeries {
    in_flight: Gauge,
    duration: Histogram,
    requests: [OnceLock<Counter>; CallOutcome::COUNT],
}

struct Recording {
    metrics: Arc<Metrics>,
    series: Arc<RouteSeries>,
    target: Name,
    method: &'static str,
    tool: Option<Arc<str>>,
}

/// One routed request being timed, for the metrics and (when on) the audit trail; recorded as
/// [`CallOutcome::ClientGone`] if dropped unfinished.
pub struct CallRecord {
    recording: Option<Recording>,
    // Boxed: a record lives in every call's future, and audit lines are off unless the operator asks.
    audit: Option<Box<(Arc<AuditLog>, AuditEntry)>>,
    started: Instant,
}

impl CallRecord {
    /// A record that records nothing (call metrics off, no audit).
    pub fn off() -> Self {
        Self {
            recording: None,
            audit: None,
            started: Instant::now(),
        }
    }

    /// Also writes `entry` (completed with the outcome and latency) to the audit trail when the call ends.
    pub fn audit(&mut self, log: Arc<AuditLog>, entry: AuditEntry) {
        self.audit = Some(Box::new((log, entry)));
    }

    /// Records the outcome and the time since the request was routed (once; later calls do nothing).
    pub fn finish(&mut self, outcome: CallOutcome) {
        self.record(outcome);
    }

    fn record(&mut self, outcome: CallOutcome) {
        let elapsed = self.started.elapsed();
        if let Some(audit) = self.audit.take() {
            let (log, mut entry) = *audit;
            entry.outcome = outcome.as_str();
            entry.latency_ms = elapsed.as_secs_f64() * 1e3;
            log.write(entry);
        }
        let Some(r) = self.recording.take() else { return };
        let m = &r.metrics;
        r.series.duration.observe(elapsed.as_secs_f64());
        let counter = || {
            m.requests
                .get_or_create(&CallLabels {
                    target: r.target.clone(),
                    method: r.method,
                    outcome,
                })
                .clone()
        };
        match r.series.requests.get(outcome.index()) {
            Some(slot) => slot.get_or_init(counter).inc(),
            None => counter().inc(),
        };
        if let Some(tool) = &r.tool {
            let tool = m.tool_label(tool);
            m.tool_calls
                .get_or_create(&ToolLabels {
                    target: r.target.clone(),
                    tool,
                    outcome,
                })
                .inc();
        }
        r.series.in_flight.dec();
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.record(CallOutcome::ClientGone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(metrics: &Metrics) -> String {
        metrics.encode(Scrape {
            ready: true,
            sessions: 0,
            streams: 0,
            targets: vec![("math".into(), true)],
            items: vec![("tools", 2)],
            collisions: 0,
            generation: 1,
            budget_used: 0,
            audit_dropped: 0,
        })
    }

    #[test]
    fn calls_are_counted_timed_and_leave_the_in_flight_gauge() {
        let metrics = Metrics::new(MetricsOptions::default());
        let target: Arc<str> = "math".into();
        let mut record = metrics.call(&target, "tools/call", None);
        assert!(page(&metrics).contains(r#"mcplex_requests_in_flight{target="math"} 1"#));
        record.finish(CallOutcome::ToolError);
        drop(metrics.call(&target, "tools/call", None));
        let text = page(&metrics);
        assert!(
            text.contains(r#"mcplex_requests_total{target="math",method="tools/call",outcome="tool_error"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mcplex_requests_total{target="math",method="tools/call",outcome="client_gone"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mcplex_request_duration_seconds_count{target="math",method="tools/call"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"mcplex_requests_in_flight{target="math"} 0"#), "{text}");
        assert!(!text.contains("mcplex_tool_calls"), "tool names are opt-in: {text}");
        // Later calls of a route reach the same series (kept per route), other methods share the target's gauge.
        metrics.call(&target, "tools/call", None).finish(CallOutcome::ToolError);
        let reading = metrics.call(&target, "resources/read", None);
        let text = page(&metrics);
        assert!(
            text.contains(r#"mcplex_requests_total{target="math",method="tools/call",outcome="tool_error"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"mcplex_requests_in_flight{target="math"} 1"#), "{text}");
        drop(reading);
        assert!(page(&metrics).contains(r#"mcplex_requests_in_flight{target="math"} 0"#));
    }

    #[test]
    fn tool_names_are_capped() {
        let metrics = Metrics::new(MetricsOptions {
            calls: true,
            tool_names: 2,
        });
        let target: Arc<str> = "math".into();
        for tool in ["math_add", "math_mul", "math_div", "math_add"] {
            metrics.call(&target, "tools/call", Some(tool)).finish(CallOutcome::Ok);
        }
        let text = page(&metrics);
        assert!(text.contains(r#"tool="math_add",outcome="ok"} 2"#), "{text}");
        assert!(text.contains(r#"tool="math_mul",outcome="ok"} 1"#), "{text}");
        assert!(text.contains(r#"tool="_other",outcome="ok"} 1"#), "{text}");
        assert!(!text.contains("math_div"), "{text}");
    }

    #[test]
    fn call_metrics_off_record_nothing() {
        let metrics = Metrics::new(MetricsOptions {
            calls: false,
            tool_names: 0,
        });
        metrics.call(&"math".into(), "tools/call", None).finish(CallOutcome::Ok);
        assert!(!page(&metrics).contains("mcplex_requests_total{"));
    }
}
