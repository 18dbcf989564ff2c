//! One target's items: what it listed (raw), and the same items under their exposed names.

use crate::catalog::naming::Namer;
use crate::catalog::{Entry, ItemKind};
use crate::protocol::params;
use serde_json::Value;
use std::sync::Arc;

/// Everything one target listed, as it sent it, with its cache hints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listed {
    /// Items per kind, in [`ItemKind::ALL`] order.
    pub lists: [Vec<Value>; 4],
    /// Smallest `ttlMs` seen, when the target sent any.
    pub ttl_ms: Option<u64>,
    /// True when any page was `cacheScope: private`.
    pub private: bool,
}

impl Listed {
    /// Adds one page of a list result: its items (those with a string id field) and its cache hints.
    pub fn add_page(&mut self, kind: ItemKind, result: &Value) {
        if let Some(page) = result.get(kind.result_key()).and_then(Value::as_array) {
            self.lists[kind.slot()].extend(
                page.iter()
                    .filter(|item| item.get(kind.id_field()).is_some_and(Value::is_string))
                    .cloned(),
            );
        }
        if let Some(ttl) = result.get("ttlMs").and_then(Value::as_u64) {
            self.ttl_ms = Some(self.ttl_ms.map_or(ttl, |t| t.min(ttl)));
        }
        self.private |= result.get("cacheScope").and_then(Value::as_str) == Some("private");
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
}

impl TargetItems {
    /// Applies the target's filters, renames and prefix to what it listed.
    pub fn expose(target: &str, tools: &Namer, prompts: &Namer, listed: Listed) -> Self {
        let target: Arc<str> = target.into();
        let Listed { lists, ttl_ms, private } = listed;
        let mut entries: [Vec<Entry>; 4] = Default::default();
        for (kind, list) in ItemKind::ALL.into_iter().zip(lists) {
            let namer = match kind {
                ItemKind::Tools => Some(tools),
                ItemKind::Prompts => Some(prompts),
                ItemKind::Resources | ItemKind::Templates => None,
            };
            entries[kind.slot()] = list
                .into_iter()
                .filter_map(|item| expose_one(kind, namer, &target, item))
                .collect();
        }
        Self {
            entries,
            ttl_ms,
            private,
        }
    }

    /// The exposed entries of one kind.
    pub fn entries(&self, kind: ItemKind) -> &[Entry] {
        &self.entries[kind.slot()]
    }
}

fn expose_one(kind: ItemKind, namer: Option<&Namer>, target: &Arc<str>, mut item: Value) -> Option<Entry> {
    let original: Arc<str> = item.get(kind.id_field())?.as_str()?.into();
    let exposed: Arc<str> = match namer {
        Some(namer) => namer.expose(&original)?.into(),
        None => original.clone(),
    };
    if let Some(object) = item.as_object_mut()
        && exposed != original
    {
        object.insert(kind.id_field().into(), Value::String(exposed.to_string()));
    }
    let params = match kind {
        ItemKind::Tools => params::of_schema(item.get("inputSchema")),
        _ => None,
    };
    Some(Entry {
        json: serde_json::to_string(&item).ok()?.into(),
        params,
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
        listed.add_page(
            ItemKind::Tools,
            &json!({"tools": [{"name": "a"}, {"nameless": 1}], "ttlMs": 500}),
        );
        listed.add_page(
            ItemKind::Tools,
            &json!({"tools": [{"name": "b"}], "ttlMs": 100, "cacheScope": "private"}),
        );
        assert_eq!(listed.lists[0].len(), 2);
        assert_eq!((listed.ttl_ms, listed.private), (Some(100), true));
        let namer = Namer::new("p", crate::catalog::naming::Rules::default());
        let items = TargetItems::expose("t", &namer, &namer, listed);
        let names: Vec<&str> = items.entries(ItemKind::Tools).iter().map(|e| &*e.exposed).collect();
        assert_eq!(names, ["p_a", "p_b"]);
        assert_eq!(&*items.entries(ItemKind::Tools)[0].json, r#"{"name":"p_a"}"#);
    }
}
