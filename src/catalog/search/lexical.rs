//! The lexical signal: BM25 relevance (the `bm25` crate) over the words of each merged tool: its name
//! split into words, title, description, parameter names and descriptions, and its target's name.

use super::Found;
use crate::catalog::Entry;
use bm25::{Embedder, EmbedderBuilder, Embedding, Scorer, Tokenizer};
use serde_json::Value;
use std::cmp::Ordering;
use std::sync::Arc;

/// Splits text into lowercase words: at every character that is not a letter or digit, and inside
/// identifiers at camelCase boundaries (`getUserByID` is `get user by id`), so that a tool's name matches
/// the words of a query. No stemming and no stop words: on public tool-retrieval data both ranked worse.
#[derive(Debug, Clone, Copy, Default)]
pub struct ToolWords;

impl Tokenizer for ToolWords {
    fn tokenize(&self, text: &str) -> Vec<String> {
        words(text)
    }
}

/// The words of `text` (see [`ToolWords`]).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for run in text.split(|c: char| !c.is_alphanumeric()).filter(|r| !r.is_empty()) {
        let chars: Vec<char> = run.chars().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let (before, here) = (chars[i - 1], chars[i]);
            let next_is_lower = chars.get(i + 1).is_some_and(|c| c.is_lowercase());
            // `aB` starts a word at B; in `IDFoo` the last capital starts `Foo`.
            let boundary = here.is_uppercase()
                && (before.is_lowercase() || before.is_ascii_digit() || (before.is_uppercase() && next_is_lower));
            if boundary {
                out.push(chars[start..i].iter().collect::<String>().to_lowercase());
                start = i;
            }
        }
        out.push(chars[start..].iter().collect::<String>().to_lowercase());
    }
    out
}

/// The text a tool is found by.
fn document(entry: &Entry) -> String {
    let tool: Value = serde_json::from_str(&entry.json).unwrap_or_default();
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let mut parts = vec![
        entry.original.to_string(),
        text(&tool["title"]),
        text(&tool["description"]),
        entry.target.to_string(),
    ];
    if let Some(properties) = tool["inputSchema"]["properties"].as_object() {
        for (name, schema) in properties {
            parts.push(name.clone());
            parts.push(text(&schema["description"]));
        }
    }
    parts.join(" ")
}

/// The lexical index of one catalog's tools.
pub struct SearchIndex {
    embedder: Embedder<u32, ToolWords>,
    scorer: Scorer<u32, u32>,
    /// The exposed name of each position, for ties and to check the catalog still holds the tool.
    names: Vec<Arc<str>>,
}

impl SearchIndex {
    /// Indexes `tools` (the catalog's tool list, in its order).
    pub fn build(tools: &[Entry]) -> Self {
        let documents: Vec<String> = tools.iter().map(document).collect();
        let corpus: Vec<&str> = documents.iter().map(String::as_str).collect();
        let embedder = EmbedderBuilder::<u32, ToolWords>::with_tokenizer_and_fit_to_corpus(ToolWords, &corpus).build();
        let mut scorer = Scorer::new();
        for (position, text) in (0u32..).zip(&documents) {
            scorer.upsert(&position, embedder.embed(text));
        }
        Self {
            embedder,
            scorer,
            names: tools.iter().map(|e| e.exposed.clone()).collect(),
        }
    }

    /// How many tools it holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when it holds no tool.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The exposed name at `position`.
    pub fn name(&self, position: usize) -> Option<&Arc<str>> {
        self.names.get(position)
    }

    /// Every tool that matches `query`, best first (ties by exposed name); the caller keeps those the
    /// asker may see and takes as many as it wants.
    pub fn search(&self, query: &str) -> Vec<Found> {
        let query: Embedding<u32> = self.embedder.embed(query);
        let mut found: Vec<Found> = self
            .scorer
            .matches(&query)
            .into_iter()
            .filter_map(|scored| {
                let position = usize::try_from(scored.id).ok()?;
                Some(Found {
                    position,
                    score: scored.score,
                })
            })
            .filter(|f| f.score > 0.0)
            .collect();
        found.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(Ordering::Equal)
                .then_with(|| self.names[a.position].cmp(&self.names[b.position]))
        });
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_split_into_the_words_a_query_uses() {
        assert_eq!(words("getUserByID"), ["get", "user", "by", "id"]);
        assert_eq!(words("HTTPServerError"), ["http", "server", "error"]);
        assert_eq!(words("list_open-issues.v2"), ["list", "open", "issues", "v2"]);
        assert_eq!(words("Weather in  Paris?"), ["weather", "in", "paris"]);
        assert_eq!(words("s3Bucket"), ["s3", "bucket"]);
        assert!(words(" _-. ").is_empty());
    }

    fn entry(target: &str, name: &str, tool: Value) -> Entry {
        let mut tool = tool;
        tool["name"] = json!(format!("{target}_{name}"));
        Entry {
            exposed: format!("{target}_{name}").into(),
            target: target.into(),
            original: name.into(),
            json: tool.to_string().into(),
            params: None,
            in_sessions: true,
        }
    }

    fn tools() -> Vec<Entry> {
        vec![
            entry(
                "weather",
                "getForecast",
                json!({"description": "Forecast for a city, by day"}),
            ),
            entry(
                "github",
                "create_issue",
                json!({"description": "Opens an issue in a repository",
                "inputSchema": {"type": "object", "properties": {"repo": {"description": "owner/name of the repository"}}}}),
            ),
            entry(
                "github",
                "list_issues",
                json!({"description": "Lists the issues of a repository"}),
            ),
            entry(
                "math",
                "add",
                json!({"title": "Addition", "description": "Adds two numbers"}),
            ),
            entry(
                "maths",
                "add",
                json!({"title": "Addition", "description": "Adds two numbers"}),
            ),
        ]
    }

    fn names(index: &SearchIndex, found: &[Found]) -> Vec<String> {
        found
            .iter()
            .map(|f| index.name(f.position).unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_best_match_comes_first_and_ties_go_by_name() {
        let index = SearchIndex::build(&tools());
        let found: Vec<Found> = index
            .search("what is the forecast in Paris")
            .into_iter()
            .take(3)
            .collect();
        assert_eq!(names(&index, &found)[0], "weather_getForecast");
        assert!(found.windows(2).all(|w| w[0].score >= w[1].score));
        let found = index.search("open a new issue in my repo");
        assert_eq!(names(&index, &found)[0], "github_create_issue");
        let found = index.search("addition of numbers");
        assert_eq!(names(&index, &found)[..2], ["math_add", "maths_add"]);
        assert_eq!(found[0].score, found[1].score);
    }

    #[test]
    fn every_match_comes_back_for_the_caller_to_filter_and_cut() {
        let index = SearchIndex::build(&tools());
        let found: Vec<Found> = index
            .search("issues repository")
            .into_iter()
            .filter(|f| index.name(f.position).unwrap().as_ref() != "github_list_issues")
            .collect();
        assert_eq!(names(&index, &found), ["github_create_issue"]);
        assert!(index.search("issues repository").len() > 1);
        assert!(index.search("zebra").is_empty());
        assert!(SearchIndex::build(&[]).search("anything").is_empty());
    }
}
