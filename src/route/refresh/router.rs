//! The live routing state: the targets of the current config and the merged catalog, swapped whole.
//!
//! Slots refresh on their own (see [`TargetSlot`]); after each fetch the router merges what every slot
//! holds into a new [`Snapshot`]. The merge is CPU work under a plain mutex: no lock here is ever held
//! across network I/O, so a hung target cannot delay lists or calls of the others.

use crate::audit::AuditLog;
use crate::budget::Budget;
use crate::catalog::pins::Drift;
use crate::catalog::search::{self, SearchIndex};
use crate::catalog::{Catalog, Entry, ItemKind};
use crate::config::{Config, Embeddings};
use crate::metrics::Metrics;
use crate::route::bridge::{NoRandomness, ParkedCalls};
use crate::route::refresh::TargetSlot;
use crate::route::refresh::drift::DriftReporter;
use crate::route::refresh::indexed::{IndexedTools, Instructions};
use crate::route::refresh::target_slot::FETCHES_AT_ONCE;
use crate::route::refresh::vectorize::Vectorizer;
use crate::route::session::ListsChanged;
use crate::sync::lock;
use crate::upstream::Target;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast, watch};

/// How long a new target's first fetch may take before the sidecar is ready without it.
pub const DEFAULT_STARTUP_DEADLINE: Duration = Duration::from_millis(1500);
/// A refresh caused by a request for an unknown name happens at most this often per target.
pub const MISS_REFRESH_EVERY: Duration = Duration::from_secs(5);
/// How long a search waits for the first index of the tools.
pub const SEARCH_INDEX_WAIT: Duration = Duration::from_secs(5);
/// How long a request for an unknown name waits for the refresh it caused.
pub const MISS_WAIT: Duration = Duration::from_secs(1);

/// An immutable picture of targets and catalog; a request holds one for its whole life.
pub struct Snapshot {
    /// The config it was built from.
    pub config: Arc<Config>,
    /// Targets in config order.
    pub slots: Vec<Arc<TargetSlot>>,
    /// The merged catalog.
    pub catalog: Catalog,
    /// Grows with every swap.
    pub generation: u64,
}

impl Snapshot {
    /// The slot of the target called `name`.
    pub fn slot(&self, name: &str) -> Option<&Arc<TargetSlot>> {
        self.slots.iter().find(|s| s.name == name)
    }

    /// The item clients know as `exposed` that pinning holds back, with its target and why.
    pub fn held(&self, kind: ItemKind, exposed: &str) -> Option<(Arc<str>, Drift, String)> {
        self.slots.iter().find_map(|slot| {
            let drift = slot.held(kind, exposed)?;
            let why = slot.inspect_pins(|book| drift.explain(&slot.name, book.source()));
            Some((Arc::from(slot.name.as_str()), drift, why))
        })
    }

    /// The live target called `name`.
    pub fn target(&self, name: &str) -> Option<&Arc<Target>> {
        self.slot(name)?.target.as_ref()
    }
}

/// Shared routing state of the running sidecar.
pub struct Router {
    snapshot: RwLock<Arc<Snapshot>>,
    publishing: Mutex<()>,
    changes: broadcast::Sender<Value>,
    ready: AtomicBool,
    generation: AtomicU64,
    myself: Weak<Router>,
    /// Items per merged page sent to clients.
    pub page_size: usize,
    /// How long a new target's first fetch may delay readiness and a config change.
    pub startup_deadline: Duration,
    /// The budget every buffered message takes its share of.
    pub budget: Arc<Budget>,
    /// Call, error and reload metrics.
    pub metrics: Arc<Metrics>,
    /// A span per routed call (an OTLP exporter is listening).
    pub tracing: bool,
    /// The audit trail of calls.
    pub audit: Arc<AuditLog>,
    /// The pod's profile, for the audit trail.
    pub profile: Option<String>,
    /// Calls of 2026-07-28 clients parked while a session-era target waits for their input.
    pub parked: Arc<ParkedCalls>,
    drift_reporter: Arc<DriftReporter>,
    /// The lexical index of the catalog's tools, when tool search is on: built off the event loop after
    /// the tools change, so a search uses the latest index done (and checks its results against the catalog).
    search: watch::Sender<Option<Arc<IndexedTools>>>,
    /// The tools' vectors for the semantic signal, when `toolSearch.embeddings` is set.
    pub vectors: Arc<Vectorizer>,
    /// Places for list fetches starting at once (see [`super::target_slot::FETCHES_AT_ONCE`]).
    fetch_gate: Arc<Semaphore>,
}

impl ListsChanged for Router {
    fn lists_changed(&self, target: &str) {
        self.refresh_target(target);
    }
}

impl Router {
    /// An empty router; it becomes ready with the first [`Router::apply`]. Fails without randomness for the
    /// key that seals parked calls' states.
    pub fn new(
        page_size: usize,
        startup_deadline: Duration,
        budget: Arc<Budget>,
        metrics: Arc<Metrics>,
        tracing: bool,
        audit: (Arc<AuditLog>, Option<String>),
    ) -> Result<Arc<Self>, NoRandomness> {
        let empty = Snapshot {
            config: Arc::new(Config::default()),
            slots: Vec::new(),
            catalog: Catalog::default(),
            generation: 0,
        };
        let parked = Arc::new(ParkedCalls::new()?);
        let drift_reporter = Arc::new(DriftReporter {
            metrics: metrics.clone(),
            audit: audit.0.clone(),
            profile: audit.1.clone(),
        });
        Ok(Arc::new_cyclic(|myself| Self {
            snapshot: RwLock::new(Arc::new(empty)),
            publishing: Mutex::new(()),
            changes: broadcast::channel(64).0,
            ready: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            myself: myself.clone(),
            page_size: page_size.max(1),
            startup_deadline,
            budget,
            metrics,
            tracing,
            audit: audit.0,
            profile: audit.1,
            parked,
            drift_reporter,
            search: watch::Sender::new(None),
            vectors: Arc::default(),
            fetch_gate: Arc::new(Semaphore::new(FETCHES_AT_ONCE)),
        }))
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// True once a config was applied (every target fetched or past its start-up deadline).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// `list_changed` notifications for connected clients.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<Value> {
        self.changes.subscribe()
    }

    /// Applies a config: unchanged targets (with their pools, sessions and items) are kept; new ones are
    /// fetched, each for at most the start-up deadline; removed ones are retired once their calls end.
    pub async fn apply(&self, config: Config) {
        let old = self.snapshot();
        let mut kept: HashMap<&str, &Arc<TargetSlot>> = old.slots.iter().map(|s| (s.name.as_str(), s)).collect();
        let mut slots = Vec::with_capacity(config.targets.len());
        let mut fresh = Vec::new();
        for target_config in &config.targets {
            match kept.get(target_config.name.as_str()) {
                Some(slot) if slot.serves(target_config) => {
                    slots.push((*slot).clone());
                    kept.remove(target_config.name.as_str());
                }
                replaced => {
                    let slot = TargetSlot::new(target_config, &self.budget, &self.drift_reporter);
                    if let Some(old) = replaced {
                        slot.inherit_pins(old);
                    }
                    self.spawn_refresher(&slot);
                    fresh.push(slot.clone());
                    slots.push(slot);
                }
            }
        }
        let deadline = self.startup_deadline;
        futures_util::future::join_all(fresh.iter().filter(|s| s.target.is_some()).map(|slot| async move {
            if !slot.fetched_once() && tokio::time::timeout(deadline, slot.fetch_done()).await.is_err() {
                slot.mark_slow_start(deadline);
            }
        }))
        .await;
        let retiring: Vec<Arc<Target>> = kept.values().filter_map(|s| s.target.clone()).collect();
        tracing::info!(
            targets = slots.len(),
            added_or_changed = fresh.len(),
            removed_or_replaced = retiring.len(),
            "config applied"
        );
        {
            let _publishing = lock(&self.publishing);
            let current = self.snapshot();
            self.publish(&current, Arc::new(config), slots);
        }
        self.ready.store(true, Ordering::Release);
        for target in retiring {
            tokio::spawn(async move { target.retire().await });
        }
    }

    fn spawn_refresher(&self, slot: &Arc<TargetSlot>) {
        let router = self.myself.clone();
        tokio::spawn(slot.clone().run_refresher(self.fetch_gate.clone(), move || {
            if let Some(router) = router.upgrade() {
                router.republish();
            }
        }));
    }

    /// Merges what every slot holds now and publishes it if the config is still the same.
    fn republish(&self) {
        let _publishing = lock(&self.publishing);
        let current = self.snapshot();
        self.publish(&current, current.config.clone(), current.slots.clone());
    }

    /// Asks every target whose cache hint ran out (never sooner than `ttl_floor`) to refresh; does not wait.
    pub fn refresh_expired(&self, ttl_floor: Duration) {
        for slot in &self.snapshot().slots {
            if slot.inspect(|state| state.is_expired(ttl_floor)) {
                slot.request_fetch();
            }
        }
    }

    /// Asks targets that are down, or whose cache hint ran out, to refresh (the background upkeep).
    pub fn refresh_stale(&self, ttl_floor: Duration) {
        for slot in &self.snapshot().slots {
            if slot.inspect(|state| state.error.is_some() || state.is_expired(ttl_floor)) {
                slot.request_fetch();
            }
        }
    }

    /// Asks one target to refresh (it sent `list_changed`).
    pub fn refresh_target(&self, name: &str) {
        if let Some(slot) = self.snapshot().slot(name) {
            slot.request_fetch();
        }
    }

    /// A request named something no target lists: maybe a target changed its list without saying so.
    /// Targets are asked again at most every [`MISS_REFRESH_EVERY`] each, and the wait is bounded by
    /// [`MISS_WAIT`], so a client looping on a bad name neither loads the targets nor waits long.
    pub async fn refresh_after_miss(&self) {
        let waiters: Vec<_> = self
            .snapshot()
            .slots
            .iter()
            .filter(|s| s.inspect(|state| state.items.is_some()))
            .filter_map(|s| s.request_fetch_for_miss(MISS_REFRESH_EVERY))
            .collect();
        if !waiters.is_empty() {
            let _ = tokio::time::timeout(MISS_WAIT, futures_util::future::join_all(waiters)).await;
        }
    }

    fn publish(&self, old: &Snapshot, config: Arc<Config>, slots: Vec<Arc<TargetSlot>>) {
        let items: Vec<_> = slots.iter().filter_map(|s| s.items()).collect();
        let inputs: Vec<&_> = items.iter().map(Arc::as_ref).collect();
        let mut catalog = Catalog::merge(&inputs, Some(&old.catalog));
        let searching = config.tool_search.is_some();
        if searching {
            catalog.reserve(ItemKind::Tools, &search::OWN_TOOLS, "mcplex (toolSearch)");
        }
        for collision in catalog
            .collisions
            .iter()
            .filter(|c| !old.catalog.collisions.contains(c))
        {
            tracing::warn!(kind = collision.kind, name = %collision.name, kept_by = %collision.kept_by, hidden_from = %collision.hidden_from, "name collision: the item of the later target is hidden");
        }
        for name in catalog
            .unfriendly_names
            .iter()
            .filter(|n| !old.catalog.unfriendly_names.contains(n))
        {
            tracing::warn!(%name, "exposed name is longer than 64 characters or has characters some clients reject");
        }
        let mut changed: Vec<&str> = ItemKind::ALL
            .iter()
            .filter(|k| catalog.differs(&old.catalog, **k))
            .map(|k| k.list_changed())
            .collect();
        changed.dedup();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let embeddings = config.tool_search.as_ref().and_then(|s| s.embeddings.clone());
        let instructions: Instructions = items
            .iter()
            .filter_map(|items| {
                Some((
                    items.entries(ItemKind::Tools).first()?.target.clone(),
                    items.instructions.clone()?,
                ))
            })
            .collect();
        let stale = self
            .search
            .borrow()
            .as_ref()
            .is_none_or(|indexed| indexed.embeddings != embeddings || indexed.instructions != instructions);
        if searching && (catalog.differs(&old.catalog, ItemKind::Tools) || stale) {
            if embeddings.is_some() {
                self.vectors.start(self.search.subscribe(), self.metrics.clone());
            }
            self.index_tools(
                generation,
                catalog.entries(ItemKind::Tools).into(),
                embeddings,
                instructions,
            );
        } else if !searching && self.search.borrow().is_some() {
            // Off: the index goes, so that turning search on again indexes the tools of that moment.
            self.search.send_replace(None);
        }
        let snapshot = Arc::new(Snapshot {
            config,
            slots,
            catalog,
            generation,
        });
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
        for method in changed {
            let _ = self.changes.send(json!({ "jsonrpc": "2.0", "method": method }));
        }
    }

    /// Builds the search index of `tools` on the blocking pool (thousands of tools take milliseconds) and
    /// publishes it unless a newer one got there first.
    fn index_tools(
        &self,
        generation: u64,
        tools: Arc<[Entry]>,
        embeddings: Option<Embeddings>,
        instructions: Instructions,
    ) {
        let search = self.search.clone();
        tokio::task::spawn_blocking(move || {
            let indexed = Arc::new(IndexedTools {
                generation,
                index: SearchIndex::build(&tools, &instructions),
                tools,
                embeddings,
                instructions,
            });
            search.send_if_modified(|current| {
                let newer = current.as_ref().is_none_or(|c| c.generation < generation);
                if newer {
                    *current = Some(indexed);
                }
                newer
            });
        });
    }

    /// The catalog generation and the number of tools of the latest search index, without waiting.
    pub fn search_indexed(&self) -> Option<(u64, usize)> {
        self.search.borrow().as_ref().map(|i| (i.generation, i.index.len()))
    }

    /// The latest search index's size on the heap, and the JSON of the tools it holds, in bytes.
    pub fn search_index_bytes(&self) -> Option<(usize, usize)> {
        let indexed = self.search.borrow();
        let indexed = indexed.as_ref()?;
        let json = indexed.tools.iter().map(|e| e.json.len()).sum();
        Some((indexed.index.heap_bytes(), json))
    }

    /// The latest search index, waiting (at most [`SEARCH_INDEX_WAIT`]) for the first one to be built.
    pub async fn search_index(&self) -> Option<Arc<IndexedTools>> {
        let mut indexes = self.search.subscribe();
        let ready = tokio::time::timeout(SEARCH_INDEX_WAIT, indexes.wait_for(Option::is_some)).await;
        ready.ok()?.ok()?.clone()
    }

    /// Retires every target (at shutdown, after the listeners drained).
    pub async fn retire_all(&self) {
        let snapshot = self.snapshot();
        futures_util::future::join_all(
            snapshot
                .slots
                .iter()
                .filter_map(|s| s.target.as_ref())
                .map(|t| t.retire()),
        )
        .await;
    }
}
