//! Copies: one tool offered by several targets (a server deployed twice, with a credential each, or a
//! fork that kept its tools). A search returns each tool once, naming where else it is offered, so that
//! ten copies of one tool do not push nine other tools out of the results the agent reads.

use crate::catalog::Entry;

/// True when `a` and `b` are one tool on two targets: the same upstream name and the same definition,
/// apart from the exposed name written into it.
pub fn same_tool(a: &Entry, b: &Entry) -> bool {
    if a.exposed.is_empty() || b.exposed.is_empty() || a.original != b.original {
        return false;
    }
    // Equal lengths once the names are taken out, checked first: it settles most pairs for free.
    if a.json.len() + b.exposed.len() != b.json.len() + a.exposed.len() {
        return false;
    }
    // The texts between the occurrences of each one's exposed name are equal: `b`'s definition is `a`'s
    // with `a`'s name replaced by `b`'s, wherever it occurs.
    a.json.split(&*a.exposed).eq(b.json.split(&*b.exposed))
}

/// A distinct tool among a search's matches, with the copies that ranked below it.
#[derive(Debug)]
pub struct Distinct<'e> {
    /// The best-ranked copy: the one the result shows.
    pub entry: &'e Entry,
    /// Its relevance.
    pub score: f64,
    /// The same tool on other targets, best first.
    pub copies: Vec<&'e Entry>,
}

/// The first `limit` distinct tools of `ranked` (best first), each with its copies, reading at most
/// `read_at_most` matches: copies of a tool rank next to it, so the reading stops at the first new tool
/// after `limit` are found.
pub fn distinct<'e>(
    ranked: impl IntoIterator<Item = (&'e Entry, f64)>,
    limit: usize,
    read_at_most: usize,
) -> Vec<Distinct<'e>> {
    let mut tools: Vec<Distinct<'e>> = Vec::with_capacity(limit);
    for (entry, score) in ranked.into_iter().take(read_at_most) {
        if let Some(tool) = tools.iter_mut().find(|tool| same_tool(tool.entry, entry)) {
            tool.copies.push(entry);
        } else if tools.len() < limit {
            tools.push(Distinct {
                entry,
                score,
                copies: Vec::new(),
            });
        } else {
            break;
        }
    }
    tools
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(target: &str, original: &str, description: &str) -> Entry {
        let exposed = format!("{target}_{original}");
        let json = json!({"name": exposed, "description": description, "inputSchema": {"type": "object"}});
        Entry {
            exposed: exposed.into(),
            target: target.into(),
            original: original.into(),
            json: json.to_string().into(),
            params: None,
            in_sessions: true,
        }
    }

    #[test]
    fn one_tool_on_two_targets_is_a_copy_and_any_difference_is_not() {
        let a = tool("gh", "create_issue", "Creates an issue");
        assert!(same_tool(&a, &tool("github_org2", "create_issue", "Creates an issue")));
        assert!(!same_tool(&a, &tool("gh2", "create_issue", "Creates an issue.")));
        assert!(!same_tool(&a, &tool("gh2", "create_issues", "Creates an issue")));
        // Same length, another description.
        assert!(!same_tool(&a, &tool("gh2", "create_issue", "Creates an issuf")));
        let mut schema = tool("gh2", "create_issue", "Creates an issue");
        schema.json = schema.json.replace("object", "objekt").into();
        assert!(!same_tool(&a, &schema));
    }

    #[test]
    fn copies_join_the_tool_above_them_and_do_not_take_a_place() {
        let entries = [
            tool("a", "read", "Reads a file"),
            tool("b", "read", "Reads a file"),
            tool("a", "write", "Writes a file"),
            tool("c", "read", "Reads a file"),
            tool("a", "list", "Lists files"),
            tool("b", "write", "Writes a file"),
            tool("a", "delete", "Deletes a file"),
        ];
        let ranked = || entries.iter().zip([7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
        let names = |found: &[Distinct]| -> Vec<(String, Vec<String>)> {
            found
                .iter()
                .map(|d| {
                    let copies = d.copies.iter().map(|c| c.exposed.to_string()).collect();
                    (d.entry.exposed.to_string(), copies)
                })
                .collect()
        };
        let found = distinct(ranked(), 3, 100);
        assert_eq!(
            names(&found),
            [
                ("a_read".into(), vec!["b_read".into(), "c_read".into()]),
                ("a_write".into(), vec!["b_write".into()]),
                ("a_list".into(), vec![]),
            ],
            "a copy ranked below a later tool still joins its own"
        );
        assert_eq!(found[0].score, 7.0);
        assert_eq!(
            names(&distinct(ranked(), 2, 100))[1],
            ("a_write".into(), vec![]),
            "the reading stops at the first new tool past the limit, before b_write"
        );
        let all = distinct(ranked(), 10, 100);
        assert_eq!(all.len(), 4);
        assert_eq!(all[1].copies.len(), 1, "b_write joins a_write");
        assert_eq!(distinct(ranked(), 10, 2).len(), 1, "at most two matches read");
    }
}
