//! What the router publishes for tool search after the tools change, and the vectorizer follows.

use crate::catalog::Entry;
use crate::catalog::search::SearchIndex;
use crate::config::Embeddings;
use std::sync::Arc;

/// A search index and the catalog generation it was built from.
pub struct IndexedTools {
    /// The catalog generation.
    pub generation: u64,
    /// The index.
    pub index: SearchIndex,
    /// The tools it was built from, in its positions (for their vectors).
    pub tools: Arc<[Entry]>,
    /// The embedding endpoint of the config it was built for, when the semantic signal is on.
    pub embeddings: Option<Embeddings>,
}
