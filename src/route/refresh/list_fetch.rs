//! Reads every page of one target's four lists, mcplex speaking for itself.

use crate::budget::Budget;
use crate::catalog::{ItemKind, Listed, ListedIds};
use crate::config::TargetConfig;
use crate::metrics::Metrics;
use crate::protocol::{ClientContext, Era, jsonrpc};
use crate::route::channel::{Channel, Sharing};
use crate::upstream::{Target, UpstreamError, final_message};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

/// Most pages read from one list; a target that keeps returning cursors past this is cut off.
const MAX_PAGES: usize = 1000;

/// What one fetch of a target's lists found.
pub struct Fetched {
    /// Its items.
    pub listed: Listed,
    /// True when it speaks both eras: what it lists to its sessions is then read next ([`session_era_ids`]).
    pub both_eras: bool,
}

/// Fetches all four lists of a target (a list the target lacks is empty), the whole fetch under the
/// target's deadline.
pub async fn fetch_target(target: &Arc<Target>) -> Result<Fetched, UpstreamError> {
    static CONTEXT: OnceLock<Arc<ClientContext>> = OnceLock::new();
    let context = CONTEXT.get_or_init(|| Arc::new(ClientContext::catalog()));
    let (listed, both_eras) = target
        .deadline(async {
            let channel = Channel::open(target, context, Sharing::Shared, None).await?;
            let mut listed = Listed::default();
            for kind in ItemKind::ALL {
                if !listed.full {
                    fetch_list(&channel, kind, &mut listed).await?;
                }
            }
            if listed.full {
                tracing::warn!(
                    target_name = target.name(),
                    limit_bytes = listed.limit,
                    "the target's lists hold more than {} MiB of JSON; the items past it are left out",
                    listed.limit / (1024 * 1024)
                );
            }
            let both_eras = channel.era() == Era::Modern && target.dialects().await?.legacy;
            Ok((listed, both_eras))
        })
        .await?;
    Ok(Fetched { listed, both_eras })
}

/// Fetches a target's lists once, as the sidecar would, outside any router (`mcplex pins`): the target is
/// set up, read under its deadline, and retired.
pub async fn fetch_once(
    config: &TargetConfig,
    budget: Arc<Budget>,
    metrics: Arc<Metrics>,
) -> Result<Listed, UpstreamError> {
    let target = Target::new(config.clone(), budget, metrics)?;
    let fetched = fetch_target(&target).await;
    target.retire().await;
    fetched.map(|fetched| fetched.listed)
}

/// What a target of both eras lists to its sessions (the ids of its items), when it can be read: the eras
/// of one server may offer different items (the conformance reference server has tools of 2026-07-28
/// only), and a session-era client's call of one of those must not go to a session that lacks it. Read
/// under a deadline of its own once the items are published: a session half that hangs or fails costs
/// only these marks, never the target's items.
pub async fn session_era_ids(target: &Arc<Target>) -> Option<ListedIds> {
    let read = async {
        let channel = Channel::session_era(target).await?;
        let mut listed = Listed::default();
        for kind in ItemKind::ALL {
            if !listed.full {
                fetch_list(&channel, kind, &mut listed).await?;
            }
        }
        Ok::<_, UpstreamError>(listed.ids())
    };
    match target.deadline(read).await {
        Ok(ids) => Some(ids),
        Err(error) => {
            tracing::warn!(target_name = target.name(), %error, "could not list what the target offers its sessions; every item is taken to be there");
            None
        }
    }
}

async fn fetch_list(channel: &Channel, kind: ItemKind, listed: &mut Listed) -> Result<(), UpstreamError> {
    let target = channel.link();
    if !target.offers(kind.capability()) {
        return Ok(());
    }
    // The page's cursor as the target wrote it, passed back unchanged.
    let mut cursor: Option<Box<RawValue>> = None;
    for _ in 0..MAX_PAGES {
        let id = target.next_request_id();
        let params = match &cursor {
            Some(cursor) => json!({ "cursor": cursor }),
            None => json!({}),
        };
        let request = json!({ "jsonrpc": "2.0", "id": id, "method": kind.list_method(), "params": params });
        // Kept as text: a page of a thousand tools read as a tree takes ten times its size, and the
        // targets are fetched at once.
        let response = final_message(channel.send(request, None).await?, &id, target.name()).await?;
        // One broken list must not hide the target's other lists: report it and carry on.
        if let Some(error) = response.member("error") {
            let error: Value = serde_json::from_str(error).unwrap_or_default();
            let code = error.get("code").and_then(Value::as_i64);
            let message = error.get("message").and_then(Value::as_str).unwrap_or("");
            if code != Some(jsonrpc::METHOD_NOT_FOUND) {
                tracing::warn!(
                    target_name = target.name(),
                    list = kind.list_method(),
                    code,
                    message,
                    "list failed; treating it as empty"
                );
            }
            return Ok(());
        }
        let result = response.member("result").unwrap_or_default();
        let next = match listed.add_page(kind, result) {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(
                    target_name = target.name(),
                    list = kind.list_method(),
                    "{error}; treating it as empty"
                );
                return Ok(());
            }
        };
        match next {
            Some(next) if cursor.as_ref().is_none_or(|cursor| cursor.get() != next) => {
                match RawValue::from_string(next.to_owned()) {
                    Ok(next) => cursor = Some(next),
                    Err(_) => return Ok(()),
                }
            }
            _ => return Ok(()),
        }
    }
    tracing::warn!(
        target_name = target.name(),
        list = kind.list_method(),
        "list still had more pages after {MAX_PAGES}; the rest is left out"
    );
    Ok(())
}
