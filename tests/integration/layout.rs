//! The sidecar crate's shape, as DESIGN.md §6 sets it: no import circle between any two of its files (test
//! modules aside) and no file over 600 lines. Read from the `use` lines and the `crate::`/`super::` paths of
//! `src/`, with a re-export in a `mod.rs` followed to the file that defines the item.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The longest a source file of the crate may be.
const MAX_LINES: usize = 600;

/// A module path inside the crate (`["route", "channel"]`), the crate root being empty.
type ModPath = Vec<String>;

/// The crate's files by module path, with their text up to their test module.
fn crate_files(src: &Path) -> BTreeMap<ModPath, (PathBuf, String)> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: ModPath = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if module
                .last()
                .is_some_and(|last| last == "mod" || last == "lib" || last == "main")
            {
                module.pop();
            }
            if module.is_empty() && path.file_name().is_some_and(|n| n == "main.rs") {
                // The binary's root is a crate of its own, above the library.
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            files.insert(module, (path, without_tests_and_comments(&text)));
        }
    }
    files
}

/// The text before the first `#[cfg(test)] mod`, with `//` comments removed.
fn without_tests_and_comments(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" && lines.peek().is_some_and(|next| next.trim_start().starts_with("mod ")) {
            break;
        }
        let code = match line.find("//") {
            // A `//` inside a string (a URL, say) is rare in paths; the whole line is kept apart from comments.
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The paths a `use` tree names, each split into segments (`a::{b, c::d}` → `a::b`, `a::c::d`).
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    fn split_top(items: &str) -> Vec<&str> {
        let (mut depth, mut start, mut parts) = (0, 0, Vec::new());
        for (at, c) in items.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&items[start..at]);
                    start = at + 1;
                }
                _ => {}
            }
        }
        parts.push(&items[start..]);
        parts
    }
    fn walk(prefix: &[String], items: &str, out: &mut Vec<Vec<String>>) {
        for item in split_top(items) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            if let (Some(open), Some(close)) = (item.find('{'), item.rfind('}')) {
                let mut next = prefix.to_vec();
                next.extend(segments(&item[..open]));
                walk(&next, &item[open + 1..close], out);
            } else {
                let name = item.split(" as ").next().unwrap_or(item);
                let mut path = prefix.to_vec();
                path.extend(segments(name));
                out.push(path);
            }
        }
    }
    fn segments(path: &str) -> Vec<String> {
        path.split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
    let compact: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();
    walk(&[], &compact, &mut out);
    out
}

/// The paths of every `use` declaration of a file.
fn use_trees(text: &str) -> Vec<&str> {
    use_declarations(text).into_iter().map(|(_, tree)| tree).collect()
}

/// Every `use` declaration of a file, as the text between `use` and `;` (it may span lines), and whether it
/// is a re-export (`pub`, of any scope).
fn use_declarations(text: &str) -> Vec<(bool, &str)> {
    let mut trees = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let visibility = if trimmed.starts_with("pub(") {
            trimmed.find(") ").map_or(0, |end| end + 2)
        } else if trimmed.starts_with("pub ") {
            4
        } else {
            0
        };
        if trimmed[visibility..].starts_with("use ") {
            let start = offset + (line.len() - trimmed.len()) + visibility + 4;
            if let Some(end) = text[start..].find(';') {
                trees.push((visibility > 0, &text[start..start + end]));
            }
        }
        offset += line.len();
    }
    trees
}

struct Crate {
    files: BTreeMap<ModPath, (PathBuf, String)>,
    /// Per `mod.rs` (or the root), the items it re-exports from its own sub-modules: name → defining file.
    reexports: HashMap<ModPath, HashMap<String, ModPath>>,
}

impl Crate {
    fn read(src: &Path) -> Self {
        let files = crate_files(src);
        let mut reexports: HashMap<ModPath, HashMap<String, ModPath>> = HashMap::new();
        for (module, (_, text)) in &files {
            for tree in use_trees(text) {
                for path in expand_use_tree(tree) {
                    let Some(first) = path.first() else { continue };
                    if matches!(first.as_str(), "crate" | "super" | "self") || path.len() < 2 {
                        continue;
                    }
                    let mut child = module.clone();
                    child.push(first.clone());
                    if files.contains_key(&child) {
                        reexports
                            .entry(module.clone())
                            .or_default()
                            .insert(path.last().unwrap().clone(), child);
                    }
                }
            }
        }
        Self { files, reexports }
    }

    /// The file a path used in `module` leads to, if it leads into the crate.
    fn resolve(&self, module: &ModPath, path: &[String]) -> Option<ModPath> {
        let (mut base, rest): (ModPath, &[String]) = match path.first()?.as_str() {
            "crate" => (Vec::new(), &path[1..]),
            "self" => (module.clone(), &path[1..]),
            "super" => {
                let mut base = module.clone();
                let mut rest = path;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                (base, rest)
            }
            _ => return None,
        };
        let mut found = self.files.contains_key(&base).then(|| base.clone());
        for segment in rest {
            base.push(segment.clone());
            if self.files.contains_key(&base) {
                found = Some(base.clone());
                continue;
            }
            // An item: follow a re-export of the module reached so far to the file that defines it.
            if let Some(reexported) = found.as_ref().and_then(|m| self.reexports.get(m)?.get(segment)) {
                found = Some(reexported.clone());
            }
            break;
        }
        found
    }

    /// Which files each file imports from.
    fn imports(&self) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
        let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
        for (module, (_, text)) in &self.files {
            let mut paths: Vec<Vec<String>> = use_trees(text).into_iter().flat_map(expand_use_tree).collect();
            // Paths written out in code (`crate::x::y(...)`) count as imports too.
            for start in ["crate::", "super::"] {
                for (at, _) in text.match_indices(start) {
                    if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                        continue;
                    }
                    let path: String = text[at..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    paths.push(path.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect());
                }
            }
            // A module that uses its own sub-module's items (not only re-exports them) depends on that file.
            for (reexport, tree) in use_declarations(text) {
                for path in expand_use_tree(tree).into_iter().filter(|_| !reexport) {
                    let mut child = module.clone();
                    child.push(path[0].clone());
                    if self.files.contains_key(&child) {
                        paths.push(["self".to_owned()].into_iter().chain(path).collect());
                    }
                }
            }
            let targets = edges.entry(module.clone()).or_default();
            for path in paths {
                if let Some(target) = self.resolve(module, &path).filter(|t| t != module) {
                    targets.insert(target);
                }
            }
        }
        edges
    }
}

/// The import circles: strongly connected sets of more than one file (Tarjan's algorithm).
fn circles(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct State<'a> {
        edges: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: HashMap<&'a ModPath, usize>,
        low: HashMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        found: Vec<Vec<ModPath>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a ModPath) {
        let next = state.index.len();
        state.index.insert(node, next);
        state.low.insert(node, next);
        state.stack.push(node);
        state.on_stack.insert(node);
        for target in state.edges.get(node).into_iter().flatten() {
            if !state.index.contains_key(target) {
                visit(state, target);
                let low = state.low[node].min(state.low[target]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(target) {
                let low = state.low[node].min(state.index[target]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut members = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                members.push(member.clone());
                if member == node {
                    break;
                }
            }
            if members.len() > 1 {
                members.sort();
                state.found.push(members);
            }
        }
    }
    let mut state = State {
        edges,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn show(module: &ModPath) -> String {
    if module.is_empty() {
        "lib".into()
    } else {
        module.join("/")
    }
}

#[test]
fn no_two_files_of_the_sidecar_import_each_other_even_through_others() {
    let krate = Crate::read(&src());
    let edges = krate.imports();
    // The reader itself must see the crate's real dependencies, or an empty graph would pass.
    let route_relay = vec!["route".to_owned(), "relay".to_owned(), "forward".to_owned()];
    assert!(
        edges[&route_relay].contains(&vec!["route".to_owned(), "channel".to_owned()]),
        "the relay's use of the channel was not seen: {:?}",
        edges[&route_relay]
    );
    let found = circles(&edges);
    let shown: Vec<Vec<String>> = found.iter().map(|c| c.iter().map(show).collect()).collect();
    assert!(shown.is_empty(), "import circles between files: {shown:?}");
}

#[test]
fn the_reader_finds_a_circle_made_through_a_reexport() {
    let mut krate = Crate::read(&src());
    let (a, b) = (
        vec!["route".to_owned(), "relay".to_owned(), "forward".to_owned()],
        vec!["route".to_owned(), "channel".to_owned()],
    );
    krate
        .files
        .get_mut(&b)
        .unwrap()
        .1
        .push_str("\nuse crate::route::relay::Forward;\n");
    let found = circles(&krate.imports());
    assert!(found.iter().any(|c| c.contains(&a) && c.contains(&b)), "{found:?}");
}

#[test]
fn the_layers_import_only_downwards() {
    let edges = Crate::read(&src()).imports();
    let under = |module: &ModPath, top: &str| module.first().is_some_and(|m| m == top);
    let forbidden = [
        ("identity", "upstream"),
        ("config", "identity"),
        ("upstream", "route"),
        ("upstream", "downstream"),
        ("route", "downstream"),
        ("catalog", "route"),
        ("catalog", "config"),
        ("protocol", "route"),
        ("net", "upstream"),
        ("net", "identity"),
        ("embeddings", "route"),
        ("embeddings", "upstream"),
        ("embeddings", "identity"),
        ("catalog", "embeddings"),
        // The server end's process transport answers HTTP as the sidecar's agent side does (its response
        // helpers), but knows nothing of routing, targets or identity.
        ("child", "route"),
        ("child", "upstream"),
        ("child", "identity"),
    ];
    let mut wrong = Vec::new();
    for (from, targets) in &edges {
        for target in targets {
            let reaches_serve = target == &vec!["serve".to_owned()];
            if forbidden
                .iter()
                .any(|(low, high)| under(from, low) && under(target, high))
                || reaches_serve && (under(from, "upstream") || under(from, "route") || under(from, "identity"))
            {
                wrong.push(format!("{} -> {}", show(from), show(target)));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layering: {wrong:?}");
}

#[test]
fn no_file_of_the_sidecar_is_over_600_lines() {
    let long: Vec<String> = Crate::read(&src())
        .files
        .values()
        .filter_map(|(path, _)| {
            let lines = std::fs::read_to_string(path).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines})", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
}
