//! Per-call authorization with Cedar: which caller may call which tool, get which prompt and read
//! which resource. The model the policies see:
//!
//! - `principal`: `Caller::"<sub>"` (the validated token's subject; `Caller::"anonymous"` without
//!   inbound identity);
//! - `action`: `Action::"tools/call"`, `Action::"prompts/get"` or `Action::"resources/read"`;
//! - `resource`: `Tool::"<exposed name>"`, `Prompt::"<exposed name>"` or `Resource::"<uri>"`;
//! - `context`: `target` (the target's name), `name` (the item's upstream name), `profile` (the pod's
//!   role, `""` without one) and `claims` (the caller's token claims; `{}` without inbound identity).
//!
//! Cedar denies by default: with a policy configured, something must `permit` a call. The rule that
//! decided is named by its `@id("...")` annotation, else by Cedar's position id (`policy0`, ...).

use crate::catalog::ItemKind;
use crate::protocol::method;
use crate::sync::lock;
use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    RestrictedExpression,
};
use miette::Diagnostic;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

/// The rule reported when no policy is configured.
pub const NO_POLICY: &str = "no policy configured";
/// The rule reported when Cedar's default deny applied.
pub const DEFAULT_DENY: &str = "no permit matched";

/// What a caller wants to do with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `tools/call`.
    CallTool = 0,
    /// `prompts/get`.
    GetPrompt,
    /// `resources/read`.
    ReadResource,
}

impl Action {
    /// The action for reading or using an item of `kind` (templates are read as resources).
    pub fn for_kind(kind: ItemKind) -> Self {
        match kind {
            ItemKind::Tools => Self::CallTool,
            ItemKind::Prompts => Self::GetPrompt,
            ItemKind::Resources | ItemKind::Templates => Self::ReadResource,
        }
    }

    fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::CallTool => (method::TOOLS_CALL, "Tool"),
            Self::GetPrompt => (method::PROMPTS_GET, "Prompt"),
            Self::ReadResource => (method::RESOURCES_READ, "Resource"),
        }
    }
}

/// Verdicts remembered at most; the memory is emptied when it is full.
pub const MAX_REMEMBERED: usize = 16 * 1024;

/// One question to the policy.
#[derive(Clone, Copy)]
pub struct Query<'a> {
    /// A digest of the caller's token (which fixes the subject and the claims); zeros without one.
    /// Verdicts are remembered under it.
    pub caller_key: [u8; 32],
    /// The caller's subject, when inbound identity is on.
    pub subject: Option<&'a str>,
    /// The caller's token claims.
    pub claims: Option<&'a Map<String, Value>>,
    /// What the caller wants.
    pub action: Action,
    /// The item as the agent names it (exposed tool or prompt name, resource URI).
    pub exposed: &'a str,
    /// The item's name at the target.
    pub upstream: &'a str,
    /// The target that serves it.
    pub target: &'a str,
    /// The pod's profile.
    pub profile: Option<&'a str>,
}

/// The policy's answer and the rule that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the call may go ahead.
    pub allowed: bool,
    /// The deciding rule's `@id`, Cedar id, or [`DEFAULT_DENY`].
    pub rule: Arc<str>,
}

/// One thing wrong with a policy text, at a line and column of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// 1-based line in the policy text (0 when Cedar gave no place).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Cedar's message.
    pub message: String,
}

/// A parsed Cedar policy set.
pub struct Policy {
    text: String,
    set: PolicySet,
    authorizer: Authorizer,
    /// Verdicts by caller and item: a Cedar evaluation costs microseconds, and an agent asks about the
    /// same few tools again and again. A policy edit makes a new `Policy`, so nothing outlives it.
    remembered: Mutex<HashMap<([u8; 32], String), Verdict>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").field("text", &self.text).finish()
    }
}

impl PartialEq for Policy {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Policy {
    /// Parses Cedar policies; every syntax error is returned with its place.
    pub fn parse(text: &str) -> Result<Self, Vec<PolicyProblem>> {
        let set = PolicySet::from_str(text).map_err(|errors| {
            errors
                .iter()
                .map(|error| {
                    let offset = error.labels().and_then(|mut l| l.next()).map(|l| l.offset());
                    let (line, column) = offset.map_or((0, 0), |o| line_and_column(text, o));
                    PolicyProblem {
                        line,
                        column,
                        message: error.to_string(),
                    }
                })
                .collect::<Vec<_>>()
        })?;
        if set.templates().next().is_some() {
            return Err(vec![PolicyProblem {
                line: 0,
                column: 0,
                message: "templates (`?principal`, `?resource`) are not supported; write static policies".into(),
            }]);
        }
        if set.policies().next().is_none() {
            return Err(vec![PolicyProblem {
                line: 0,
                column: 0,
                message: "holds no policy; Cedar would deny every call (remove `policy` to allow all)".into(),
            }]);
        }
        Ok(Self {
            text: text.to_owned(),
            set,
            authorizer: Authorizer::new(),
            remembered: Mutex::new(HashMap::new()),
        })
    }

    /// Decides one query, or answers as it did before for the same caller and item. An error while
    /// evaluating a policy (a missing claim, say) makes that policy not apply, as Cedar specifies; it is
    /// logged at debug level.
    pub fn decide(&self, query: &Query<'_>) -> Verdict {
        let (_, kind) = query.action.names();
        let item = [
            kind,
            query.exposed,
            query.upstream,
            query.target,
            query.profile.unwrap_or(""),
        ]
        .join("\0");
        let key = (query.caller_key, item);
        if let Some(known) = lock(&self.remembered).get(&key) {
            return known.clone();
        }
        let verdict = self.evaluate(query);
        let mut remembered = lock(&self.remembered);
        if remembered.len() >= MAX_REMEMBERED {
            remembered.clear();
        }
        remembered.insert(key, verdict.clone());
        verdict
    }

    fn evaluate(&self, query: &Query<'_>) -> Verdict {
        let request = match build_request(query) {
            Ok(request) => request,
            Err(reason) => {
                tracing::warn!(reason = %reason, "policy request could not be built; denied");
                return Verdict {
                    allowed: false,
                    rule: format!("invalid request: {reason}").into(),
                };
            }
        };
        let response = self.authorizer.is_authorized(&request, &self.set, empty_entities());
        for error in response.diagnostics().errors() {
            tracing::debug!(%error, "a policy did not apply");
        }
        let allowed = response.decision() == Decision::Allow;
        let rule = response
            .diagnostics()
            .reason()
            .next()
            .map(|id| {
                self.set
                    .annotation(id, "id")
                    .map_or_else(|| Arc::from(id.to_string()), Arc::from)
            })
            .unwrap_or_else(|| Arc::from(DEFAULT_DENY));
        Verdict { allowed, rule }
    }
}

fn empty_entities() -> &'static Entities {
    static EMPTY: OnceLock<Entities> = OnceLock::new();
    EMPTY.get_or_init(Entities::empty)
}

/// The entity type names, parsed once (Cedar parses them with its full grammar).
struct Names {
    caller: EntityTypeName,
    actions: [EntityUid; 3],
    kinds: [EntityTypeName; 3],
}

fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| {
        let parse = |name: &str| {
            EntityTypeName::from_str(name).unwrap_or_else(|_| unreachable!("`{name}` is a valid Cedar type name"))
        };
        let all = [Action::CallTool, Action::GetPrompt, Action::ReadResource];
        Names {
            caller: parse("Caller"),
            actions: all.map(|a| EntityUid::from_type_name_and_id(parse("Action"), EntityId::new(a.names().0))),
            kinds: all.map(|a| parse(a.names().1)),
        }
    })
}

/// Why a policy request could not be built from a call (Cedar refused a part of it).
#[derive(Debug, thiserror::Error)]
enum RequestError {
    /// The caller's claims did not make a record.
    #[error("the claims do not make a Cedar record: {0}")]
    Claims(#[source] Box<cedar_policy::ExpressionConstructionError>),
    /// The context did not make a record.
    #[error("the context does not make a Cedar record: {0}")]
    Context(#[source] Box<cedar_policy::ContextCreationError>),
    /// Cedar refused the request itself.
    #[error("Cedar refused the request: {0}")]
    Request(#[source] Box<cedar_policy::RequestValidationError>),
}

fn build_request(query: &Query<'_>) -> Result<Request, RequestError> {
    let names = names();
    let index = query.action as usize;
    let principal = EntityUid::from_type_name_and_id(
        names.caller.clone(),
        EntityId::new(query.subject.unwrap_or("anonymous")),
    );
    let action = names.actions[index].clone();
    let resource = EntityUid::from_type_name_and_id(names.kinds[index].clone(), EntityId::new(query.exposed));
    let claims = match query.claims {
        Some(claims) => to_record(claims),
        None => RestrictedExpression::new_record([]),
    }
    .map_err(|e| RequestError::Claims(e.into()))?;
    let context = Context::from_pairs([
        (
            "target".to_owned(),
            RestrictedExpression::new_string(query.target.to_owned()),
        ),
        (
            "name".to_owned(),
            RestrictedExpression::new_string(query.upstream.to_owned()),
        ),
        (
            "profile".to_owned(),
            RestrictedExpression::new_string(query.profile.unwrap_or("").to_owned()),
        ),
        ("claims".to_owned(), claims),
    ])
    .map_err(|e| RequestError::Context(e.into()))?;
    Request::new(principal, action, resource, context, None).map_err(|e| RequestError::Request(e.into()))
}

/// Claims as a Cedar record. Values Cedar has no type for (null, fractions) are left out; they
/// cannot be compared in a policy anyway.
fn to_record(claims: &Map<String, Value>) -> Result<RestrictedExpression, cedar_policy::ExpressionConstructionError> {
    RestrictedExpression::new_record(
        claims
            .iter()
            .filter_map(|(key, value)| Some((key.clone(), to_expression(value, 0)?))),
    )
}

fn to_expression(value: &Value, depth: usize) -> Option<RestrictedExpression> {
    // Claims come from a token the issuer signed, but a depth bound keeps a deep one from costing much.
    if depth > 8 {
        return None;
    }
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(RestrictedExpression::new_bool(*b)),
        Value::Number(n) => n.as_i64().map(RestrictedExpression::new_long),
        Value::String(s) => Some(RestrictedExpression::new_string(s.clone())),
        Value::Array(items) => Some(RestrictedExpression::new_set(
            items.iter().filter_map(|v| to_expression(v, depth + 1)),
        )),
        Value::Object(map) => RestrictedExpression::new_record(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), to_expression(v, depth + 1)?))),
        )
        .ok(),
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query<'a>(subject: &'a str, claims: &'a Map<String, Value>, exposed: &'a str, target: &'a str) -> Query<'a> {
        Query {
            caller_key: [subject.len() as u8; 32],
            subject: Some(subject),
            claims: Some(claims),
            action: Action::CallTool,
            exposed,
            upstream: exposed,
            target,
            profile: Some("sre"),
        }
    }

    #[test]
    fn permits_by_claim_and_target_and_names_the_rule() {
        let policy = Policy::parse(
            r#"@id("sre-may-use-math")
permit(principal, action == Action::"tools/call", resource)
when { context.target == "math" && context.claims has groups && context.claims.groups.contains("sre") };
@id("nobody-deletes")
forbid(principal, action, resource == Tool::"math_delete");"#,
        )
        .unwrap();
        let sre = json!({"groups": ["sre"], "ratio": 0.5, "nothing": null});
        let sre = sre.as_object().unwrap();
        let dev = json!({"groups": ["dev"]});
        let dev = dev.as_object().unwrap();
        let allowed = policy.decide(&query("alice", sre, "math_add", "math"));
        assert_eq!(
            allowed,
            Verdict {
                allowed: true,
                rule: "sre-may-use-math".into()
            }
        );
        let forbidden = policy.decide(&query("alice", sre, "math_delete", "math"));
        assert_eq!(
            forbidden,
            Verdict {
                allowed: false,
                rule: "nobody-deletes".into()
            }
        );
        let other_group = policy.decide(&query("bob", dev, "math_add", "math"));
        assert_eq!(&*other_group.rule, DEFAULT_DENY);
        assert!(!other_group.allowed);
        assert!(!policy.decide(&query("alice", sre, "date_now", "date")).allowed);
    }

    #[test]
    fn syntax_errors_carry_their_place() {
        let problems =
            Policy::parse("permit(principal, action, resource);\npermit(principal, action resource);").unwrap_err();
        assert_eq!(problems[0].line, 2, "{problems:?}");
        assert!(problems[0].column > 1, "{problems:?}");
        assert!(Policy::parse("// nothing\n").is_err());
        assert!(Policy::parse("permit(?principal, action, resource);").is_err());
    }
}
