//! The configuration reference (`docs/config.md`) documents every key of the config schema (its examples are
//! checked with every other snippet of the docs, in `docs.rs`).

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every key of the schema as a user writes it, with the struct it belongs to: serde field names turned to
/// camelCase where the struct says `rename_all = "camelCase"`.
fn schema_keys() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("src/config/schema.rs")).unwrap();
    let mut keys = Vec::new();
    let (mut camel, mut current) = (false, None::<String>);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("#[serde(") && line.contains("deny_unknown_fields") {
            camel = line.contains("rename_all = \"camelCase\"");
        } else if let Some(rest) = line.strip_prefix("pub struct ") {
            current = rest.split([' ', '{']).next().map(str::to_owned);
        } else if line == "}" {
            current = None;
        } else if let (Some(owner), Some(field)) = (&current, line.strip_prefix("pub ")) {
            let name = field.split(':').next().unwrap().trim();
            let key = if camel { camel_case(name) } else { name.to_owned() };
            keys.push((owner.clone(), key));
        }
    }
    keys
}

fn camel_case(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn reference() -> String {
    std::fs::read_to_string(root().join("docs/config.md")).unwrap()
}

#[test]
fn every_key_of_the_schema_has_an_entry_in_the_reference() {
    let keys = schema_keys();
    // The reader must see the schema, or nothing would be checked.
    for known in ["actorPath", "resource", "serverName", "valueFile", "path"] {
        assert!(
            keys.iter().any(|(_, key)| key == known),
            "`{known}` not read from the schema: {keys:?}"
        );
    }
    let reference = reference();
    // An entry is a table row whose first cell names the key, alone or within a dotted path (a section's
    // rows name its parent key: `jwt.issuer`).
    let documented = |key: &str| {
        reference.lines().filter(|l| l.starts_with("| `")).any(|row| {
            let cell = row[3..].split('`').next().unwrap_or("");
            cell.split('.').any(|segment| segment == key)
        })
    };
    let missing: Vec<String> = keys
        .iter()
        .filter(|(_, key)| !documented(key))
        .map(|(owner, key)| format!("{owner}.{key}"))
        .collect();
    assert!(missing.is_empty(), "keys with no entry in docs/config.md: {missing:?}");
}
