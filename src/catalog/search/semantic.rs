//! The semantic signal: each tool's sentence vector (from the configured embedding endpoint), held as
//! 8-bit integers with one scale per vector (a quarter of the memory of 32-bit floats; cosine ranks barely
//! move), and ranked by cosine similarity to the query's vector.

use super::Found;
use super::ranking::{self, BestFirst};
use crate::catalog::Entry;
use serde_json::Value;
use std::sync::Arc;

/// Longest description put in a tool's embedding text, in characters (about 75 tokens). A description's
/// first sentences say what the tool is for; what follows (arguments, return values, examples) adds
/// little to its meaning, and an encoder's cost grows with every token.
const MAX_DESCRIPTION: usize = 300;

/// The text a tool's vector is made from: its name as words, its title and its description.
pub fn embedding_text(entry: &Entry) -> String {
    let tool: Value = serde_json::from_str(&entry.json).unwrap_or_default();
    let mut text = super::words(&entry.original).join(" ");
    for field in ["title", "description"] {
        if let Some(value) = tool[field].as_str().map(str::trim).filter(|v| !v.is_empty()) {
            text.push_str(": ");
            text.extend(value.chars().take(MAX_DESCRIPTION));
        }
    }
    text
}

/// Why a vector was not added to [`VectorRows`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a vector of {got} dimensions among vectors of {held}")]
pub struct DimensionMismatch {
    /// The dimension of the rows held.
    pub held: usize,
    /// The dimension of the vector offered.
    pub got: usize,
}

/// Unit vectors of one dimension, quantized to 8 bits (component `i` of row `r` is
/// `values[r * dimensions + i] * scales[r]`), all in one allocation: a ranking reads them front to back
/// instead of chasing one allocation per vector.
#[derive(Debug, Clone, Default)]
pub struct VectorRows {
    dimensions: usize,
    scales: Vec<f32>,
    values: Vec<i8>,
}

impl VectorRows {
    /// Adds `vector` (of unit length, as the embedding client delivers them) and returns its row. The
    /// first vector sets the dimension; one of another dimension (a model replaced behind the same
    /// endpoint) is refused, for its similarities to the others would mean nothing.
    pub fn push(&mut self, vector: &[f32]) -> Result<u32, DimensionMismatch> {
        if self.scales.is_empty() {
            self.dimensions = vector.len();
        }
        if vector.len() != self.dimensions || vector.is_empty() {
            return Err(DimensionMismatch {
                held: self.dimensions,
                got: vector.len(),
            });
        }
        let row = u32::try_from(self.scales.len()).map_err(|_| DimensionMismatch {
            held: self.dimensions,
            got: vector.len(),
        })?;
        let scale = quantize_into(vector, &mut self.values);
        self.scales.push(scale);
        Ok(row)
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.scales.len()
    }

    /// Gives back what growing left unused.
    pub fn shrink_to_fit(&mut self) {
        self.values.shrink_to_fit();
        self.scales.shrink_to_fit();
    }

    /// True when growing left room unused (see [`VectorRows::shrink_to_fit`]).
    pub fn has_slack(&self) -> bool {
        self.values.capacity() > self.values.len() || self.scales.capacity() > self.scales.len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// The dimension of its rows (0 while it holds none).
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The bytes it holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.values.capacity() + self.scales.capacity() * size_of::<f32>()
    }

    /// Only the rows in `keep`, in that order (row `i` of the result is row `keep[i]` of this).
    pub fn select(&self, keep: &[u32]) -> Self {
        let mut selected = Self {
            dimensions: self.dimensions,
            scales: Vec::with_capacity(keep.len()),
            values: Vec::with_capacity(keep.len() * self.dimensions),
        };
        for &row in keep {
            let row = row as usize;
            if let (Some(scale), Some(values)) = (self.scales.get(row), self.row(row)) {
                selected.scales.push(*scale);
                selected.values.extend_from_slice(values);
            }
        }
        selected
    }

    fn row(&self, row: usize) -> Option<&[i8]> {
        self.values.get(row * self.dimensions..(row + 1) * self.dimensions)
    }

    /// The cosine similarity of each row to `query` (a unit vector of the same dimension), in row order.
    /// The dot products are summed in integers, which the compiler turns into vector instructions: a sum
    /// of floats must keep its order, so it does not, and 10,000 tools took 4 ms that way.
    fn similarities(&self, query: &[f32]) -> Vec<f32> {
        let mut quantized = Vec::with_capacity(query.len());
        let query_scale = quantize_into(query, &mut quantized);
        self.values
            .chunks_exact(self.dimensions.max(1))
            .zip(&self.scales)
            .map(|(row, scale)| {
                let sum: i32 = row
                    .iter()
                    .zip(&quantized)
                    .map(|(a, b)| i32::from(*a) * i32::from(*b))
                    .sum();
                sum as f32 * scale * query_scale
            })
            .collect()
    }
}

/// Appends `vector` quantized to 8 bits to `out` and returns its scale.
fn quantize_into(vector: &[f32], out: &mut Vec<i8>) -> f32 {
    let largest = vector.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
    // In range by construction: |x / scale| <= 127.
    out.extend(vector.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8));
    scale
}

/// The vectors of one catalog's tools, by exposed name: each tool's row in a [`VectorRows`] that tools
/// with the same text share.
#[derive(Debug, Default)]
pub struct ToolVectors {
    names: Vec<Arc<str>>,
    /// Each tool's place in name order, for ties in similarity.
    name_places: Vec<u32>,
    rows: Vec<u32>,
    store: Arc<VectorRows>,
}

impl ToolVectors {
    /// Holds `tools`, each tool's exposed name and its row in `store`; a row `store` lacks is left out.
    pub fn new(tools: Vec<(Arc<str>, u32)>, store: Arc<VectorRows>) -> Self {
        let (names, rows): (Vec<Arc<str>>, Vec<u32>) = tools
            .into_iter()
            .filter(|(_, row)| (*row as usize) < store.len())
            .unzip();
        Self {
            name_places: ranking::name_places(&names),
            names,
            rows,
            store,
        }
    }

    /// The bytes it holds on the heap: the rows and the lists of names and rows.
    pub fn heap_bytes(&self) -> usize {
        self.store.heap_bytes()
            + self.names.capacity() * size_of::<Arc<str>>()
            + (self.rows.capacity() + self.name_places.capacity()) * size_of::<u32>()
    }

    /// How many tools have a vector.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when none has.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The exposed name at `position`.
    pub fn name(&self, position: usize) -> Option<&Arc<str>> {
        self.names.get(position)
    }

    /// Every tool, most similar to `query` first (ties by name); `None` when `query` is of another
    /// dimension than the tools' vectors (the endpoint's model changed since they were made).
    pub fn rank(&self, query: &[f32]) -> Option<BestFirst<'_>> {
        if query.len() != self.store.dimensions() {
            return None;
        }
        let similarities = self.store.similarities(query);
        let found: Vec<Found> = self
            .rows
            .iter()
            .enumerate()
            .map(|(position, row)| Found {
                position,
                score: similarities[*row as usize],
            })
            .collect();
        Some(BestFirst::new(found, &self.name_places))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn unit(v: &[f32]) -> Vec<f32> {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    fn rows(vectors: &[&[f32]]) -> VectorRows {
        let mut rows = VectorRows::default();
        for v in vectors {
            rows.push(&unit(v)).unwrap();
        }
        rows
    }

    #[test]
    fn quantized_vectors_keep_their_cosines() {
        let a = unit(&[0.3, -0.5, 0.1, 0.8]);
        let b = unit(&[0.2, -0.4, 0.3, 0.7]);
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let mut store = VectorRows::default();
        store.push(&a).unwrap();
        let quantized = store.similarities(&b)[0];
        assert!((exact - quantized).abs() < 0.01, "{exact} vs {quantized}");
        let mut zero = VectorRows::default();
        zero.push(&[0.0, 0.0]).unwrap();
        assert_eq!(zero.similarities(&[1.0, 0.0]), [0.0]);
    }

    #[test]
    fn the_most_similar_comes_first_and_ties_go_by_name() {
        let store = Arc::new(rows(&[&[-1.0, 0.2], &[1.0, 0.1]]));
        let vectors = ToolVectors::new(
            vec![
                ("b_far".into(), 0),
                ("c_near".into(), 1),
                ("a_near".into(), 1),
                ("gone".into(), 2),
            ],
            store,
        );
        assert_eq!(vectors.len(), 3, "a row the store lacks is left out");
        let ranked: Vec<&str> = vectors
            .rank(&unit(&[1.0, 0.0]))
            .unwrap()
            .map(|f| vectors.name(f.position).unwrap().as_ref())
            .collect();
        assert_eq!(ranked, ["a_near", "c_near", "b_far"]);
        assert!(
            vectors.rank(&unit(&[1.0, 0.0, 0.0])).is_none(),
            "a query from another model"
        );
    }

    #[test]
    fn rows_keep_one_dimension_and_select_keeps_the_rows_asked_for() {
        let mut store = rows(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0]]);
        assert_eq!(store.push(&[1.0, 0.0, 0.0]), Err(DimensionMismatch { held: 2, got: 3 }));
        assert_eq!(store.len(), 3);
        let selected = store.select(&[2, 0]);
        assert_eq!(selected.len(), 2);
        assert_eq!(selected.row(0), store.row(2));
        assert_eq!(selected.row(1), store.row(0));
        assert!(selected.heap_bytes() >= 2 * 2 + 2 * 4);
    }

    #[test]
    fn a_tool_is_embedded_by_its_name_words_title_and_description() {
        let entry = Entry {
            exposed: "gh_createIssue".into(),
            target: "gh".into(),
            original: "createIssue".into(),
            json: json!({"name": "gh_createIssue", "title": "New issue", "description": "Opens an issue"})
                .to_string()
                .into(),
            params: None,
            in_sessions: true,
        };
        assert_eq!(embedding_text(&entry), "create issue: New issue: Opens an issue");
    }
}
