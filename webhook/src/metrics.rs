//! The webhook's own Prometheus metrics: every admission decision by outcome and reason, bad requests,
//! decision time, and serving-certificate reloads. Served at `/metrics` on the webhook's HTTPS port.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdmissionLabels {
    outcome: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Every metric of one webhook server.
pub struct WebhookMetrics {
    registry: Registry,
    admissions: Family<AdmissionLabels, Counter>,
    bad_requests: Counter,
    duration: Histogram,
    cert_reloads: Family<ResultLabels, Counter>,
}

impl WebhookMetrics {
    /// Registers every metric.
    pub fn new() -> Arc<Self> {
        let admissions = Family::<AdmissionLabels, Counter>::default();
        let bad_requests = Counter::default();
        // 50 µs to about 0.4 s: a decision is pure CPU work on one pod.
        let duration = Histogram::new(exponential_buckets(0.000_05, 2.0, 14));
        let cert_reloads = Family::<ResultLabels, Counter>::default();
        let mut registry = Registry::default();
        registry.register(
            "mcplex_webhook_admissions",
            "Admission decisions by outcome (injected, skipped, denied) and reason",
            admissions.clone(),
        );
        registry.register(
            "mcplex_webhook_bad_requests",
            "Request bodies that were not an AdmissionReview (answered HTTP 400)",
            bad_requests.clone(),
        );
        registry.register(
            "mcplex_webhook_decision_duration_seconds",
            "Time to decide one AdmissionReview",
            duration.clone(),
        );
        registry.register(
            "mcplex_webhook_certificate_reloads",
            "Serving certificate rotations taken (ok) or refused with the old pair kept (failed)",
            cert_reloads.clone(),
        );
        for result in ["ok", "failed"] {
            cert_reloads.get_or_create(&ResultLabels { result }).inc_by(0);
        }
        Arc::new(Self {
            registry,
            admissions,
            bad_requests,
            duration,
            cert_reloads,
        })
    }

    /// Counts one decision and the time it took.
    pub fn admission(&self, outcome: &'static str, reason: &'static str, seconds: f64) {
        self.admissions
            .get_or_create(&AdmissionLabels { outcome, reason })
            .inc();
        self.duration.observe(seconds);
    }

    /// Counts a body that was not an AdmissionReview.
    pub fn bad_request(&self) {
        self.bad_requests.inc();
    }

    /// Counts a certificate rotation: taken, or refused.
    pub fn cert_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.cert_reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail on I/O.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
