//! The answers mcplex writes itself: its capabilities and identity, `server/discover` and `initialize`
//! results, and pages of the merged lists.

use crate::budget::Hold;
use crate::catalog::{Entry, ItemKind, cursor};
use crate::identity::Acting;
use crate::protocol::{self, Era, jsonrpc, meta};
use crate::route::message::{Inbound, Outcome};
use crate::route::method::{access, search};
use crate::route::refresh::{Router, Snapshot};
use serde_json::{Value, json};
use std::time::Duration;

/// How long a modern client may cache a merged list when no target set a shorter `ttlMs`.
const DEFAULT_LIST_TTL_MS: u64 = 10_000;

/// Shortest time a target's lists are reused when serving merged lists.
const LIST_TTL_FLOOR: Duration = Duration::from_secs(1);

/// What mcplex offers, the same for every client so capabilities never change under a session.
pub fn capabilities() -> Value {
    json!({
        "tools": { "listChanged": true },
        "prompts": { "listChanged": true },
        "resources": { "listChanged": true, "subscribe": true },
        "logging": {},
        "completions": {},
    })
}

/// Short instructions naming the targets behind mcplex.
pub fn instructions(snapshot: &Snapshot) -> String {
    let names: Vec<&str> = snapshot.slots.iter().map(|s| s.name.as_str()).collect();
    format!(
        "mcplex multiplexes these MCP servers: {}. Tool and prompt names carry the server's prefix.",
        names.join(", ")
    )
}

/// The `server/discover` result. Tasks are offered to 2026-07-28 clients only (mcplex routes the
/// extension's methods in that era), whether or not a target creates any: a client that opts in simply
/// gets plain results from targets that do not.
pub fn discover_result(snapshot: &Snapshot) -> Value {
    let mut capabilities = capabilities();
    capabilities["extensions"] = json!({ protocol::tasks::EXTENSION: {} });
    json!({
        "supportedVersions": protocol::supported_versions(),
        "capabilities": capabilities,
        "instructions": instructions(snapshot),
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": { meta::SERVER_INFO: protocol::mcplex_identity() },
    })
}

/// The `initialize` result for a session-era client that agreed on `version`.
pub fn initialize_result(snapshot: &Snapshot, version: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": protocol::mcplex_identity(),
        "instructions": instructions(snapshot),
    })
}

/// Writes a page of a merged list straight from the catalog's pre-serialized items. Targets whose
/// cache hint ran out are asked to refresh in the background; the page never waits for them.
pub fn list_page(router: &Router, inbound: &Inbound, kind: ItemKind) -> Outcome {
    let id = inbound.id();
    router.refresh_expired(LIST_TTL_FLOOR);
    let snapshot = router.snapshot();
    let entries = snapshot.catalog.entries(kind);
    let offset = match inbound.message.param_str("cursor").as_deref().map(cursor::decode) {
        Some(Ok(offset)) => offset,
        Some(Err(invalid)) => return Outcome::error(id, jsonrpc::INVALID_PARAMS, invalid.to_string()),
        None => 0,
    };
    // With tool search on, the tool list holds mcplex's search tools, the visible tools and those found.
    let searched = (kind == ItemKind::Tools)
        .then_some(snapshot.config.tool_search.as_ref())
        .flatten()
        .map(|search| search::listed_tools(search, &inbound.caller, entries));
    // With a policy, the caller sees only what they may use; pages are cut from what they see.
    let visible: Option<Vec<&Entry>> = match snapshot
        .config
        .policy
        .as_deref()
        .filter(|_| kind != ItemKind::Templates)
    {
        None => searched,
        Some(policy) => {
            let principal = inbound.acting.as_deref().map(Acting::current);
            let allowed = |entry: &&Entry| {
                let item = access::Item {
                    kind,
                    exposed: &entry.exposed,
                    upstream: &entry.original,
                    target: &entry.target,
                };
                search::is_own(entry)
                    || access::decide(policy, principal.as_deref(), router.profile.as_deref(), &item).allowed
            };
            Some(match searched {
                Some(listed) => listed.into_iter().filter(allowed).collect(),
                None => entries.iter().filter(allowed).collect(),
            })
        }
    };
    let total = visible.as_ref().map_or(entries.len(), Vec::len);
    let range = cursor::page(offset, router.page_size, total);
    let end = range.end;
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    write_json(&mut out, &id);
    out.extend_from_slice(b",\"result\":{\"");
    out.extend_from_slice(kind.result_key().as_bytes());
    out.extend_from_slice(b"\":[");
    match &visible {
        Some(visible) => write_items(&mut out, visible[range].iter().copied()),
        None => write_items(&mut out, entries[range].iter()),
    }
    out.push(b']');
    if end < total {
        out.extend_from_slice(b",\"nextCursor\":");
        write_json(&mut out, &cursor::encode(end));
    }
    if inbound.caller.era() == Era::Modern {
        let ttl = snapshot.catalog.ttl_ms.unwrap_or(DEFAULT_LIST_TTL_MS);
        let scope = if snapshot.catalog.private { "private" } else { "public" };
        out.extend_from_slice(
            format!(",\"ttlMs\":{ttl},\"cacheScope\":\"{scope}\",\"resultType\":\"complete\"").as_bytes(),
        );
    }
    out.extend_from_slice(b"}}");
    Outcome::Encoded {
        json: out.into(),
        error_code: None,
        hold: Hold::none(),
    }
}

/// Appends the items' pre-serialized JSON, comma-separated, growing `out` once.
fn write_items<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a Entry> + Clone) {
    out.reserve(64 + items.clone().map(|e| e.json.len() + 1).sum::<usize>());
    for (i, entry) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(entry.json.as_bytes());
    }
}

/// Appends `value` as JSON (writing a string or a JSON value into a Vec cannot fail).
fn write_json(out: &mut Vec<u8>, value: &impl serde::Serialize) {
    let _ = serde_json::to_writer(out, value);
}
