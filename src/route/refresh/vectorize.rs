//! The semantic half of tool search: a task that follows the lexical index (so the catalog: refreshes,
//! `list_changed`, config edits) and gets a sentence vector for each tool from the configured embedding
//! endpoint. Off the request path and never part of readiness: until a tool has its vector, searches rank
//! it by its words alone. Vectors are kept by the digest of the text they were made from, so a refresh
//! asks only for tools that are new or changed, and a config edit that renames tools asks for none.

use crate::catalog::search::{ToolVectors, VectorRows, embedding_text};
use crate::embeddings::{BATCH, EmbedError, EmbeddingClient};
use crate::metrics::Metrics;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

use super::indexed::IndexedTools;

/// The first wait after a failed request to the endpoint; it doubles up to [`MOST_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between attempts while the endpoint fails.
const MOST_BACKOFF: Duration = Duration::from_secs(60);
/// Vectors become searchable after this many batches, not only at the end of a long first pass.
const PUBLISH_EVERY: usize = 16;

/// The vectors made so far, by the digest of the text each was made from.
#[derive(Default)]
struct Rows {
    by_text: HashMap<[u8; 32], u32>,
    store: Arc<VectorRows>,
}

impl Rows {
    /// Drops the rows no text uses any more (tools removed or changed), when there are any.
    fn compact(&mut self) {
        if self.by_text.len() == self.store.len() {
            return;
        }
        let mut kept: Vec<u32> = self.by_text.values().copied().collect();
        kept.sort_unstable();
        self.store = Arc::new(self.store.select(&kept));
        for row in self.by_text.values_mut() {
            // Every row in use is in `kept`; a missing one would be left out of the published vectors.
            *row = kept
                .binary_search(row)
                .ok()
                .and_then(|i| u32::try_from(i).ok())
                .unwrap_or(u32::MAX);
        }
    }
}

/// Tool vectors and the endpoint they came from (a query is embedded by the same model).
pub struct IndexedVectors {
    /// The catalog generation of the tools they cover.
    pub generation: u64,
    /// The endpoint that made them.
    pub client: Arc<EmbeddingClient>,
    /// The vectors, by exposed name.
    pub vectors: ToolVectors,
    /// How many tools the catalog generation has (all of them have a vector when equal to `vectors.len()`).
    pub of: usize,
}

/// What `/status` tells of the semantic signal.
#[derive(Debug, Clone, Default)]
pub struct VectorStatus {
    /// The last failure of the endpoint, until a request succeeds again.
    pub last_error: Option<String>,
}

/// The vectors published for searches, the task that makes them, and its status.
#[derive(Default)]
pub struct Vectorizer {
    published: watch::Sender<Option<Arc<IndexedVectors>>>,
    status: Mutex<VectorStatus>,
    started: OnceLock<()>,
}

impl Vectorizer {
    /// Starts the task that follows `indexes` (once; it ends when the index sender is dropped).
    pub fn start(self: &Arc<Self>, indexes: watch::Receiver<Option<Arc<IndexedTools>>>, metrics: Arc<Metrics>) {
        self.started.get_or_init(|| {
            let vectorizer = self.clone();
            tokio::spawn(async move { vectorizer.follow(indexes, metrics).await });
        });
    }

    /// The latest vectors, when the semantic signal is on and some are made.
    pub fn latest(&self) -> Option<Arc<IndexedVectors>> {
        self.published.borrow().clone()
    }

    /// The status for `/status`.
    pub fn status(&self) -> VectorStatus {
        lock(&self.status).clone()
    }

    fn note(&self, outcome: Result<(), &EmbedError>) {
        lock(&self.status).last_error = outcome.err().map(|e| e.to_string());
    }

    async fn follow(&self, mut indexes: watch::Receiver<Option<Arc<IndexedTools>>>, metrics: Arc<Metrics>) {
        let mut cache = Rows::default();
        let mut client: Option<Arc<EmbeddingClient>> = None;
        indexes.mark_changed();
        while indexes.changed().await.is_ok() {
            let Some(indexed) = indexes.borrow_and_update().clone() else {
                continue;
            };
            let Some(settings) = indexed.embeddings.clone() else {
                // Off: nothing is kept, so turning it on again asks for every vector of that moment.
                (cache, client) = (Rows::default(), None);
                self.published.send_replace(None);
                self.note(Ok(()));
                continue;
            };
            if client.as_ref().is_none_or(|c| *c.settings() != settings) {
                // Another endpoint or model: its vectors are not comparable with the old ones.
                cache = Rows::default();
                self.published.send_replace(None);
                match EmbeddingClient::new(&settings) {
                    Ok(built) => client = Some(Arc::new(built)),
                    Err(e) => {
                        tracing::warn!(error = %e, "toolSearch.embeddings: no client; searches rank by words only");
                        self.note(Err(&e));
                        client = None;
                        continue;
                    }
                }
            }
            let Some(client) = client.clone() else { continue };
            self.vectorize(&indexed, &client, &mut cache, &mut indexes, &metrics)
                .await;
        }
    }

    /// Gets the vectors `indexed` lacks and publishes them; returns early when a newer index arrives.
    async fn vectorize(
        &self,
        indexed: &Arc<IndexedTools>,
        client: &Arc<EmbeddingClient>,
        cache: &mut Rows,
        indexes: &mut watch::Receiver<Option<Arc<IndexedTools>>>,
        metrics: &Metrics,
    ) {
        let tools = indexed.tools.clone();
        // Thousands of JSON texts and digests: the blocking pool's work, not the event loop's.
        let Ok(texts) = tokio::task::spawn_blocking(move || {
            tools
                .iter()
                .map(|entry| {
                    let text = embedding_text(entry);
                    let key = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
                    let key: [u8; 32] = key.as_ref().try_into().unwrap_or([0; 32]);
                    (entry.exposed.clone(), key, text)
                })
                .collect::<Vec<_>>()
        })
        .await
        else {
            return;
        };
        let mut missing: Vec<(&[u8; 32], &String)> = Vec::new();
        let mut asked = std::collections::HashSet::new();
        for (_, key, text) in &texts {
            if !cache.by_text.contains_key(key) && asked.insert(key) {
                missing.push((key, text));
            }
        }
        let publish = |cache: &Rows| {
            let vectors: Vec<_> = texts
                .iter()
                .filter_map(|(name, key, _)| Some((name.clone(), *cache.by_text.get(key)?)))
                .collect();
            metrics.search.vectors(vectors.len());
            self.published.send_replace(Some(Arc::new(IndexedVectors {
                generation: indexed.generation,
                client: client.clone(),
                vectors: ToolVectors::new(vectors, cache.store.clone()),
                of: texts.len(),
            })));
        };
        let mut backoff = FIRST_BACKOFF;
        let mut batches = missing.chunks(BATCH).enumerate().peekable();
        while let Some((done, batch)) = batches.peek().copied() {
            if indexes.has_changed().unwrap_or(true) {
                return;
            }
            let inputs: Vec<String> = batch.iter().map(|(_, text)| (*text).clone()).collect();
            match client.embed(&inputs).await {
                Ok(vectors) => {
                    // The published store is shared with searches: the first batch after a publish copies it.
                    let store = Arc::make_mut(&mut cache.store);
                    for ((key, _), vector) in batch.iter().zip(vectors) {
                        match store.push(&vector) {
                            Ok(row) => {
                                cache.by_text.insert(**key, row);
                            }
                            Err(mismatch) => {
                                // The model behind the endpoint changed: no old vector compares with the
                                // new ones, so all are asked for again.
                                tracing::warn!(error = %mismatch, "toolSearch.embeddings: the endpoint's vectors changed dimension; every tool is embedded again");
                                *cache = Rows::default();
                                self.published.send_replace(None);
                                indexes.mark_changed();
                                return;
                            }
                        }
                    }
                    self.note(Ok(()));
                    backoff = FIRST_BACKOFF;
                    batches.next();
                    if (done + 1) % PUBLISH_EVERY == 0 {
                        publish(cache);
                    }
                }
                Err(e) => {
                    metrics.search.embedding_failed();
                    if lock(&self.status).last_error.is_none() {
                        tracing::warn!(error = %e, "toolSearch.embeddings: the endpoint failed; searches rank tools without a vector by words only until it answers");
                    }
                    self.note(Err(&e));
                    publish(cache);
                    // Wait, but not past a newer index (which may not need this batch at all).
                    if tokio::time::timeout(backoff, indexes.changed()).await.is_ok() {
                        indexes.mark_changed();
                        return;
                    }
                    backoff = (backoff * 2).min(MOST_BACKOFF);
                }
            }
        }
        // Only what the current tools use is kept.
        let used: std::collections::HashSet<&[u8; 32]> = texts.iter().map(|(_, key, _)| key).collect();
        cache.by_text.retain(|key, _| used.contains(key));
        cache.compact();
        if cache.store.has_slack() {
            Arc::make_mut(&mut cache.store).shrink_to_fit();
        }
        publish(cache);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_keeps_each_texts_vector_and_drops_the_rest() {
        let mut rows = Rows::default();
        let vectors = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]];
        for (key, vector) in vectors.iter().enumerate() {
            let row = Arc::make_mut(&mut rows.store).push(vector).unwrap();
            rows.by_text.insert([key as u8; 32], row);
        }
        rows.by_text.remove(&[1; 32]);
        rows.compact();
        assert_eq!(rows.store.len(), 2);
        let names: Vec<(Arc<str>, u32)> = [0u8, 2]
            .iter()
            .map(|key| (format!("t{key}").into(), rows.by_text[&[*key; 32]]))
            .collect();
        let tools = ToolVectors::new(names, rows.store.clone());
        // Each text's own vector is the one most similar to itself.
        for (key, name) in [(0, "t0"), (2, "t2")] {
            let best = tools.rank(&vectors[key]).unwrap().next().unwrap();
            assert_eq!(tools.name(best.position).unwrap().as_ref(), name);
        }
    }
}
