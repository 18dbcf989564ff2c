//! What a pin review found, told once per change: a log line, an audit line and a count, plus the gauges of
//! what drifts now. A target that keeps listing a changed tool is not reported again at every refresh.

use crate::audit::{AuditLog, PinAuditEntry};
use crate::catalog::pins::{Drift, PINNED_KINDS, PinBook, Review};
use crate::metrics::Metrics;
use std::sync::Arc;

/// Where review findings go; one per router, shared by its slots.
pub struct DriftReporter {
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The audit trail.
    pub audit: Arc<AuditLog>,
    /// The pod's profile, for the audit trail.
    pub profile: Option<String>,
}

impl DriftReporter {
    /// Reports each change of `review` for `target`, then sets the gauges from the book's drifts.
    pub fn report(&self, target: &str, book: &PinBook, review: &Review) {
        let pins = book.source().as_str();
        for drift in &review.appeared {
            let action = if drift.held { "held" } else { "flagged" };
            let pinned = drift.pinned.map(|d| d.to_string());
            tracing::warn!(
                target_name = %target,
                item = drift.kind.singular(),
                name = %drift.name,
                exposed = %drift.exposed,
                pinned = pinned.as_deref().unwrap_or("(not pinned)"),
                seen = %drift.seen,
                pins,
                "{}",
                if drift.held {
                    "definition differs from its pin: held back from the lists and refused when called"
                } else {
                    "definition differs from its pin: served and flagged (pinning: warn)"
                }
            );
            self.record(target, drift, action, pins);
        }
        for (drift, still_listed) in &review.ended {
            let action = if *still_listed { "restored" } else { "removed" };
            tracing::info!(
                target_name = %target,
                item = drift.kind.singular(),
                name = %drift.name,
                exposed = %drift.exposed,
                "{}",
                if *still_listed {
                    "definition matches its pin again"
                } else {
                    "drifted definition is no longer listed"
                }
            );
            self.record(target, drift, action, pins);
        }
        for kind in PINNED_KINDS {
            for (action, held) in [("held", true), ("flagged", false)] {
                let count = book
                    .drifts()
                    .iter()
                    .filter(|d| d.kind == kind && d.held == held)
                    .count();
                self.metrics.pins_drifting(target, kind.singular(), action, count);
            }
        }
    }

    fn record(&self, target: &str, drift: &Drift, action: &'static str, pins: &'static str) {
        self.metrics.pin_change(target, drift.kind.singular(), action);
        self.audit.write_pin(PinAuditEntry {
            time: String::new(),
            kind: "mcplex.audit",
            event: "pin",
            profile: self.profile.clone(),
            target: target.to_owned(),
            item: drift.kind.singular(),
            upstream_name: drift.name.to_string(),
            name: drift.exposed.to_string(),
            action,
            pins,
            pinned_sha256: drift.pinned.map(|d| d.to_string()),
            seen_sha256: drift.seen.to_string(),
        });
    }
}
