//! The semantic signal: each tool's sentence vector (from the configured embedding endpoint), held as
//! 8-bit integers with one scale per vector (a quarter of the memory of 32-bit floats; cosine ranks barely
//! move), and ranked by cosine similarity to the query's vector.

use super::Found;
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

/// A unit vector quantized to 8 bits: component `i` is `values[i] * scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct Vector {
    scale: f32,
    values: Box<[i8]>,
}

impl Vector {
    /// Quantizes `vector` (of unit length, as the embedding client delivers them).
    pub fn quantize(vector: &[f32]) -> Self {
        let largest = vector.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
        let values = vector
            .iter()
            // In range by construction: |x / scale| <= 127.
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
            .collect();
        Self { scale, values }
    }

    /// Its dimension.
    pub fn dimensions(&self) -> usize {
        self.values.len()
    }

    /// The dot product with `other` (the cosine similarity, both being of unit length). In integers, which
    /// the compiler turns into vector instructions: a sum of floats must keep its order, so it does not, and
    /// 10,000 tools took 4 ms that way.
    pub fn dot(&self, other: &Vector) -> f32 {
        let sum: i32 = self
            .values
            .iter()
            .zip(other.values.iter())
            .map(|(a, b)| i32::from(*a) * i32::from(*b))
            .sum();
        sum as f32 * self.scale * other.scale
    }
}

/// The vectors of one catalog's tools, by exposed name.
#[derive(Debug, Default)]
pub struct ToolVectors {
    names: Vec<Arc<str>>,
    vectors: Vec<Arc<Vector>>,
}

impl ToolVectors {
    /// Holds `tools`: each tool's exposed name and vector.
    pub fn new(tools: Vec<(Arc<str>, Arc<Vector>)>) -> Self {
        let (names, vectors) = tools.into_iter().unzip();
        Self { names, vectors }
    }

    /// The bytes it holds on the heap: each distinct vector (tools with the same text share one) and the
    /// lists of names and vectors.
    pub fn heap_bytes(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        let vectors: usize = self
            .vectors
            .iter()
            .filter(|v| seen.insert(Arc::as_ptr(v)))
            .map(|v| v.values.len() + size_of::<Vector>() + 2 * size_of::<usize>())
            .sum();
        vectors + self.names.capacity() * size_of::<Arc<str>>() + self.vectors.capacity() * size_of::<Arc<Vector>>()
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

    /// Every tool, most similar to `query` first (ties by name); tools whose vector is of another dimension
    /// (from a model since replaced) are left out.
    pub fn rank(&self, query: &[f32]) -> Vec<Found> {
        let query = Vector::quantize(query);
        let mut found: Vec<Found> = self
            .vectors
            .iter()
            .enumerate()
            .filter(|(_, v)| v.dimensions() == query.dimensions())
            .map(|(position, v)| Found {
                position,
                score: v.dot(&query),
            })
            .collect();
        found.sort_unstable_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| self.names[a.position].cmp(&self.names[b.position]))
        });
        found
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

    #[test]
    fn quantized_vectors_keep_their_cosines() {
        let a = unit(&[0.3, -0.5, 0.1, 0.8]);
        let b = unit(&[0.2, -0.4, 0.3, 0.7]);
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let quantized = Vector::quantize(&a).dot(&Vector::quantize(&b));
        assert!((exact - quantized).abs() < 0.01, "{exact} vs {quantized}");
        assert_eq!(Vector::quantize(&[0.0, 0.0]).dot(&Vector::quantize(&[1.0, 0.0])), 0.0);
    }

    #[test]
    fn the_most_similar_comes_first_and_other_dimensions_are_left_out() {
        let vectors = ToolVectors::new(vec![
            ("b_far".into(), Arc::new(Vector::quantize(&unit(&[-1.0, 0.2])))),
            ("a_near".into(), Arc::new(Vector::quantize(&unit(&[1.0, 0.1])))),
            ("c_near".into(), Arc::new(Vector::quantize(&unit(&[1.0, 0.1])))),
            ("old_model".into(), Arc::new(Vector::quantize(&unit(&[1.0, 0.0, 0.0])))),
        ]);
        let ranked: Vec<&str> = vectors
            .rank(&unit(&[1.0, 0.0]))
            .iter()
            .map(|f| vectors.name(f.position).unwrap().as_ref())
            .collect();
        assert_eq!(ranked, ["a_near", "c_near", "b_far"]);
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
