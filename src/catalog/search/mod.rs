//! Finding tools among thousands. Two signals rank a catalog's tools for a query: the lexical one
//! ([`lexical`], BM25 over the tools' words) and, when an embedding endpoint is configured, the semantic
//! one ([`semantic`], cosine similarity of sentence vectors). [`fuse`] joins their rankings by reciprocal
//! rank, and [`copies`] keeps one tool offered by several targets to one result. Pure data: built from the
//! catalog's tools, asked with a query (or its vector), answering positions.

pub mod copies;
pub mod lexical;
pub mod ranking;
pub mod semantic;

pub use copies::{Distinct, distinct, same_tool};
pub use lexical::{SearchIndex, ToolWords, words};
pub use ranking::BestFirst;
pub use semantic::{DimensionMismatch, ToolVectors, VectorRows, embedding_text};

use std::collections::HashMap;
use std::sync::Arc;

/// mcplex's own tool that searches the others.
pub const FIND_TOOLS: &str = "find_tools";
/// mcplex's own tool that calls a tool by name, as `tools/call` would.
pub const CALL_TOOL: &str = "call_tool";
/// The names tool search takes for itself.
pub const OWN_TOOLS: [&str; 2] = [FIND_TOOLS, CALL_TOOL];

/// The constant of reciprocal rank fusion: a tool's fused score is the sum over the rankings of
/// `1 / (RRF_K + rank)`. 60 is the value of the method's paper (Cormack et al., 2009) and of the trial in
/// issue 28; it keeps the top ranks of either signal from drowning the other.
pub const RRF_K: f64 = 60.0;

/// A match: the tool's position in the list an index was built from, and its relevance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    /// Position in the tool list the index was built from.
    pub position: usize,
    /// Relevance; higher is better.
    pub score: f32,
}

/// Joins rankings (each best first, of exposed names) by reciprocal rank: best first, ties by name.
pub fn fuse(rankings: &[Vec<Arc<str>>]) -> Vec<(Arc<str>, f64)> {
    let mut scores: HashMap<Arc<str>, f64> = HashMap::new();
    for ranking in rankings {
        for (rank, name) in (1u32..).zip(ranking) {
            *scores.entry(name.clone()).or_default() += 1.0 / (RRF_K + f64::from(rank));
        }
    }
    let mut fused: Vec<(Arc<str>, f64)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Arc<str>> {
        list.iter().map(|n| Arc::from(*n)).collect()
    }

    #[test]
    fn fusion_favours_what_both_signals_rank_well() {
        let lexical = names(&["a", "b", "c"]);
        let semantic = names(&["c", "b", "d"]);
        let fused = fuse(&[lexical, semantic]);
        let order: Vec<&str> = fused.iter().map(|(n, _)| n.as_ref()).collect();
        // b: 1/62 + 1/62; c: 1/63 + 1/61 (a hair more than b's); a: 1/61; d: 1/63.
        assert_eq!(order, ["c", "b", "a", "d"]);
        assert!((fused[1].1 - 2.0 / 62.0).abs() < 1e-12);
    }

    #[test]
    fn fusion_breaks_ties_by_name_and_takes_one_ranking_alone() {
        let fused = fuse(&[names(&["y", "x"]), names(&["x", "y"])]);
        assert_eq!(fused[0].0.as_ref(), "x");
        assert_eq!(fused[0].1, fused[1].1);
        let alone = fuse(&[names(&["q", "p"])]);
        assert_eq!(alone.iter().map(|(n, _)| n.as_ref()).collect::<Vec<_>>(), ["q", "p"]);
        assert!(fuse(&[]).is_empty());
    }
}
