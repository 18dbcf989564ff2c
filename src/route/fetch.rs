//! Reads every page of one target's four lists, mcplex speaking for itself.

use crate::catalog::{ItemKind, Listed};
use crate::protocol::{ClientContext, jsonrpc};
use crate::route::channel::Channel;
use crate::upstream::{Target, UpstreamError, final_response};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

/// Most pages read from one list; a target that keeps returning cursors past this is cut off.
const MAX_PAGES: usize = 1000;

/// Fetches all four lists of a target (a list the target lacks is empty), the whole fetch under the
/// target's deadline.
pub async fn fetch_target(target: &Arc<Target>) -> Result<Listed, UpstreamError> {
    static CONTEXT: OnceLock<Arc<ClientContext>> = OnceLock::new();
    let context = CONTEXT.get_or_init(|| Arc::new(ClientContext::catalog()));
    target
        .deadline(async {
            let channel = Channel::open(target, context, false, None).await?;
            let mut listed = Listed::default();
            for kind in ItemKind::ALL {
                fetch_list(&channel, kind, &mut listed).await?;
            }
            Ok(listed)
        })
        .await
}

async fn fetch_list(channel: &Channel, kind: ItemKind, listed: &mut Listed) -> Result<(), UpstreamError> {
    let target = channel.target();
    if !target.offers(kind.capability()) {
        return Ok(());
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
            return Ok(());
        }
        let result = response.get("result").unwrap_or(&Value::Null);
        if !result.get(kind.result_key()).is_some_and(Value::is_array) {
            tracing::warn!(
                target_name = target.name(),
                list = kind.list_method(),
                "list result has no `{}` array; treating it as empty",
                kind.result_key()
            );
            return Ok(());
        }
        listed.add_page(kind, result);
        match result.get("nextCursor") {
            Some(next) if !next.is_null() && Some(next) != cursor.as_ref() => cursor = Some(next.clone()),
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
