//! One configured target inside the router: its namers, what it last listed, and the background task
//! that fetches its lists. Every slot refreshes on its own, so a hung target only ever delays itself.

use crate::budget::Budget;
use crate::catalog::naming::Rules;
use crate::catalog::pins::{Drift, ListDigests, PinBook, Pinning};
use crate::catalog::{ItemKind, Listed, ListedIds, Namer, TargetItems};
use crate::config::TargetConfig;
use crate::config::schema::FilterSpec;
use crate::route::refresh::drift::DriftReporter;
use crate::route::refresh::list_fetch;
use crate::sync::lock;
use crate::upstream::{Target, UpstreamError};
use futures_util::FutureExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, watch};

/// What the router knows of a target's lists.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    /// Items from the last successful fetch; `None` while the target is down or not fetched yet.
    pub items: Option<Arc<TargetItems>>,
    /// The items it had when it was last up, kept so calls to its names still name it while it is down.
    pub last_known: Option<Arc<TargetItems>>,
    /// Why the target is down.
    pub error: Option<String>,
    /// When the last fetch attempt ended.
    pub fetched_at: Option<Instant>,
    /// For a target of both eras: what it last listed to its sessions, applied to a new fetch's items
    /// until its sessions are read again.
    pub session_ids: Option<Arc<ListedIds>>,
}

impl TargetState {
    /// True when the target's `ttlMs` (never less than `floor`, so `ttlMs: 0` cannot cause a fetch storm) ran out.
    pub fn is_expired(&self, floor: Duration) -> bool {
        let ttl = self.items.as_ref().and_then(|i| i.ttl_ms);
        match (ttl, self.fetched_at) {
            (Some(ttl), Some(at)) => at.elapsed() >= Duration::from_millis(ttl).max(floor),
            _ => false,
        }
    }
}

/// A target in the router.
pub struct TargetSlot {
    /// The target's name.
    pub name: String,
    /// The target (absent when its TLS settings could not be used).
    pub target: Option<Arc<Target>>,
    tools: Namer,
    prompts: Namer,
    state: Mutex<TargetState>,
    wake: Notify,
    fetching: AtomicBool,
    fetches: watch::Sender<u64>,
    last_miss_refresh: Mutex<Option<Instant>>,
    pins: Mutex<PinBook>,
    reporter: Arc<DriftReporter>,
}

/// Fetches that may be starting at once, across targets: a thousand targets listed at the same moment
/// would each hold a connection and its buffers (about 25 KiB) at once.
pub const FETCHES_AT_ONCE: usize = 128;
/// How long a fetch holds its place among [`FETCHES_AT_ONCE`]: a slow or hung target then lets the next
/// fetch start, and never holds up the others' lists for longer than this.
const FETCH_GATE_HOLD: Duration = Duration::from_secs(1);

/// Runs `fetch`, holding a permit of `gate` for at most [`FETCH_GATE_HOLD`].
async fn gated<T>(gate: &Semaphore, fetch: impl Future<Output = T>) -> T {
    let permit = gate.acquire().await.ok();
    let mut fetch = std::pin::pin!(fetch);
    tokio::select! {
        out = &mut fetch => return out,
        _ = tokio::time::sleep(FETCH_GATE_HOLD) => {}
    }
    drop(permit);
    fetch.await
}

impl TargetSlot {
    /// A slot for a configured target; `Target::new` failures leave it permanently down with the reason.
    pub fn new(config: &TargetConfig, budget: &Arc<Budget>, reporter: &Arc<DriftReporter>) -> Arc<Self> {
        let metrics = &reporter.metrics;
        metrics.add_target(&config.name);
        let (tools, prompts) = namers(config);
        let (target, error) = match Target::new(config.clone(), budget.clone(), metrics.clone()) {
            Ok(target) => (Some(target), None),
            Err(error) => (None, Some(error.to_string())),
        };
        Arc::new(Self {
            name: config.name.clone(),
            target,
            tools,
            prompts,
            state: Mutex::new(TargetState {
                error,
                ..TargetState::default()
            }),
            wake: Notify::new(),
            fetching: AtomicBool::new(false),
            fetches: watch::Sender::new(0),
            last_miss_refresh: Mutex::new(None),
            pins: Mutex::new(PinBook::new(config.pinning, config.pins.clone())),
            reporter: reporter.clone(),
        })
    }

    /// Takes over the pins `old` learned at first sight (it served the same target before a config edit).
    pub fn inherit_pins(&self, old: &TargetSlot) {
        let same_url = old.target.as_ref().map(|t| &t.config.url) == self.target.as_ref().map(|t| &t.config.url);
        if same_url {
            let learned = lock(&old.pins).learned().cloned();
            lock(&self.pins).inherit(learned.as_ref());
        }
    }

    /// Looks at the pins and what drifts from them now.
    pub fn inspect_pins<T>(&self, look: impl FnOnce(&PinBook) -> T) -> T {
        look(&lock(&self.pins))
    }

    /// The held item clients know as `exposed`, if the last list held it back.
    pub fn held(&self, kind: ItemKind, exposed: &str) -> Option<Drift> {
        lock(&self.pins).held(kind, exposed).cloned()
    }

    /// A copy of the current state.
    pub fn state(&self) -> TargetState {
        lock(&self.state).clone()
    }

    /// Looks at the current state without copying it (for checks made on every list request).
    pub fn inspect<T>(&self, look: impl FnOnce(&TargetState) -> T) -> T {
        look(&lock(&self.state))
    }

    /// The items to merge: present only while the target is up.
    pub fn items(&self) -> Option<Arc<TargetItems>> {
        lock(&self.state).items.clone()
    }

    /// True when the slot is for exactly this config (so a config change can keep it).
    pub fn serves(&self, config: &TargetConfig) -> bool {
        self.target.as_ref().is_some_and(|t| t.config == *config)
    }

    /// Asks the slot's refresher for a fetch; requests made during a fetch coalesce into one more.
    pub fn request_fetch(&self) {
        if self.target.is_some() {
            self.wake.notify_one();
        }
    }

    /// Requests a fetch unless one was requested for a miss within `every`; returns a waiter for its end.
    pub fn request_fetch_for_miss(&self, every: Duration) -> Option<impl Future<Output = ()> + use<>> {
        self.target.as_ref()?;
        {
            let mut last = lock(&self.last_miss_refresh);
            if last.is_some_and(|at| at.elapsed() < every) {
                return None;
            }
            *last = Some(Instant::now());
        }
        let waiter = self.fetch_done();
        self.request_fetch();
        Some(waiter)
    }

    /// A future that ends when a fetch that starts after this call has ended.
    pub fn fetch_done(&self) -> impl Future<Output = ()> + use<> {
        let mut fetches = self.fetches.subscribe();
        // A fetch already under way may have started before what the caller wants to see: wait for the next.
        let wanted = *fetches.borrow() + 1 + u64::from(self.fetching.load(Ordering::Acquire));
        async move {
            let _ = fetches.wait_for(|n| *n >= wanted).await;
        }
    }

    /// True once the first fetch attempt ended.
    pub fn fetched_once(&self) -> bool {
        *self.fetches.borrow() > 0
    }

    /// Marks a target whose first fetch is slower than the start-up deadline as down (its fetch goes on).
    pub fn mark_slow_start(&self, deadline: Duration) {
        let mut state = lock(&self.state);
        if state.fetched_at.is_none() && state.error.is_none() {
            state.error = Some(format!(
                "target `{}` did not list its items within the start-up deadline of {deadline:?}; still trying in the background",
                self.name
            ));
            tracing::warn!(target_name = %self.name, ?deadline, "target missed the start-up deadline; it joins when it answers");
        }
    }

    /// Fetches the target's lists whenever asked, until the target is retired; `published` runs after
    /// every attempt so the router can merge the result.
    pub async fn run_refresher(self: Arc<Self>, fetch_gate: Arc<Semaphore>, published: impl Fn()) {
        let Some(target) = self.target.clone() else { return };
        loop {
            self.fetching.store(true, Ordering::Release);
            // Retirement is looked at first: a target removed while this task was woken (by the end of its
            // sessions, say) must not be sent a fetch, not even one dropped at once.
            let result = tokio::select! {
                biased;
                _ = target.retired().cancelled() => return,
                // Boxed, as are the other fetches here: inline, the largest of them would size this task's
                // state for the whole life of the target, idle or not, and a sidecar may have a thousand.
                result = gated(&fetch_gate, Box::pin(list_fetch::fetch_target(&target))) => result,
            };
            let both_eras = result.as_ref().is_ok_and(|fetched| fetched.both_eras);
            let result = match result {
                Ok(fetched) => Box::pin(self.digested(&target, fetched.listed)).await,
                Err(error) => Err(error),
            };
            // Lists are fetched rarely; the connection that carried them is not kept for the next time.
            target.close_idle_connections();
            let changed = self.record(&target, result);
            // The fetch itself may have signalled "unreachable"; that is already known now.
            let _ = target.unreachable_seen().notified().now_or_never();
            self.fetching.store(false, Ordering::Release);
            // A refresh that found what was there leaves the catalog as it is: with a thousand targets,
            // merging the whole catalog after each one's routine refresh kept the event loop busy for
            // seconds (find_tools p99 of 2 s in the search evaluation).
            if changed {
                published();
            }
            self.fetches.send_modify(|n| *n += 1);
            // A fetch asked for while the sessions are read (the target said its list changed) goes first:
            // a session half that hangs must not hold up the target's items.
            let mut woken = false;
            if both_eras {
                tokio::select! {
                    biased;
                    _ = target.retired().cancelled() => return,
                    ids = Box::pin(list_fetch::session_era_ids(&target)) => if let Some(ids) = ids {
                        self.mark_session_items(ids);
                        published();
                    },
                    _ = self.wake.notified() => woken = true,
                }
            }
            if woken {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = target.unreachable_seen().notified() => {}
                _ = target.lists_changed_seen().notified() => {}
                _ = target.retired().cancelled() => return,
            }
        }
    }

    /// Marks the published items by whether the target's sessions list them.
    fn mark_session_items(&self, ids: ListedIds) {
        let mut state = lock(&self.state);
        if let Some(items) = &state.items {
            let mut marked = TargetItems::clone(items);
            marked.mark_for_sessions(&ids);
            let marked = Arc::new(marked);
            state.last_known = Some(marked.clone());
            state.items = Some(marked);
        }
        state.session_ids = Some(Arc::new(ids));
    }

    /// The digests pinning needs of what the target listed (none when pinning is off), computed on the
    /// blocking pool: a list of thousands of tools takes milliseconds, which must not stall other traffic.
    async fn digested(&self, target: &Target, listed: Listed) -> Result<(Listed, ListDigests), UpstreamError> {
        if lock(&self.pins).mode() == Pinning::Off {
            return Ok((listed, ListDigests::default()));
        }
        tokio::task::spawn_blocking(move || {
            let digests = ListDigests::of(&listed);
            (listed, digests)
        })
        .await
        .map_err(|_| UpstreamError::Garbage {
            target: target.name().into(),
            reason: "its definitions could not be digested for pinning".into(),
        })
    }

    /// Keeps what a fetch found; true when the target's items or its error changed (the catalog must be
    /// merged again).
    fn record(&self, target: &Target, result: Result<(Listed, ListDigests), UpstreamError>) -> bool {
        // Pins are checked before the items are exposed, so a held item never reaches the catalog.
        let result = result.map(|(mut listed, digests)| {
            let mut book = lock(&self.pins);
            if book.mode() != Pinning::Off {
                let review = book.review(&mut listed, &digests, &self.tools, &self.prompts);
                self.reporter.report(&self.name, &book, &review);
            }
            listed
        });
        let mut state = lock(&self.state);
        let was_up = state.items.is_some();
        state.fetched_at = Some(Instant::now());
        match result {
            Ok(listed) => {
                if !was_up {
                    tracing::info!(target_name = %self.name, "target is up");
                }
                let mut items = TargetItems::expose(&self.name, &self.tools, &self.prompts, listed);
                items.instructions = target.instructions();
                if let Some(ids) = &state.session_ids {
                    items.mark_for_sessions(ids);
                }
                if state.items.as_deref() == Some(&items) {
                    return false;
                }
                let items = Arc::new(items);
                state.last_known = Some(items.clone());
                state.items = Some(items);
                state.error = None;
                true
            }
            Err(error) => {
                if error.is_unreachable() {
                    // It may come back as another version: probe its era again next time.
                    target.forget_era();
                }
                let error = error.to_string();
                if state.error.as_ref() != Some(&error) {
                    tracing::warn!(target_name = %self.name, %error, "target is down; its items are left out");
                }
                let changed = was_up || state.error.as_ref() != Some(&error);
                state.items = None;
                state.error = Some(error);
                changed
            }
        }
    }

    /// True when the target last listed `name` (tools and prompts by exposed name) even if it is down now.
    pub fn knew(&self, kind: ItemKind, name: &str) -> bool {
        lock(&self.state)
            .last_known
            .as_ref()
            .is_some_and(|items| items.entries(kind).iter().any(|e| &*e.exposed == name))
    }
}

/// The namers of a target's tools and prompts: its filters, renames, prefix and the profile's tool filter.
pub fn namers(config: &TargetConfig) -> (Namer, Namer) {
    let tools = Rules {
        exposed_allow: config.exposed_tools.allow.clone(),
        exposed_deny: config.exposed_tools.deny.clone(),
        ..rules(&config.tools)
    };
    (
        Namer::new(&config.prefix, tools),
        Namer::new(&config.prefix, rules(&config.prompts)),
    )
}

/// The catalog's naming rules from the config's filter.
fn rules(filter: &FilterSpec) -> Rules {
    Rules {
        allow: filter.allow.clone(),
        deny: filter.deny.clone(),
        rename: filter.rename.clone(),
        ..Rules::default()
    }
}
