//! What the router publishes for tool search after the tools change, and the vectorizer follows.

use crate::catalog::Entry;
use crate::catalog::search::SearchIndex;
use crate::config::Embeddings;
use std::collections::BTreeMap;
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
    /// The instructions of each target that announced some, as indexed with its tools.
    pub instructions: Instructions,
}

/// Targets' instructions by target name.
pub type Instructions = BTreeMap<Arc<str>, Arc<str>>;
