//! `mcplex pins`: every target of a config is fetched once, as the sidecar would fetch it, and the digest of
//! each tool and prompt it lists is written as a `pins` block to paste into the config; or, with `--check`,
//! compared with the pins the config already has.

use crate::budget::{Budget, DEFAULT_BUDGET_BYTES};
use crate::catalog::pins::{Digest, ListDigests, PINNED_KINDS, PinSet, Pinning};
use crate::catalog::{Catalog, ItemKind, Namer, TargetItems};
use crate::config::{Config, TargetConfig};
use crate::metrics::{Metrics, MetricsOptions};
use crate::route::refresh::list_fetch;
use crate::route::refresh::target_slot::namers;
use std::collections::BTreeMap;
use std::fmt::Write;

/// What clients would see of one listed item under the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exposure {
    /// Listed under this name.
    As(String),
    /// Left out by the target's filters or the profile's tool filter.
    Filtered,
    /// Its exposed name is taken by an earlier target.
    TakenBy {
        /// The contested name.
        exposed: String,
        /// The target that keeps it.
        target: String,
    },
}

/// One pinned item of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedItem {
    /// The target's own name for it.
    pub name: String,
    /// Its digest.
    pub digest: Digest,
    /// How clients would see it.
    pub exposure: Exposure,
}

/// One target of a scan.
#[derive(Debug)]
pub struct TargetScan {
    /// The target's config.
    pub config: TargetConfig,
    /// Its tools and prompts (in [`PINNED_KINDS`] order), or why they could not be read.
    pub items: Result<[Vec<ScannedItem>; 2], String>,
}

/// The scan of a whole config.
#[derive(Debug)]
pub struct PinScan {
    /// Targets in config order.
    pub targets: Vec<TargetScan>,
}

impl PinScan {
    /// Fetches every target of `config` at once, each under its own deadline.
    pub async fn run(config: &Config) -> Self {
        let budget = Budget::new(DEFAULT_BUDGET_BYTES);
        let metrics = Metrics::new(MetricsOptions::default());
        let fetched = futures_util::future::join_all(
            config
                .targets
                .iter()
                .map(|target| list_fetch::fetch_once(target, budget.clone(), metrics.clone())),
        )
        .await;
        let mut exposed = Vec::new();
        let mut pins = Vec::new();
        for (target, listed) in config.targets.iter().zip(fetched) {
            let (tools, prompts) = namers(target);
            match listed {
                Ok(listed) => {
                    pins.push(Ok(PinSet::of_listed(&listed, &ListDigests::of(&listed))));
                    exposed.push(TargetItems::expose(&target.name, &tools, &prompts, listed));
                }
                Err(error) => pins.push(Err(error.to_string())),
            }
        }
        let catalog = Catalog::merge(&exposed.iter().collect::<Vec<_>>(), None);
        let targets = config
            .targets
            .iter()
            .zip(pins)
            .map(|(target, pins)| TargetScan {
                config: target.clone(),
                items: pins.map(|pins| {
                    let (tools, prompts) = namers(target);
                    PINNED_KINDS.map(|kind| {
                        let namer = if kind == ItemKind::Tools { &tools } else { &prompts };
                        let pins = pins.of_kind(kind).into_iter().flatten();
                        scanned(&target.name, namer, kind, pins, &catalog)
                    })
                }),
            })
            .collect();
        Self { targets }
    }

    /// How many targets could not be read.
    pub fn incomplete(&self) -> usize {
        self.targets.iter().filter(|t| t.items.is_err()).count()
    }

    /// The `pins` block of every target, as YAML to paste into each target's entry of the config.
    pub fn yaml(&self) -> String {
        let mut out = String::from(
            "# Paste each block into its target's entry (beside `url`) and set `pinning: enforce` (or `warn`).\n",
        );
        for (index, target) in self.targets.iter().enumerate() {
            let name = &target.config.name;
            let url = &target.config.url;
            let items = match &target.items {
                Ok(items) => items,
                Err(error) => {
                    let _ = writeln!(
                        out,
                        "\n# targets[{index}] `{name}` ({url}): cannot list its items: {error}"
                    );
                    continue;
                }
            };
            let _ = writeln!(
                out,
                "\n# targets[{index}] `{name}` ({url}): {} tool(s), {} prompt(s)\n    pins:",
                items[0].len(),
                items[1].len()
            );
            for (kind, items) in PINNED_KINDS.iter().zip(items) {
                let key = kind.result_key();
                if items.is_empty() {
                    let _ = writeln!(out, "      {key}: {{}}");
                    continue;
                }
                let _ = writeln!(out, "      {key}:");
                for item in items {
                    let note = match &item.exposure {
                        Exposure::As(exposed) => format!("exposed as `{exposed}`"),
                        Exposure::Filtered => "hidden by this config's filters".to_owned(),
                        Exposure::TakenBy { exposed, target } => {
                            format!("hidden: `{exposed}` is taken by target `{target}`")
                        }
                    };
                    // Quoted as JSON strings (valid YAML): a name may hold `:`, and an all-digit digest with
                    // one `e` would otherwise read as a number.
                    let _ = writeln!(
                        out,
                        "        {}: \"{}\"  # {note}",
                        serde_json::Value::from(item.name.as_str()),
                        item.digest
                    );
                }
            }
        }
        out
    }

    /// Compares what the targets list with the config's pins: one line per difference, and how many of
    /// them would be held back or flagged.
    pub fn check(&self) -> (String, usize) {
        let mut out = String::new();
        let mut drifting = 0;
        for (index, target) in self.targets.iter().enumerate() {
            let config = &target.config;
            let name = &config.name;
            let (Ok(items), Some(pins)) = (&target.items, &config.pins) else {
                if config.pinning != Pinning::Off && config.pins.is_none() {
                    let _ = writeln!(out, "targets[{index}] `{name}`: no pins given (pinned at first sight)");
                }
                continue;
            };
            for (kind, items) in PINNED_KINDS.into_iter().zip(items) {
                let pinned = pins.of_kind(kind).cloned().unwrap_or_default();
                drifting += compare(&mut out, index, name, kind, items, &pinned);
            }
        }
        (out, drifting)
    }
}

/// Writes one target's differences of one kind; returns how many listed items drift.
fn compare(
    out: &mut String,
    index: usize,
    target: &str,
    kind: ItemKind,
    items: &[ScannedItem],
    pinned: &BTreeMap<String, Digest>,
) -> usize {
    let what = kind.singular();
    let mut drifting = 0;
    for item in items.iter().filter(|i| i.exposure != Exposure::Filtered) {
        let (name, seen) = (&item.name, item.digest);
        match pinned.get(name) {
            Some(pin) if *pin == seen => {}
            Some(pin) => {
                drifting += 1;
                let _ = writeln!(
                    out,
                    "targets[{index}] `{target}`: {what} `{name}` differs from its pin (pinned {pin}, listed {seen})"
                );
            }
            None => {
                drifting += 1;
                let _ = writeln!(
                    out,
                    "targets[{index}] `{target}`: {what} `{name}` is not pinned (listed {seen})"
                );
            }
        }
    }
    for name in pinned.keys().filter(|p| !items.iter().any(|i| &i.name == *p)) {
        let _ = writeln!(
            out,
            "targets[{index}] `{target}`: {what} `{name}` is pinned but not listed (a stale pin)"
        );
    }
    drifting
}

/// The scanned items of one kind, each with how clients would see it.
fn scanned<'p>(
    target: &str,
    namer: &Namer,
    kind: ItemKind,
    pins: impl Iterator<Item = (&'p String, &'p Digest)>,
    catalog: &Catalog,
) -> Vec<ScannedItem> {
    pins.map(|(name, digest)| {
        let exposure = match namer.expose(name) {
            None => Exposure::Filtered,
            Some(exposed) => match catalog.lookup(kind, &exposed) {
                Some(entry) if *entry.target != *target => Exposure::TakenBy {
                    exposed,
                    target: entry.target.to_string(),
                },
                _ => Exposure::As(exposed),
            },
        };
        ScannedItem {
            name: name.clone(),
            digest: *digest,
            exposure,
        }
    })
    .collect()
}
