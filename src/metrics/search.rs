//! The metrics of tool search: how often agents search, how much they get back, and how many calls go
//! through `call_tool`. The query text is never a label.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Tool search counters.
#[derive(Debug, Default)]
pub struct SearchMetrics {
    searches: Counter,
    results: Counter,
    calls: Counter,
    lexical_only: Counter,
    embedding_failures: Counter,
    vectors: Gauge,
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
        registry.register(
            "mcplex_tool_search_lexical_only",
            "Searches ranked by words alone although toolSearch.embeddings is set (no vectors yet, or the query's embedding failed)",
            self.lexical_only.clone(),
        );
        registry.register(
            "mcplex_tool_search_embedding_failures",
            "Requests to the toolSearch.embeddings endpoint that failed (for the tools' vectors or a query's)",
            self.embedding_failures.clone(),
        );
        registry.register(
            "mcplex_tool_search_vectors",
            "Tools that have a vector for the semantic signal",
            self.vectors.clone(),
        );
    }

    /// Counts one search ranked by words alone although the semantic signal is configured.
    pub fn lexical_only(&self) {
        self.lexical_only.inc();
    }

    /// Counts one failed request to the embedding endpoint.
    pub fn embedding_failed(&self) {
        self.embedding_failures.inc();
    }

    /// Sets how many tools have a vector.
    pub fn vectors(&self, count: usize) {
        self.vectors.set(i64::try_from(count).unwrap_or(i64::MAX));
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
