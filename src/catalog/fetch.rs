//! Reads every page of one target's lists.

use crate::catalog::ItemKind;
use crate::jsonrpc;
use crate::upstream::{Channel, UpstreamError, final_response};
use serde_json::{Value, json};

/// Most pages read from one list; a target that keeps returning cursors past this is cut off.
const MAX_PAGES: usize = 1000;

/// Everything one target lists, with its cache hints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetItems {
    /// Items per kind, in [`ItemKind::ALL`] order, as the target sent them.
    pub lists: [Vec<Value>; 4],
    /// Smallest `ttlMs` seen, when the target sent any.
    pub ttl_ms: Option<u64>,
    /// True when any page was `cacheScope: private`.
    pub private: bool,
}

/// Fetches all four lists from a target (a list the target lacks is empty).
pub async fn fetch_all(channel: &Channel) -> Result<TargetItems, UpstreamError> {
    let mut items = TargetItems::default();
    for (slot, kind) in ItemKind::ALL.iter().enumerate() {
        items.lists[slot] = fetch_list(channel, *kind, &mut items).await?;
    }
    Ok(items)
}

async fn fetch_list(channel: &Channel, kind: ItemKind, hints: &mut TargetItems) -> Result<Vec<Value>, UpstreamError> {
    let target = channel.target().clone();
    let mut all = Vec::new();
    if !target.offers(kind.capability()) {
        return Ok(all);
    }
    let mut cursor: Option<Value> = None;
    for _ in 0..MAX_PAGES {
        let id = target.next_request_id();
        let params = match &cursor {
            Some(cursor) => json!({ "cursor": cursor }),
            None => json!({}),
        };
        let request = json!({ "jsonrpc": "2.0", "id": id, "method": kind.list_method(), "params": params });
        let response = final_response(channel.send(request, None).await?, &id, target.name()).await?;
        // One broken list must not hide the target's other lists: report it and carry on.
        if let Some((code, message)) = jsonrpc::error_of(&response) {
            if code != jsonrpc::METHOD_NOT_FOUND {
                tracing::warn!(
                    target_name = target.name(),
                    list = kind.list_method(),
                    code,
                    message,
                    "list failed; treating it as empty"
                );
            }
            return Ok(all);
        }
        let result = response.get("result").cloned().unwrap_or_default();
        let Some(page) = result.get(kind.result_key()).and_then(Value::as_array) else {
            tracing::warn!(
                target_name = target.name(),
                list = kind.list_method(),
                "list result has no `{}` array; treating it as empty",
                kind.result_key()
            );
            return Ok(all);
        };
        all.extend(
            page.iter()
                .filter(|item| item.get(kind.id_field()).is_some_and(Value::is_string))
                .cloned(),
        );
        if let Some(ttl) = result.get("ttlMs").and_then(Value::as_u64) {
            hints.ttl_ms = Some(hints.ttl_ms.map_or(ttl, |t| t.min(ttl)));
        }
        hints.private |= result.get("cacheScope").and_then(Value::as_str) == Some("private");
        match result.get("nextCursor") {
            Some(next) if !next.is_null() && Some(next) != cursor.as_ref() => cursor = Some(next.clone()),
            _ => return Ok(all),
        }
    }
    tracing::warn!(
        target_name = target.name(),
        list = kind.list_method(),
        "list still had more pages after {MAX_PAGES}; the rest is left out"
    );
    Ok(all)
}
