//! One target's items: what it listed (raw), and the same items under their exposed names.

use crate::catalog::naming::Namer;
use crate::catalog::{Entry, ItemKind};
use crate::protocol::params;
use crate::protocol::raw::{self, Members, Splice};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashSet;
use std::sync::Arc;

/// Most JSON text one target's items may take, all four lists together: about 27,000 tools of 150 bytes,
/// held in about four times that. A target that lists more (one page after another, say) would otherwise
/// grow the catalog until the pod is killed for its memory, taking every other target's tools with it.
pub const MAX_LISTED_BYTES: usize = 4 * 1024 * 1024;

/// Everything one target listed, as it sent it, with its cache hints.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// Items per kind, in [`ItemKind::ALL`] order, each the JSON text the target sent for it. Text, not
    /// trees: a tree of a tool takes about ten times its JSON, and every target's lists are read at once.
    pub lists: [Vec<Box<str>>; 4],
    /// Smallest `ttlMs` seen, when the target sent any.
    pub ttl_ms: Option<u64>,
    /// True when any page was `cacheScope: private`.
    pub private: bool,
    /// Bytes of item JSON kept so far.
    pub held: usize,
    /// Most bytes of item JSON kept ([`MAX_LISTED_BYTES`] unless a test says otherwise).
    pub limit: usize,
    /// True when an item was left out because the limit was reached.
    pub full: bool,
}

/// The ids (names or URIs) of what a target listed, per kind in [`ItemKind::ALL`] order.
pub type ListedIds = [HashSet<Box<str>>; 4];

impl Default for Listed {
    fn default() -> Self {
        Self {
            lists: Default::default(),
            ttl_ms: None,
            private: false,
            held: 0,
            limit: MAX_LISTED_BYTES,
            full: false,
        }
    }
}

/// A list result that is not an object holding the array of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the list result has no `{key}` array")]
pub struct NotAList {
    /// The array it lacks.
    pub key: &'static str,
}

impl Listed {
    /// Adds one page of a list result, given as its JSON text: its items (the objects with a string id
    /// field) while they fit in the limit, and its cache hints. Returns the page's `nextCursor` as JSON
    /// text, unless it has none, it is `null`, or the limit was reached ([`Listed::full`]).
    pub fn add_page<'r>(&mut self, kind: ItemKind, result: &'r str) -> Result<Option<&'r str>, NotAList> {
        let not_a_list = || NotAList { key: kind.result_key() };
        let (members, []) = Members::index_path(result, 0..result.len(), []).map_err(|_| not_a_list())?;
        let items: Vec<&RawValue> = members
            .get(result, kind.result_key())
            .and_then(|list| serde_json::from_str(list).ok())
            .ok_or_else(not_a_list)?;
        let list = &mut self.lists[kind.slot()];
        for item in items.into_iter().map(RawValue::get) {
            if Fields::of(item).is_none_or(|fields| fields.id(kind).is_none()) {
                continue;
            }
            if self.held + item.len() > self.limit {
                self.full = true;
                break;
            }
            self.held += item.len();
            list.push(item.into());
        }
        if let Some(ttl) = members
            .get(result, "ttlMs")
            .and_then(|ttl| serde_json::from_str::<u64>(ttl).ok())
        {
            self.ttl_ms = Some(self.ttl_ms.map_or(ttl, |t| t.min(ttl)));
        }
        self.private |= members.get(result, "cacheScope").and_then(raw::string).as_deref() == Some("private");
        let next = members.get(result, "nextCursor").filter(|cursor| *cursor != "null");
        Ok(next.filter(|_| !self.full))
    }
}

impl Listed {
    /// The items of one kind with their ids (names or URIs), as the target sent them.
    pub fn named_items(&self, kind: ItemKind) -> impl Iterator<Item = (std::borrow::Cow<'_, str>, &str)> {
        self.lists[kind.slot()]
            .iter()
            .filter_map(move |item| Some((Fields::of(item)?.id(kind)?, &**item)))
    }

    /// Keeps the items of one kind whose flag in `keep` (in [`Listed::named_items`] order) is true.
    pub fn retain_items(&mut self, kind: ItemKind, keep: &[bool]) {
        let mut flags = keep.iter();
        let mut dropped = 0;
        self.lists[kind.slot()].retain(|item| {
            // Items without an id are never added, so every item has a flag.
            let kept = flags.next().copied().unwrap_or(true);
            if !kept {
                dropped += item.len();
            }
            kept
        });
        self.held -= dropped;
    }

    /// The ids of the items listed.
    pub fn ids(&self) -> ListedIds {
        let mut ids: ListedIds = Default::default();
        for kind in ItemKind::ALL {
            ids[kind.slot()] = self.lists[kind.slot()]
                .iter()
                .filter_map(|item| Some(Fields::of(item)?.id(kind)?.into()))
                .collect();
        }
        ids
    }
}

/// One item's text with its members indexed.
struct Fields<'t> {
    text: &'t str,
    members: Members,
}

impl<'t> Fields<'t> {
    /// `None` when the item is not a JSON object.
    fn of(text: &'t str) -> Option<Self> {
        let (members, []) = Members::index_path(text, 0..text.len(), []).ok()?;
        Some(Self { text, members })
    }

    /// The item's id field (its name or URI), when it is a string.
    fn id(&self, kind: ItemKind) -> Option<std::borrow::Cow<'t, str>> {
        raw::string(self.members.get(self.text, kind.id_field())?)
    }

    /// The item with its id field set to `exposed`: the value replaced in the text, other members
    /// copied as they are. An item that gives a key twice goes through a tree, which keeps one.
    fn renamed(&self, kind: ItemKind, exposed: &str) -> Option<String> {
        let at = self.members.range_of(self.text, kind.id_field())?;
        if self.members.has_repeats() {
            let mut item: Value = serde_json::from_str(self.text).ok()?;
            item.as_object_mut()?.insert(kind.id_field().into(), exposed.into());
            return serde_json::to_string(&item).ok();
        }
        let mut splice = Splice::new(self.text);
        splice.replace(at, |out| raw::write_string(out, exposed));
        String::from_utf8(splice.finish()).ok()
    }
}

/// One target's items under their exposed names, each serialized once when it was fetched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetItems {
    entries: [Vec<Entry>; 4],
    /// Smallest `ttlMs` the target sent.
    pub ttl_ms: Option<u64>,
    /// True when the target marked any list `private`.
    pub private: bool,
    /// True when the target listed more than [`MAX_LISTED_BYTES`] and the rest was left out.
    pub truncated: bool,
    /// The start of the instructions the target announced (tool search reads them with its tools).
    pub instructions: Option<Arc<str>>,
}

impl TargetItems {
    /// Applies the target's filters, renames and prefix to what it listed.
    pub fn expose(target: &str, tools: &Namer, prompts: &Namer, listed: Listed) -> Self {
        let target: Arc<str> = target.into();
        let Listed {
            lists,
            ttl_ms,
            private,
            full,
            ..
        } = listed;
        let mut entries: [Vec<Entry>; 4] = Default::default();
        for (kind, list) in ItemKind::ALL.into_iter().zip(lists) {
            let namer = match kind {
                ItemKind::Tools => Some(tools),
                ItemKind::Prompts => Some(prompts),
                ItemKind::Resources | ItemKind::Templates => None,
            };
            let mut exposed: Vec<Entry> = list
                .into_iter()
                .filter_map(|item| expose_one(kind, namer, &target, item))
                .collect();
            exposed.shrink_to_fit();
            entries[kind.slot()] = exposed;
        }
        Self {
            entries,
            ttl_ms,
            private,
            truncated: full,
            instructions: None,
        }
    }

    /// Marks each item by whether a target of both eras lists it to its sessions (`ids`, read after the
    /// items themselves).
    pub fn mark_for_sessions(&mut self, ids: &ListedIds) {
        for kind in ItemKind::ALL {
            for entry in &mut self.entries[kind.slot()] {
                entry.in_sessions = ids[kind.slot()].contains(&*entry.original);
            }
        }
    }

    /// The exposed entries of one kind.
    pub fn entries(&self, kind: ItemKind) -> &[Entry] {
        &self.entries[kind.slot()]
    }
}

fn expose_one(kind: ItemKind, namer: Option<&Namer>, target: &Arc<str>, item: Box<str>) -> Option<Entry> {
    let fields = Fields::of(&item)?;
    let original: Arc<str> = fields.id(kind)?.into();
    let exposed: Arc<str> = match namer {
        Some(namer) => namer.expose(&original)?.into(),
        None => original.clone(),
    };
    let params = match kind {
        ItemKind::Tools => params::of_schema_text(fields.members.get(&item, "inputSchema")),
        _ => None,
    };
    let json: Arc<str> = if exposed == original {
        Arc::from(item)
    } else {
        fields.renamed(kind, &exposed)?.into()
    };
    Some(Entry {
        json,
        params,
        // Until what its sessions list is known, every item is taken to be there.
        in_sessions: true,
        exposed,
        target: target.clone(),
        original,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_add_up_and_items_without_ids_are_dropped() {
        let mut listed = Listed::default();
        let first =
            json!({"tools": [{"name": "a"}, {"nameless": 1}, 7, {"name": 3}], "ttlMs": 500, "nextCursor": {"at": 2}});
        assert_eq!(
            listed.add_page(ItemKind::Tools, &first.to_string()),
            Ok(Some(r#"{"at":2}"#))
        );
        let last = json!({"tools": [{"name": "b"}], "ttlMs": 100, "cacheScope": "private", "nextCursor": null});
        assert_eq!(listed.add_page(ItemKind::Tools, &last.to_string()), Ok(None));
        assert_eq!(listed.lists[0].len(), 2);
        assert_eq!((listed.ttl_ms, listed.private), (Some(100), true));
        let namer = Namer::new("p", crate::catalog::naming::Rules::default());
        let items = TargetItems::expose("t", &namer, &namer, listed);
        let names: Vec<&str> = items.entries(ItemKind::Tools).iter().map(|e| &*e.exposed).collect();
        assert_eq!(names, ["p_a", "p_b"]);
        assert_eq!(&*items.entries(ItemKind::Tools)[0].json, r#"{"name":"p_a"}"#);
    }

    #[test]
    fn items_past_the_limit_are_left_out_and_paging_stops() {
        let mut listed = Listed {
            limit: 40,
            ..Listed::default()
        };
        // Each item is 16 bytes: two fit in 40, the third does not, and neither does anything after it.
        let page = r#"{"tools":[{"name":"t_001"},{"name":"t_002"},{"name":"t_003"}],"nextCursor":"2"}"#;
        assert_eq!(listed.add_page(ItemKind::Tools, page), Ok(None));
        assert!(listed.full);
        assert_eq!((listed.lists[0].len(), listed.held), (2, 32));
        assert_eq!(
            listed.add_page(ItemKind::Prompts, r#"{"prompts":[{"name":"p"}]}"#),
            Ok(None)
        );
        assert!(listed.lists[1].is_empty());
        let plain = Namer::new("", crate::catalog::naming::Rules::default());
        assert!(TargetItems::expose("t", &plain, &plain, listed).truncated);
    }

    #[test]
    fn items_a_target_lists_only_in_2026_07_28_are_marked_as_missing_from_its_sessions() {
        let mut sessions = Listed::default();
        sessions
            .add_page(ItemKind::Tools, r#"{"tools":[{"name":"old"},{"name":"both"}]}"#)
            .unwrap();
        let mut listed = Listed::default();
        listed
            .add_page(ItemKind::Tools, r#"{"tools":[{"name":"both"},{"name":"fresh"}]}"#)
            .unwrap();
        listed
            .add_page(ItemKind::Prompts, r#"{"prompts":[{"name":"ask"}]}"#)
            .unwrap();
        let namer = Namer::new("p", crate::catalog::naming::Rules::default());
        // Whose sessions are not read (yet): every item is taken to be there.
        let unmarked = TargetItems::expose("t", &namer, &namer, listed);
        assert!(unmarked.entries(ItemKind::Tools).iter().all(|e| e.in_sessions));
        let mut items = unmarked.clone();
        items.mark_for_sessions(&sessions.ids());
        let tools: Vec<(&str, bool)> = items
            .entries(ItemKind::Tools)
            .iter()
            .map(|e| (&*e.exposed, e.in_sessions))
            .collect();
        assert_eq!(tools, [("p_both", true), ("p_fresh", false)]);
        assert!(
            !items.entries(ItemKind::Prompts)[0].in_sessions,
            "the sessions listed no prompts"
        );
        assert_eq!(
            items.entries(ItemKind::Tools)[1].json,
            unmarked.entries(ItemKind::Tools)[1].json
        );
    }

    #[test]
    fn a_page_without_its_array_is_named() {
        let mut listed = Listed::default();
        for result in [r#"{"prompts":[]}"#, r#"{"tools":{}}"#, "[]", "", r#"{"tools":[1,}"#] {
            let error = listed.add_page(ItemKind::Tools, result).unwrap_err();
            assert_eq!(error.to_string(), "the list result has no `tools` array", "{result}");
        }
        assert_eq!(listed, Listed::default());
    }

    /// What exposing did when items were trees: set the id field, serialize.
    fn exposed_as_tree(item: &str, exposed: &str) -> Value {
        let mut item: Value = serde_json::from_str(item).unwrap();
        item["name"] = exposed.into();
        item
    }

    #[test]
    fn items_keep_their_text_but_for_the_renamed_field() {
        let namer = Namer::new("p", crate::catalog::naming::Rules::default());
        let items = [
            // Written by hand, with spaces, other members on both sides and an escape in another string.
            r#"{ "description" : "say \"hi\"", "name" : "echo", "inputSchema": {"type": "object"}, "x-extra": [1, 2] }"#,
            // The name itself escaped.
            r#"{"name":"ec\u0068o2","inputSchema":{"type":"object"}}"#,
            // The name given twice: JSON parsers keep the last, and so must the exposed item (once).
            r#"{"name":"first","inputSchema":{},"name":"last"}"#,
        ];
        let page = format!(r#"{{"tools":[{}]}}"#, items.join(","));
        let mut listed = Listed::default();
        listed.add_page(ItemKind::Tools, &page).unwrap();
        let exposed = TargetItems::expose("t", &namer, &namer, listed);
        let entries = exposed.entries(ItemKind::Tools);
        let names: Vec<&str> = entries.iter().map(|e| &*e.exposed).collect();
        assert_eq!(names, ["p_echo", "p_echo2", "p_last"]);
        assert_eq!(
            &*entries[0].json,
            r#"{ "description" : "say \"hi\"", "name" : "p_echo", "inputSchema": {"type": "object"}, "x-extra": [1, 2] }"#
        );
        for (entry, item) in entries.iter().zip(items) {
            let json: Value = serde_json::from_str(&entry.json).unwrap();
            assert_eq!(json, exposed_as_tree(item, &entry.exposed), "{item}");
        }
        assert_eq!(entries[2].json.matches("\"name\"").count(), 1, "{}", entries[2].json);
        assert_eq!(&*entries[1].original, "echo2");
    }

    #[test]
    fn schema_annotations_are_found_in_text() {
        let page = json!({"tools": [
            {"name": "plain", "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}}},
            {"name": "routed", "inputSchema": {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}},
        ]});
        let escaped = r#"{"tools":[{"name":"escaped","inputSchema":{"type":"object","properties":{"r":{"type":"string","x-mcp-head\u0065r":"R"}}}}]}"#;
        let mut listed = Listed::default();
        listed.add_page(ItemKind::Tools, &page.to_string()).unwrap();
        listed.add_page(ItemKind::Tools, escaped).unwrap();
        let plain = Namer::new("", crate::catalog::naming::Rules::default());
        let exposed = TargetItems::expose("t", &plain, &plain, listed);
        let headers: Vec<Option<Vec<String>>> = exposed
            .entries(ItemKind::Tools)
            .iter()
            .map(|e| {
                e.params
                    .as_ref()
                    .map(|p| p.iter().map(|h| h.name.to_string()).collect())
            })
            .collect();
        assert_eq!(
            headers,
            [
                None,
                Some(vec!["mcp-param-region".to_string()]),
                Some(vec!["mcp-param-r".to_string()])
            ]
        );
    }
}
