//! The merged catalog: every target's tools, prompts, resources and templates under exposed names.
//! Pure data: what a target listed goes in, the merged view comes out; no I/O and no config internals.

pub mod cursor;
pub mod digest;
pub mod items;
pub mod naming;
pub mod pins;
pub mod search;

pub use items::{Listed, ListedIds, TargetItems};
pub use naming::Namer;

use crate::protocol::method;
use crate::protocol::params::ParamHeader;
use std::collections::HashMap;
use std::sync::Arc;

/// The four kinds of listed items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    /// `tools/list`.
    Tools,
    /// `prompts/list`.
    Prompts,
    /// `resources/list`.
    Resources,
    /// `resources/templates/list`.
    Templates,
}

impl ItemKind {
    /// Every kind, in slot order.
    pub const ALL: [ItemKind; 4] = [Self::Tools, Self::Prompts, Self::Resources, Self::Templates];

    /// The list method.
    pub fn list_method(self) -> &'static str {
        [
            method::TOOLS_LIST,
            method::PROMPTS_LIST,
            method::RESOURCES_LIST,
            method::RESOURCE_TEMPLATES_LIST,
        ][self.slot()]
    }

    /// The array key in a list result.
    pub fn result_key(self) -> &'static str {
        ["tools", "prompts", "resources", "resourceTemplates"][self.slot()]
    }

    /// One item of this kind, as logs and the audit trail name it.
    pub fn singular(self) -> &'static str {
        ["tool", "prompt", "resource", "resource template"][self.slot()]
    }

    /// The field that identifies an item.
    pub fn id_field(self) -> &'static str {
        ["name", "name", "uri", "uriTemplate"][self.slot()]
    }

    /// The server capability that announces this list.
    pub fn capability(self) -> &'static str {
        ["tools", "prompts", "resources", "resources"][self.slot()]
    }

    /// The `list_changed` notification for this kind (templates share the resources one).
    pub fn list_changed(self) -> &'static str {
        [
            method::TOOLS_LIST_CHANGED,
            method::PROMPTS_LIST_CHANGED,
            method::RESOURCES_LIST_CHANGED,
            method::RESOURCES_LIST_CHANGED,
        ][self.slot()]
    }

    /// The kind listed by `method`.
    pub fn from_list_method(method: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.list_method() == method)
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// One exposed item and where it comes from. Each item is held once, as the JSON clients receive.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The name (or URI) clients see.
    pub exposed: Arc<str>,
    /// The target that owns it.
    pub target: Arc<str>,
    /// The target's own name (or URI) for it.
    pub original: Arc<str>,
    /// The item as the target described it, with the exposed name written in, serialized once.
    pub json: Arc<str>,
    /// For a tool: the arguments its input schema mirrors into `Mcp-Param-*` headers, if any.
    pub params: Option<Arc<[ParamHeader]>>,
    /// False when the target speaks both eras and lists this item only in 2026-07-28: a session-era
    /// client's call of it then goes to the target in that era, not to the client's upstream session.
    pub in_sessions: bool,
}

/// Two targets exposing the same name: the first keeps it, the other's item is hidden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// Which list.
    pub kind: &'static str,
    /// The contested exposed name.
    pub name: String,
    /// The target that keeps it.
    pub kept_by: String,
    /// The target whose item is hidden.
    pub hidden_from: String,
}

/// Exposed name → position in its list. Looked up on every call, so hashed with foldhash (randomly seeded,
/// a few times cheaper than the standard SipHash on names this short).
type NameIndex = HashMap<Arc<str>, usize, foldhash::quality::RandomState>;

/// The merged view clients see.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    lists: [Vec<Entry>; 4],
    index: [NameIndex; 4],
    /// Every collision found in the last merge.
    pub collisions: Vec<Collision>,
    /// Exposed names some client APIs would reject (over 64 characters) or MCP forbids.
    pub unfriendly_names: Vec<String>,
    /// Smallest `ttlMs` any target sent.
    pub ttl_ms: Option<u64>,
    /// True when any target marked a list `private`.
    pub private: bool,
}

impl Catalog {
    /// Merges the items of the targets that are up, in config order; `previous` lets an existing owner
    /// keep a contested name.
    pub fn merge(inputs: &[&TargetItems], previous: Option<&Catalog>) -> Self {
        let mut catalog = Self::default();
        for kind in ItemKind::ALL {
            let candidates = inputs.iter().flat_map(|items| items.entries(kind).iter().cloned());
            let mut entries: Vec<Entry> = Vec::new();
            let mut index = NameIndex::default();
            for entry in candidates {
                let Some(&existing) = index.get(&entry.exposed) else {
                    index.insert(entry.exposed.clone(), entries.len());
                    entries.push(entry);
                    continue;
                };
                let previous_owner = previous
                    .and_then(|p| p.lookup(kind, &entry.exposed))
                    .map(|e| &*e.target);
                // The previous owner of a contested name keeps it, so adding a target never renames.
                let hidden = if previous_owner == Some(&*entry.target) {
                    std::mem::replace(&mut entries[existing], entry)
                } else {
                    entry
                };
                let kept = &entries[existing];
                catalog.collisions.push(Collision {
                    kind: kind.result_key(),
                    name: kept.exposed.to_string(),
                    kept_by: kept.target.to_string(),
                    hidden_from: hidden.target.to_string(),
                });
            }
            if matches!(kind, ItemKind::Tools | ItemKind::Prompts) {
                catalog.unfriendly_names.extend(
                    entries
                        .iter()
                        .filter(|e| {
                            !naming::is_valid_exposed_name(&e.exposed)
                                || e.exposed.len() > naming::CLIENT_FRIENDLY_NAME_LEN
                        })
                        .map(|e| e.exposed.to_string()),
                );
            }
            catalog.lists[kind.slot()] = entries;
            catalog.index[kind.slot()] = index;
        }
        for items in inputs {
            if let Some(ttl) = items.ttl_ms {
                catalog.ttl_ms = Some(catalog.ttl_ms.map_or(ttl, |t| t.min(ttl)));
            }
            catalog.private |= items.private;
        }
        catalog
    }

    /// The entry exposed as `name` in a list.
    pub fn lookup(&self, kind: ItemKind, name: &str) -> Option<&Entry> {
        self.index[kind.slot()].get(name).map(|&i| &self.lists[kind.slot()][i])
    }

    /// All entries of a kind, in merged order.
    pub fn entries(&self, kind: ItemKind) -> &[Entry] {
        &self.lists[kind.slot()]
    }

    /// The target that serves `uri`: a listed resource first, then the first matching template.
    pub fn route_uri(&self, uri: &str) -> Option<&str> {
        if let Some(entry) = self.lookup(ItemKind::Resources, uri) {
            return Some(&entry.target);
        }
        self.entries(ItemKind::Templates)
            .iter()
            .find(|e| template_matches(&e.original, uri))
            .map(|e| &*e.target)
    }

    /// Takes `names` of a kind for mcplex's own items: an item of a target exposed under one of them is
    /// hidden and reported as a collision with `owner`, as between two targets.
    pub fn reserve(&mut self, kind: ItemKind, names: &[&str], owner: &str) {
        let list = &mut self.lists[kind.slot()];
        if !list.iter().any(|e| names.contains(&&*e.exposed)) {
            return;
        }
        let (hidden, kept): (Vec<Entry>, Vec<Entry>) = std::mem::take(list)
            .into_iter()
            .partition(|e| names.contains(&&*e.exposed));
        for entry in hidden {
            self.collisions.push(Collision {
                kind: kind.result_key(),
                name: entry.exposed.to_string(),
                kept_by: owner.to_owned(),
                hidden_from: entry.target.to_string(),
            });
        }
        self.index[kind.slot()] = kept.iter().enumerate().map(|(i, e)| (e.exposed.clone(), i)).collect();
        self.lists[kind.slot()] = kept;
    }

    /// True when a kind's list differs between two catalogs (drives `list_changed`).
    pub fn differs(&self, other: &Catalog, kind: ItemKind) -> bool {
        self.lists[kind.slot()] != other.lists[kind.slot()]
    }
}

/// Matches a URI against an RFC 6570 template, treating each `{expression}` as a wildcard.
pub fn template_matches(template: &str, uri: &str) -> bool {
    let mut pattern = String::with_capacity(template.len());
    let mut in_expression = false;
    for c in template.chars() {
        match c {
            '{' => {
                in_expression = true;
                pattern.push('*');
            }
            '}' => in_expression = false,
            // Escape glob characters that are literal in the template.
            '*' | '?' if !in_expression => return literal_prefix_match(template, uri),
            c if !in_expression => pattern.push(c),
            _ => {}
        }
    }
    naming::glob_match(&pattern, uri)
}

fn literal_prefix_match(template: &str, uri: &str) -> bool {
    let literal = template.split('{').next().unwrap_or(template);
    !literal.is_empty() && uri.starts_with(literal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items(target: &str, tools: &[&str]) -> TargetItems {
        let mut listed = Listed::default();
        listed.lists[0] = tools
            .iter()
            .map(|n| {
                json!({"name": n, "inputSchema": {"type":"object"}, "x-extra": 1})
                    .to_string()
                    .into()
            })
            .collect();
        listed.lists[3] = vec![
            json!({"uriTemplate": "file:///{path}", "name": "files"})
                .to_string()
                .into(),
        ];
        let plain = Namer::new("", naming::Rules::default());
        TargetItems::expose(target, &plain, &plain, listed)
    }

    #[test]
    fn prefixes_keep_unknown_fields_and_report_collisions() {
        let (a, b) = (items("a", &["add", "echo"]), items("b", &["echo", "sub"]));
        let catalog = Catalog::merge(&[&a, &b], None);
        let names: Vec<_> = catalog.entries(ItemKind::Tools).iter().map(|e| &*e.exposed).collect();
        assert_eq!(names, ["add", "echo", "sub"]);
        assert_eq!(&*catalog.lookup(ItemKind::Tools, "echo").unwrap().target, "a");
        let sub: serde_json::Value =
            serde_json::from_str(&catalog.lookup(ItemKind::Tools, "sub").unwrap().json).unwrap();
        assert_eq!(sub["x-extra"], 1);
        assert_eq!(
            catalog.collisions,
            vec![
                Collision {
                    kind: "tools",
                    name: "echo".into(),
                    kept_by: "a".into(),
                    hidden_from: "b".into()
                },
                Collision {
                    kind: "resourceTemplates",
                    name: "file:///{path}".into(),
                    kept_by: "a".into(),
                    hidden_from: "b".into()
                },
            ]
        );
        assert_eq!(catalog.route_uri("file:///etc/x"), Some("a"));
    }

    #[test]
    fn an_existing_owner_keeps_its_name_when_a_target_is_added_before_it() {
        let (old, new) = (items("old", &["echo"]), items("new", &["echo"]));
        let before = Catalog::merge(&[&old], None);
        let after = Catalog::merge(&[&new, &old], Some(&before));
        assert_eq!(&*after.lookup(ItemKind::Tools, "echo").unwrap().target, "old");
        assert_eq!(after.collisions[0].hidden_from, "new");
    }

    #[test]
    fn templates_match_uris() {
        assert!(template_matches("users://{id}/profile", "users://42/profile"));
        assert!(!template_matches("users://{id}/profile", "users://42/settings"));
    }
}
