//! The live state: targets and the merged catalog, swapped whole on config change or refresh.

use crate::catalog::{Catalog, ItemKind, MergeInput, Namer, TargetItems, fetch};
use crate::config::Config;
use crate::upstream::{Channel, ClientContext, Target, UpstreamError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// One target with its namers and its last fetched items.
#[derive(Clone)]
pub struct TargetSlot {
    /// The target (absent when its TLS files could not be used).
    pub target: Option<Arc<Target>>,
    /// Name of the target.
    pub name: String,
    /// Tool namer.
    pub tools: Namer,
    /// Prompt namer.
    pub prompts: Namer,
    /// Items from the last successful fetch; `None` while the target is down.
    pub items: Option<TargetItems>,
    /// Why the last fetch failed.
    pub error: Option<String>,
    /// When the items were fetched.
    pub fetched_at: Instant,
}

impl TargetSlot {
    /// True when the target's `ttlMs` (never less than `floor`, so `ttlMs: 0` cannot cause a fetch storm) ran out.
    pub fn is_expired(&self, floor: Duration) -> bool {
        self.items
            .as_ref()
            .and_then(|i| i.ttl_ms)
            .is_some_and(|ttl| self.fetched_at.elapsed() >= Duration::from_millis(ttl).max(floor))
    }
}

/// An immutable picture of targets and catalog; requests hold one for their whole life.
pub struct Snapshot {
    /// The config it was built from.
    pub config: Config,
    /// Targets in config order.
    pub slots: Vec<TargetSlot>,
    /// The merged catalog.
    pub catalog: Catalog,
    /// Grows with every swap.
    pub generation: u64,
}

impl Snapshot {
    /// The live target called `name`.
    pub fn target(&self, name: &str) -> Option<&Arc<Target>> {
        self.slots.iter().find(|s| s.name == name)?.target.as_ref()
    }
}

/// Shared state of the running sidecar.
pub struct Hub {
    snapshot: RwLock<Arc<Snapshot>>,
    refresh_lock: tokio::sync::Mutex<()>,
    changes: broadcast::Sender<Value>,
    ready: AtomicBool,
    generation: AtomicU64,
    /// Items per merged page sent to clients.
    pub page_size: usize,
}

impl Hub {
    /// An empty hub; it becomes ready with the first [`Hub::apply`].
    pub fn new(page_size: usize) -> Arc<Self> {
        let empty = Snapshot {
            config: Config { targets: Vec::new() },
            slots: Vec::new(),
            catalog: Catalog::default(),
            generation: 0,
        };
        Arc::new(Self {
            snapshot: RwLock::new(Arc::new(empty)),
            refresh_lock: tokio::sync::Mutex::new(()),
            changes: broadcast::channel(64).0,
            ready: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            page_size: page_size.max(1),
        })
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// True once a config was applied and its catalog built.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// `list_changed` notifications for connected clients.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<Value> {
        self.changes.subscribe()
    }

    /// Applies a new config: unchanged targets (and their pools and sessions) are kept, others built and fetched.
    pub async fn apply(&self, config: Config) {
        let _guard = self.refresh_lock.lock().await;
        let old = self.snapshot();
        let mut kept: HashMap<&str, &TargetSlot> = old.slots.iter().map(|s| (s.name.as_str(), s)).collect();
        let mut slots = Vec::with_capacity(config.targets.len());
        let mut to_fetch = Vec::new();
        for target_config in &config.targets {
            let reusable = kept
                .get(target_config.name.as_str())
                .filter(|s| s.target.as_ref().is_some_and(|t| t.config == *target_config));
            if let Some(slot) = reusable {
                slots.push((*slot).clone());
                kept.remove(target_config.name.as_str());
                continue;
            }
            let tools = Namer::new(&target_config.prefix, &target_config.tools);
            let prompts = Namer::new(&target_config.prefix, &target_config.prompts);
            let (target, error) = match Target::new(target_config.clone()) {
                Ok(target) => (Some(target), None),
                Err(e) => (None, Some(e.to_string())),
            };
            if target.is_some() {
                to_fetch.push(slots.len());
            }
            slots.push(TargetSlot {
                target,
                name: target_config.name.clone(),
                tools,
                prompts,
                items: None,
                error,
                fetched_at: Instant::now(),
            });
        }
        fetch_slots(&mut slots, &to_fetch).await;
        let removed: Vec<Arc<Target>> = kept.values().filter_map(|s| s.target.clone()).collect();
        tracing::info!(
            targets = slots.len(),
            added_or_changed = to_fetch.len(),
            removed = removed.len(),
            "config applied"
        );
        self.publish(&old, config, slots);
        self.ready.store(true, Ordering::Release);
        tokio::spawn(async move {
            for target in removed {
                target.close().await;
            }
        });
    }

    /// Re-fetches the targets `select` picks and publishes the result if anything changed.
    pub async fn refresh(&self, select: impl Fn(&TargetSlot) -> bool) {
        let _guard = self.refresh_lock.lock().await;
        let old = self.snapshot();
        let mut slots = old.slots.clone();
        let chosen: Vec<usize> = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.target.is_some() && select(s))
            .map(|(i, _)| i)
            .collect();
        if chosen.is_empty() {
            return;
        }
        fetch_slots(&mut slots, &chosen).await;
        self.publish(&old, old.config.clone(), slots);
    }

    /// Re-fetches one target by name (after it sent `list_changed`).
    pub async fn refresh_target(&self, name: &str) {
        self.refresh(|s| s.name == name).await;
    }

    /// Re-fetches targets that are down, or whose cache hint expired (bounded below by `ttl_floor`).
    pub async fn refresh_stale(&self, ttl_floor: Duration) {
        self.refresh(|s| s.error.is_some() || s.is_expired(ttl_floor)).await;
    }

    /// Re-fetches targets whose cache hint expired, if any did (a merged list is about to be served).
    pub async fn refresh_expired(&self, ttl_floor: Duration) {
        if self.snapshot().slots.iter().any(|s| s.is_expired(ttl_floor)) {
            self.refresh(|s| s.is_expired(ttl_floor)).await;
        }
    }

    fn publish(&self, old: &Snapshot, config: Config, slots: Vec<TargetSlot>) {
        let inputs: Vec<MergeInput<'_>> = slots
            .iter()
            .map(|s| MergeInput {
                target: &s.name,
                tools: &s.tools,
                prompts: &s.prompts,
                items: s.items.as_ref(),
            })
            .collect();
        let catalog = Catalog::merge(&inputs, Some(&old.catalog));
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
        let mut changed_notifications: Vec<&str> = ItemKind::ALL
            .iter()
            .filter(|k| catalog.differs(&old.catalog, **k))
            .map(|k| k.list_changed())
            .collect();
        changed_notifications.dedup();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot = Arc::new(Snapshot {
            config,
            slots,
            catalog,
            generation,
        });
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
        for method in changed_notifications {
            let _ = self.changes.send(json!({ "jsonrpc": "2.0", "method": method }));
        }
    }
}

async fn fetch_slots(slots: &mut [TargetSlot], chosen: &[usize]) {
    let fetches = chosen.iter().map(|&i| {
        let target = slots[i].target.clone();
        async move {
            let Some(target) = target else {
                return (i, Err("target has no client".to_string()));
            };
            (i, fetch_target(&target).await.map_err(|e| e.to_string()))
        }
    });
    for (i, result) in futures_util::future::join_all(fetches).await {
        let slot = &mut slots[i];
        let was_down = slot.error.is_some() || slot.items.is_none();
        slot.fetched_at = Instant::now();
        match result {
            Ok(items) => {
                if was_down {
                    tracing::info!(target_name = %slot.name, "target is up");
                }
                slot.items = Some(items);
                slot.error = None;
            }
            Err(error) => {
                if slot.error.as_ref() != Some(&error) {
                    tracing::warn!(target_name = %slot.name, %error, "target is down; its items are left out");
                }
                slot.items = None;
                slot.error = Some(error);
            }
        }
    }
}

async fn fetch_target(target: &Arc<Target>) -> Result<TargetItems, UpstreamError> {
    let context = Arc::new(ClientContext::mcplex());
    let attempt = async {
        let channel = Channel::open(target, &context, false).await?;
        fetch::fetch_all(&channel).await
    };
    let result = match tokio::time::timeout(target.config.timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(UpstreamError::Timeout {
            target: target.name().into(),
            after: target.config.timeout,
        }),
    };
    if let Err(e) = &result
        && e.is_unreachable()
    {
        // The target may come back as another version; probe its era again next time.
        target.forget_era().await;
    }
    result
}
