//! The lexical signal: BM25 relevance (the `bm25` crate) over the words of each merged tool: its name
//! split into words, title, description, parameter names and descriptions, and its target's name.

use super::Found;
use super::ranking::{self, BestFirst};
use crate::catalog::Entry;
use bm25::{Embedder, EmbedderBuilder, Tokenizer};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
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

/// The text a tool is found by (with its target's instructions, when it announced some).
fn document(entry: &Entry, instructions: Option<&Arc<str>>) -> String {
    let tool: Value = serde_json::from_str(&entry.json).unwrap_or_default();
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let mut parts = vec![
        entry.original.to_string(),
        text(&tool["title"]),
        text(&tool["description"]),
        entry.target.to_string(),
        instructions.map(ToString::to_string).unwrap_or_default(),
    ];
    if let Some(properties) = tool["inputSchema"]["properties"].as_object() {
        for (name, schema) in properties {
            parts.push(name.clone());
            parts.push(text(&schema["description"]));
        }
    }
    parts.join(" ")
}

/// The documents that hold one word, with the word's rarity.
struct Postings {
    /// BM25's inverse document frequency of the word in this index.
    idf: f32,
    /// Each document holding it, with the word's saturated term frequency there (from the `bm25` crate).
    documents: Box<[(u32, f32)]>,
}

/// The lexical index of one catalog's tools.
///
/// The `bm25` crate turns texts into weighted words (tokenizing, term frequency saturation, document
/// length normalisation, fitted to this corpus). The index keeps those weights in postings lists, one per
/// word, so a query adds up scores for just the documents that hold its words. The crate's own scorer
/// checks every query word against every word of each matching document, and natural-language queries
/// ("the", "a", "to") match nearly every document: at 10,000 tools that took about 2 ms per query.
pub struct SearchIndex {
    embedder: Embedder<u32, ToolWords>,
    postings: HashMap<u32, Postings>,
    /// The exposed name of each position, for ties and to check the catalog still holds the tool.
    names: Vec<Arc<str>>,
    /// Each position's place in name order, so ties are broken by name without comparing strings.
    name_order: Vec<u32>,
}

impl SearchIndex {
    /// Indexes `tools` (the catalog's tool list, in its order), each with its target's `instructions`.
    pub fn build(tools: &[Entry], instructions: &BTreeMap<Arc<str>, Arc<str>>) -> Self {
        let documents: Vec<String> = tools
            .iter()
            .map(|entry| document(entry, instructions.get(&entry.target)))
            .collect();
        let corpus: Vec<&str> = documents.iter().map(String::as_str).collect();
        let embedder = EmbedderBuilder::<u32, ToolWords>::with_tokenizer_and_fit_to_corpus(ToolWords, &corpus).build();
        let mut lists: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
        for (position, text) in (0u32..).zip(&documents) {
            let mut words = embedder.embed(text).0;
            // A word repeated in the text appears once per occurrence, each with the same weight.
            words.sort_unstable_by_key(|w| w.index);
            words.dedup_by_key(|w| w.index);
            for word in words {
                lists.entry(word.index).or_default().push((position, word.value));
            }
        }
        let count = documents.len() as f32;
        let postings = lists
            .into_iter()
            .map(|(word, documents)| {
                let holding = documents.len() as f32;
                let idf = (1.0 + (count - holding + 0.5) / (holding + 0.5)).ln();
                let documents = documents.into_boxed_slice();
                (word, Postings { idf, documents })
            })
            .collect();
        let names: Vec<Arc<str>> = tools.iter().map(|e| e.exposed.clone()).collect();
        Self {
            embedder,
            postings,
            name_order: ranking::name_places(&names),
            names,
        }
    }

    /// The bytes it holds on the heap, counted from its parts (postings, the word table, names and their
    /// order), for `/status` to set beside the tools' JSON.
    pub fn heap_bytes(&self) -> usize {
        let postings: usize = self
            .postings
            .values()
            .map(|p| p.documents.len() * size_of::<(u32, f32)>())
            .sum();
        let table = self.postings.capacity() * (size_of::<u32>() + size_of::<Postings>() + 1);
        postings + table + self.names.capacity() * size_of::<Arc<str>>() + self.name_order.capacity() * size_of::<u32>()
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
    /// asker may see and takes as many as it wants. A word the query repeats counts as often.
    pub fn search(&self, query: &str) -> BestFirst<'_> {
        let mut scores = vec![0f32; self.names.len()];
        let mut touched: Vec<u32> = Vec::new();
        for word in self.embedder.embed(query).indices() {
            let Some(postings) = self.postings.get(word) else {
                continue;
            };
            for &(position, weight) in &postings.documents {
                let score = &mut scores[position as usize];
                if *score == 0.0 {
                    touched.push(position);
                }
                *score += postings.idf * weight;
            }
        }
        let found: Vec<Found> = touched
            .into_iter()
            .map(|position| Found {
                position: position as usize,
                score: scores[position as usize],
            })
            .filter(|f| f.score > 0.0)
            .collect();
        BestFirst::new(found, &self.name_order)
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
        let index = SearchIndex::build(&tools(), &BTreeMap::new());
        let found: Vec<Found> = index.search("what is the forecast in Paris").take(3).collect();
        assert_eq!(names(&index, &found)[0], "weather_getForecast");
        assert!(found.windows(2).all(|w| w[0].score >= w[1].score));
        let found: Vec<Found> = index.search("open a new issue in my repo").collect();
        assert_eq!(names(&index, &found)[0], "github_create_issue");
        let found: Vec<Found> = index.search("addition of numbers").collect();
        assert_eq!(names(&index, &found)[..2], ["math_add", "maths_add"]);
        assert_eq!(found[0].score, found[1].score);
    }

    #[test]
    fn every_match_comes_back_for_the_caller_to_filter_and_cut() {
        let index = SearchIndex::build(&tools(), &BTreeMap::new());
        let found: Vec<Found> = index
            .search("issues repository")
            .filter(|f| index.name(f.position).unwrap().as_ref() != "github_list_issues")
            .collect();
        assert_eq!(names(&index, &found), ["github_create_issue"]);
        assert!(index.search("issues repository").len() > 1);
        assert_eq!(index.search("zebra").len(), 0);
        assert_eq!(SearchIndex::build(&[], &BTreeMap::new()).search("anything").len(), 0);
    }

    #[test]
    fn postings_score_as_the_crates_own_scorer_does() {
        let tools = tools();
        let index = SearchIndex::build(&tools, &BTreeMap::new());
        let documents: Vec<String> = tools.iter().map(|e| document(e, None)).collect();
        let mut scorer = bm25::Scorer::<u32, u32>::new();
        for (position, text) in (0u32..).zip(&documents) {
            scorer.upsert(&position, index.embedder.embed(text));
        }
        for query in [
            "add two numbers",
            "issues issues of a repository",
            "forecast by city",
            "zebra",
        ] {
            let ours: Vec<Found> = index.search(query).collect();
            let theirs = scorer.matches(&index.embedder.embed(query));
            assert_eq!(ours.len(), theirs.iter().filter(|m| m.score > 0.0).count(), "{query}");
            for found in &ours {
                let expected = scorer
                    .score(&(found.position as u32), &index.embedder.embed(query))
                    .unwrap();
                assert!(
                    (found.score - expected).abs() < 1e-5,
                    "{query}: {} vs {expected}",
                    found.score
                );
            }
        }
    }
}
