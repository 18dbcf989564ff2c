//! How a target's task id reaches a client: `<target>.<id>`, since several targets may hand out the same id.

/// Separates the target's name from its own task id (target names are DNS labels, so never hold it).
const SEPARATOR: char = '.';

/// The task id a client sees for a task `target` created.
pub fn client_task_id(target: &str, upstream_id: &str) -> String {
    format!("{target}{SEPARATOR}{upstream_id}")
}

/// The target and its own task id, from an id a client sends.
pub fn split_client_task_id(client_id: &str) -> Option<(&str, &str)> {
    client_id
        .split_once(SEPARATOR)
        .filter(|(target, id)| !target.is_empty() && !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_carry_their_target_and_split_back() {
        let id = client_task_id("fm", "PtR5.0lY");
        assert_eq!(id, "fm.PtR5.0lY");
        assert_eq!(split_client_task_id(&id), Some(("fm", "PtR5.0lY")));
        assert_eq!(split_client_task_id("no-separator"), None);
        assert_eq!(split_client_task_id(".x"), None);
        assert_eq!(split_client_task_id("fm."), None);
    }
}
