//! The metrics of tool search: how often agents search, how much they get back, and how many calls go
//! through `call_tool`. The query text is never a label.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Tool search counters.
#[derive(Debug)]
pub struct SearchMetrics {
    searches: Counter,
    results: Counter,
    calls: Counter,
    lexical_only: Counter,
    embedding_failures: Counter,
    vectors: Gauge,
    duration: Histogram,
    query_embedding: Histogram,
}

impl Default for SearchMetrics {
    fn default() -> Self {
        Self {
            searches: Counter::default(),
            results: Counter::default(),
            calls: Counter::default(),
            lexical_only: Counter::default(),
            embedding_failures: Counter::default(),
            vectors: Gauge::default(),
            duration: super::latency_histogram(),
            query_embedding: super::latency_histogram(),
        }
    }
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
        registry.register(
            "mcplex_tool_search_duration_seconds",
            "Time find_tools takes inside the sidecar, the query's embedding included",
            self.duration.clone(),
        );
        registry.register(
            "mcplex_tool_search_query_embedding_seconds",
            "Time the toolSearch.embeddings endpoint takes to embed a query, as find_tools waits for it",
            self.query_embedding.clone(),
        );
    }

    /// Records how long one `find_tools` took.
    pub fn search_took(&self, took: Duration) {
        self.duration.observe(took.as_secs_f64());
    }

    /// Records how long the endpoint took to embed one query.
    pub fn query_embedded_in(&self, took: Duration) {
        self.query_embedding.observe(took.as_secs_f64());
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
