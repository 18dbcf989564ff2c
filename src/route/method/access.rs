//! Asks the config's policy about one item for one caller: used to hide items from lists and to
//! refuse calls, so both always agree.

use crate::catalog::ItemKind;
use crate::identity::Principal;
use crate::policy::{Action, Policy, Query, Verdict};

/// The item a decision is about.
pub struct Item<'a> {
    /// Tools, prompts or resources.
    pub kind: ItemKind,
    /// As the agent names it (exposed name, or URI).
    pub exposed: &'a str,
    /// As the target names it.
    pub upstream: &'a str,
    /// The target that serves it.
    pub target: &'a str,
}

/// The policy's verdict on `item` for the caller `principal` of a pod with `profile`.
pub fn decide(policy: &Policy, principal: Option<&Principal>, profile: Option<&str>, item: &Item<'_>) -> Verdict {
    policy.decide(&Query {
        caller_key: principal.map_or([0; 32], Principal::token_key),
        subject: principal.map(|p| p.subject.as_str()),
        claims: principal.map(|p| &p.claims),
        action: Action::for_kind(item.kind),
        exposed: item.exposed,
        upstream: item.upstream,
        target: item.target,
        profile,
    })
}
