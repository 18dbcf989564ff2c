//! The metrics of tool search: how often agents search, how much they get back, and how many calls go
//! through `call_tool`. The query text is never a label.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Tool search counters.
#[derive(Debug, Default)]
pub struct SearchMetrics {
    searches: Counter,
    results: Counter,
    calls: Counter,
}

impl SearchMetrics {
    /// Registers the counters.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "mcplex_tool_searches",
            "find_tools calls answered",
            self.searches.clone(),
        );
        registry.register(
            "mcplex_tool_search_results",
            "Tools returned by find_tools, over all searches",
            self.results.clone(),
        );
        registry.register(
            "mcplex_call_tool_calls",
            "Calls made through call_tool (each is also counted as the tools/call it becomes)",
            self.calls.clone(),
        );
    }

    /// Counts one search that returned `results` tools.
    pub fn searched(&self, results: usize) {
        self.searches.inc();
        self.results.inc_by(u64::try_from(results).unwrap_or(u64::MAX));
    }

    /// Counts one call made through `call_tool`.
    pub fn called(&self) {
        self.calls.inc();
    }
}
