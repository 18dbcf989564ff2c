//! How one target's item names become exposed names: allow/deny globs, renames and the prefix.

use std::collections::BTreeMap;

/// Which of a target's names are exposed, and under what names (before the prefix).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    /// Globs (`*`, `?`) of names to expose; empty means all.
    pub allow: Vec<String>,
    /// Globs of names to hide; wins over `allow`.
    pub deny: Vec<String>,
    /// Target's name to the name used before prefixing.
    pub rename: BTreeMap<String, String>,
    /// Globs of exposed names (prefix included) to keep; empty means all (a profile's filter).
    pub exposed_allow: Vec<String>,
    /// Globs of exposed names to hide; wins over `exposed_allow`.
    pub exposed_deny: Vec<String>,
}

/// Turns a target's original names into exposed names (or hides them).
#[derive(Debug, Clone, PartialEq)]
pub struct Namer {
    prefix: String,
    filter: Rules,
}

impl Namer {
    /// A namer for one target and item kind.
    pub fn new(prefix: &str, rules: Rules) -> Self {
        Self {
            prefix: prefix.to_owned(),
            filter: rules,
        }
    }

    /// The exposed name of `original`, or `None` when the filter hides it.
    pub fn expose(&self, original: &str) -> Option<String> {
        let allowed = self.filter.allow.is_empty() || self.filter.allow.iter().any(|g| glob_match(g, original));
        if !allowed || self.filter.deny.iter().any(|g| glob_match(g, original)) {
            return None;
        }
        let base = self.filter.rename.get(original).map_or(original, String::as_str);
        let exposed = if self.prefix.is_empty() {
            base.to_owned()
        } else {
            format!("{}_{base}", self.prefix)
        };
        let kept =
            self.filter.exposed_allow.is_empty() || self.filter.exposed_allow.iter().any(|g| glob_match(g, &exposed));
        (kept && !self.filter.exposed_deny.iter().any(|g| glob_match(g, &exposed))).then_some(exposed)
    }
}

/// Matches `*` (any run, also empty) and `?` (one character); everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether an exposed name fits what MCP clients accept (`^[A-Za-z0-9_.-]{1,128}$`).
pub fn is_valid_exposed_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.chars().all(crate::protocol::is_name_char)
}

/// Longest tool name some client APIs accept; longer names are reported, not refused.
pub const CLIENT_FRIENDLY_NAME_LEN: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("mul*", "multiply"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*x*y", "axbxy"));
        assert!(!glob_match("mul*", "add"));
        assert!(!glob_match("a?c", "ac"));
    }

    #[test]
    fn filters_renames_and_prefixes() {
        let filter = Rules {
            allow: vec!["add".into(), "mul*".into()],
            deny: vec!["multiply_secret".into()],
            rename: [("add".to_string(), "plus".to_string())].into(),
            ..Rules::default()
        };
        let namer = Namer::new("math", filter);
        assert_eq!(namer.expose("add").as_deref(), Some("math_plus"));
        assert_eq!(namer.expose("multiply").as_deref(), Some("math_multiply"));
        assert_eq!(namer.expose("multiply_secret"), None);
        assert_eq!(namer.expose("divide"), None);
        assert_eq!(Namer::new("", Rules::default()).expose("x").as_deref(), Some("x"));
    }
}
