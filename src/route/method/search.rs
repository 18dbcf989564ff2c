//! Tool search (`toolSearch` in the config): `tools/list` holds the `visible` tools, mcplex's `find_tools`
//! and `call_tool`, and the tools a session found; `find_tools` ranks the tools the caller may use;
//! `call_tool` is routed exactly as `tools/call` of the tool it names.

use crate::catalog::search::{self, CALL_TOOL, FIND_TOOLS};
use crate::catalog::{Entry, ItemKind, naming};
use crate::config::ToolSearch;
use crate::config::search::{MAX_QUERY_CHARS, MAX_SEARCH_RESULTS};
use crate::embeddings::EmbedError;
use crate::identity::Acting;
use crate::protocol::{jsonrpc, method, params};
use crate::route::message::{Caller, Inbound, Outcome};
use crate::route::method::{access, call};
use crate::route::refresh::{IndexedVectors, Router, Snapshot};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// How deep each ranking is read, among the tools the caller may see, before the two are fused: ranks
/// below it would add less than 1/160 to a tool's fused score.
const FUSION_DEPTH: usize = 100;

/// Where mcplex's own tools come from, in lists and results.
const OWN_TARGET: &str = "mcplex";

/// mcplex's own tools as list entries (they are listed first, before any target's).
fn own_tools() -> &'static [Entry; 2] {
    static OWN: OnceLock<[Entry; 2]> = OnceLock::new();
    OWN.get_or_init(|| {
        let entry = |name: &str, tool: Value| Entry {
            exposed: name.into(),
            target: OWN_TARGET.into(),
            original: name.into(),
            json: tool.to_string().into(),
            params: None,
            in_sessions: true,
        };
        let found_tool = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The tool's name: pass it to call_tool, or call it directly"},
                "target": {"type": "string", "description": "The server that provides it"},
                "description": {"type": "string"},
                "inputSchema": {"type": "object", "description": "The JSON Schema of its arguments"},
                "score": {"type": "number", "description": "Relevance to the query; higher is better"},
                "copies": {
                    "type": "array",
                    "description": "The same tool on other servers (present when there are any): call whichever server the task is for",
                    "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "target": {"type": "string"}},
                        "required": ["name", "target"]
                    }
                }
            },
            "required": ["name", "target", "inputSchema", "score"]
        });
        [
            entry(
                FIND_TOOLS,
                json!({
                    "name": FIND_TOOLS,
                    "title": "Find tools",
                    "description": "Searches every tool available here (from many servers; only a few are listed) and returns the best matches with their input schemas. Use it before a task whose tool is not in your list: describe what you need to do in plain words, for example \"create an issue in a GitHub repository\". Then call a match with call_tool, or by its name directly.",
                    "inputSchema": {
                        "type": "object",
                        "properties": {
                            "query": {"type": "string", "maxLength": MAX_QUERY_CHARS, "description": "What you need to do, in natural language"},
                            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_RESULTS, "description": "How many matches to return"},
                            "target": {"type": "string", "description": "Only tools of this server"}
                        },
                        "required": ["query"]
                    },
                    "outputSchema": {
                        "type": "object",
                        "properties": {"tools": {"type": "array", "items": found_tool}},
                        "required": ["tools"]
                    },
                    "annotations": {"readOnlyHint": true, "openWorldHint": false}
                }),
            ),
            entry(
                CALL_TOOL,
                json!({
                    "name": CALL_TOOL,
                    "title": "Call a found tool",
                    "description": "Calls a tool that find_tools returned, by its name, with arguments that follow its input schema, and returns that tool's result.",
                    "inputSchema": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "description": "The tool's name, as find_tools gave it"},
                            "arguments": {"type": "object", "description": "The tool's arguments, following its inputSchema"}
                        },
                        "required": ["name"]
                    }
                }),
            ),
        ]
    })
}

/// True for mcplex's own search tools (no policy applies to them; the calls they make are checked).
pub fn is_own(entry: &Entry) -> bool {
    std::ptr::eq(entry, &own_tools()[0]) || std::ptr::eq(entry, &own_tools()[1])
}

/// What `tools/list` holds in search mode, before the policy: mcplex's tools, then each tool that is
/// `visible` or that this session found.
pub fn listed_tools<'s>(search: &ToolSearch, caller: &Caller, tools: &'s [Entry]) -> Vec<&'s Entry> {
    let session = caller.session();
    let found = session.map(|s| crate::sync::lock(&s.found));
    let mut listed: Vec<&Entry> = own_tools().iter().collect();
    listed.extend(tools.iter().filter(|entry| {
        search
            .visible
            .iter()
            .any(|glob| naming::glob_match(glob, &entry.exposed))
            || found.as_ref().is_some_and(|found| found.contains(&entry.exposed))
    }));
    listed
}

/// The search tool `name` names, when search is on.
pub fn own_tool(snapshot: &Snapshot, inbound: &Inbound) -> Option<&'static str> {
    snapshot.config.tool_search.as_ref()?;
    match inbound.message.param_str("name").as_deref() {
        Some(FIND_TOOLS) => Some(FIND_TOOLS),
        Some(CALL_TOOL) => Some(CALL_TOOL),
        _ => None,
    }
}

/// A tool result mcplex wrote: `text` for the model, `isError` when the arguments were wrong.
fn tool_result(inbound: &Inbound, text: String, structured: Option<Value>, is_error: bool) -> Outcome {
    let mut result = json!({"content": [{"type": "text", "text": text}], "isError": is_error});
    if let Some(structured) = structured {
        result["structuredContent"] = structured;
    }
    Outcome::Message(jsonrpc::result(
        inbound.id(),
        crate::protocol::own_result(inbound.caller.era(), result),
    ))
}

/// `find_tools`: the tools the caller may use that best match the query.
pub async fn find_tools(router: &Arc<Router>, inbound: Inbound) -> Outcome {
    let begun = std::time::Instant::now();
    let snapshot = router.snapshot();
    let Some(search) = snapshot.config.tool_search.clone() else {
        return Outcome::error(inbound.id(), jsonrpc::INVALID_PARAMS, "tool search is off");
    };
    let arguments = inbound.message.param_value("arguments").unwrap_or(Value::Null);
    let query = match arguments.get("query").and_then(Value::as_str).map(str::trim) {
        Some(query) if !query.is_empty() => query.to_owned(),
        _ => {
            let text = "arguments.query is required: say in plain words what the tool should do".to_owned();
            return tool_result(&inbound, text, None, true);
        }
    };
    let length = query.chars().count();
    if length > MAX_QUERY_CHARS {
        let text = format!(
            "arguments.query is {length} characters long, more than the {MAX_QUERY_CHARS} a search reads: say in a sentence what the tool should do"
        );
        return tool_result(&inbound, text, None, true);
    }
    let limit = match arguments.get("limit") {
        None | Some(Value::Null) => search.results,
        Some(limit) => match limit.as_u64().and_then(|l| usize::try_from(l).ok()) {
            Some(limit) if (1..=MAX_SEARCH_RESULTS).contains(&limit) => limit,
            _ => {
                let text = format!("arguments.limit must be an integer from 1 to {MAX_SEARCH_RESULTS}, not {limit}");
                return tool_result(&inbound, text, None, true);
            }
        },
    };
    let target = match arguments.get("target") {
        None | Some(Value::Null) => None,
        Some(Value::String(target)) => Some(target.as_str()),
        Some(other) => {
            let text = format!("arguments.target must be the name of a server, a string, not {other}");
            return tool_result(&inbound, text, None, true);
        }
    };
    if let Some(target) = target
        && snapshot.slot(target).is_none()
    {
        return tool_result(&inbound, unknown_target(&snapshot, target), None, true);
    }
    let Some(indexed) = router.search_index().await else {
        let text = "the tool index is not built yet; try again in a moment".to_owned();
        return tool_result(&inbound, text, None, true);
    };
    // With an endpoint, the words are matched while it embeds the query: the yield lets the connection's
    // task send the embedding request (this runtime has one thread) before the lexical search takes it.
    let (query_vector, lexical) = if search.embeddings.is_some() {
        tokio::join!(query_vector(router, &search, &query), async {
            tokio::task::yield_now().await;
            indexed.index.search(&query)
        })
    } else {
        (None, indexed.index.search(&query))
    };
    let principal = inbound.acting.as_deref().map(Acting::current);
    let policy = snapshot.config.policy.as_deref();
    // The index may be a little older than the catalog: each match is checked against the catalog now,
    // once, however many rankings hold it.
    let mut decided: HashMap<Arc<str>, Option<&Entry>> = HashMap::new();
    let mut current = |name: &Arc<str>| -> Option<&Entry> {
        *decided.entry(name.clone()).or_insert_with(|| {
            let entry = snapshot.catalog.lookup(ItemKind::Tools, name)?;
            let wanted_target = target.is_none_or(|t| *entry.target == *t);
            let allowed = policy.is_none_or(|policy| {
                let item = access::Item {
                    kind: ItemKind::Tools,
                    exposed: &entry.exposed,
                    upstream: &entry.original,
                    target: &entry.target,
                };
                access::decide(policy, principal.as_deref(), router.profile.as_deref(), &item).allowed
            });
            (wanted_target && allowed).then_some(entry)
        })
    };
    let semantic = query_vector.as_ref().and_then(|(vectors, query)| {
        let similar = vectors.vectors.rank(query);
        if similar.is_none() {
            // The endpoint's model changed; the vectorizer is making the tools' vectors again.
            router.metrics.search.lexical_only();
        }
        Some((vectors, similar?))
    });
    // Each ranking is cut to what the caller may see before it is fused or cut to `limit`.
    // Copies of one tool on several targets count once: the agent reads `limit` distinct tools.
    let read_at_most = limit + FUSION_DEPTH;
    let found: Vec<search::Distinct<'_>> = match semantic {
        None => search::distinct(
            lexical.filter_map(|f| Some((current(indexed.index.name(f.position)?)?, f64::from(f.score)))),
            limit,
            read_at_most,
        ),
        Some((vectors, similar)) => {
            let depth = limit.max(FUSION_DEPTH);
            let words: Vec<Arc<str>> = lexical
                .filter_map(|f| indexed.index.name(f.position))
                .filter(|name| current(name).is_some())
                .take(depth)
                .cloned()
                .collect();
            let meaning: Vec<Arc<str>> = similar
                .filter_map(|f| vectors.vectors.name(f.position))
                .filter(|name| current(name).is_some())
                .take(depth)
                .cloned()
                .collect();
            let fused = search::fuse(&[words, meaning]);
            search::distinct(
                fused
                    .into_iter()
                    .filter_map(|(name, score)| Some((current(&name)?, score))),
                limit,
                read_at_most,
            )
        }
    };
    let mut names = Vec::with_capacity(limit);
    let tools: Vec<Value> = found
        .into_iter()
        .map(|found| {
            let entry = found.entry;
            names.push(entry.exposed.clone());
            let tool: Value = serde_json::from_str(&entry.json).unwrap_or_default();
            let mut result = json!({
                "name": entry.exposed,
                "target": entry.target,
                "description": tool.get("description").cloned().unwrap_or(Value::Null),
                "inputSchema": tool.get("inputSchema").cloned().unwrap_or_else(|| json!({"type": "object"})),
                "score": (found.score * 1e5).round() / 1e5,
            });
            if !found.copies.is_empty() {
                let copies: Vec<Value> = found
                    .copies
                    .iter()
                    .map(|copy| json!({"name": copy.exposed, "target": copy.target}))
                    .collect();
                result["copies"] = copies.into();
            }
            result
        })
        .collect();
    router.metrics.search.searched(tools.len());
    router.metrics.search.search_took(begun.elapsed());
    // A session-era client gets what it found as tools of its own, and hears that its list changed.
    if let Caller::Session(session) = &inbound.caller
        && crate::sync::lock(&session.found).add(&names)
    {
        session.push_to_stream(json!({"jsonrpc": "2.0", "method": method::TOOLS_LIST_CHANGED}));
    }
    let structured = json!({ "tools": tools });
    tool_result(&inbound, structured.to_string(), Some(structured), false)
}

/// Servers an unknown-target error names, at most: a sidecar may have a thousand.
const TARGETS_NAMED: usize = 20;

/// The error for a `target` no server has: the servers there are, the first [`TARGETS_NAMED`] of them.
fn unknown_target(snapshot: &Snapshot, target: &str) -> String {
    let known: Vec<&str> = snapshot
        .slots
        .iter()
        .map(|s| s.name.as_str())
        .take(TARGETS_NAMED)
        .collect();
    let more = snapshot.slots.len().saturating_sub(TARGETS_NAMED);
    let others = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "arguments.target: no server is named `{target}` (there are: {}{others})",
        known.join(", ")
    )
}

/// The tools' vectors and the query's, when the semantic signal is configured and its vectors are
/// made; `None` (and searches rank by words alone) when it is not or the query cannot be embedded.
async fn query_vector(router: &Router, search: &ToolSearch, query: &str) -> Option<(Arc<IndexedVectors>, Vec<f32>)> {
    let settings = search.embeddings.as_ref()?;
    let vectors = router
        .vectors
        .latest()
        .filter(|v| v.client.settings() == settings && !v.vectors.is_empty());
    let Some(vectors) = vectors else {
        router.metrics.search.lexical_only();
        return None;
    };
    let begun = std::time::Instant::now();
    let embedded = vectors.client.embed_query(query).await;
    match embedded {
        Ok(query) => {
            router.metrics.search.query_embedded_in(begun.elapsed());
            Some((vectors, query))
        }
        Err(EmbedError::Resting { .. }) => {
            router.metrics.search.lexical_only();
            None
        }
        Err(e) => {
            router.metrics.search.query_embedded_in(begun.elapsed());
            tracing::warn!(error = %e, "toolSearch.embeddings: the query could not be embedded; this search ranks by words only");
            router.metrics.search.embedding_failed();
            router.metrics.search.lexical_only();
            None
        }
    }
}

/// `call_tool`: the named tool's `tools/call`, routed as if the client had sent it.
pub async fn call_tool(router: &Arc<Router>, mut inbound: Inbound) -> Outcome {
    let arguments = inbound.message.param_value("arguments").unwrap_or(Value::Null);
    let Some(name) = arguments.get("name").and_then(Value::as_str) else {
        let text = "arguments.name is required: the name of a tool find_tools returned".to_owned();
        return tool_result(&inbound, text, None, true);
    };
    if name == FIND_TOOLS || name == CALL_TOOL {
        let text = format!("call_tool calls the tools find_tools returns; call {name} directly");
        return tool_result(&inbound, text, None, true);
    }
    let tool_arguments = arguments.get("arguments").cloned().unwrap_or_else(|| json!({}));
    let mut params = json!({ "name": name, "arguments": tool_arguments });
    if let Some(meta) = inbound.message.param_value("_meta") {
        params["_meta"] = meta;
    }
    let request = json!({"jsonrpc": "2.0", "id": inbound.id(), "method": method::TOOLS_CALL, "params": params});
    let Ok(message) = jsonrpc::Message::parse(Bytes::from(request.to_string())) else {
        return Outcome::error(
            inbound.id(),
            jsonrpc::INTERNAL_ERROR,
            "call_tool could not write the call",
        );
    };
    // The client sent no `Mcp-Param-*` headers for the inner tool; they follow from its arguments.
    let snapshot = router.snapshot();
    let declared = snapshot
        .catalog
        .lookup(ItemKind::Tools, name)
        .and_then(|e| e.params.clone());
    inbound.param_headers = params::headers_for(declared.as_deref().unwrap_or_default(), Some(&tool_arguments));
    inbound.message = message;
    router.metrics.search.called();
    call::route(router, inbound).await
}
