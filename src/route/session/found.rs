//! The tools a session-era client found with `find_tools`: listed in its `tools/list` from then on, so a
//! client that follows `list_changed` gets them as tools of its own. Bounded: the least recently found
//! leave first.

use std::collections::VecDeque;
use std::sync::Arc;

/// Found tools one session lists at most.
pub const MAX_FOUND: usize = 64;

/// Exposed names, least recently found first.
#[derive(Debug, Default)]
pub struct FoundTools(VecDeque<Arc<str>>);

impl FoundTools {
    /// Notes `names` as found now; true when the set of names changed (not merely their order).
    pub fn add<'n>(&mut self, names: impl IntoIterator<Item = &'n Arc<str>>) -> bool {
        let mut changed = false;
        for name in names {
            match self.0.iter().position(|n| n == name) {
                Some(at) => {
                    if let Some(known) = self.0.remove(at) {
                        self.0.push_back(known);
                    }
                }
                None => {
                    self.0.push_back(name.clone());
                    changed = true;
                }
            }
        }
        while self.0.len() > MAX_FOUND {
            self.0.pop_front();
        }
        changed
    }

    /// True when `name` was found and not pushed out since.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|n| &**n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_tools_are_bounded_and_the_least_recently_found_leave_first() {
        let names: Vec<Arc<str>> = (0..MAX_FOUND + 1).map(|i| Arc::from(format!("t{i}"))).collect();
        let mut found = FoundTools::default();
        assert!(found.add(&names[..2]));
        assert!(!found.add(&names[..1]), "found again: same set");
        // t0 was found again after t1, so t1 is now the oldest.
        assert!(found.add(&names[2..]));
        assert!(found.contains("t0") && !found.contains("t1"));
        assert!(found.contains(&format!("t{MAX_FOUND}")));
    }
}
