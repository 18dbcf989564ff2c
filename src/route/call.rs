//! Requests that name one item (`tools/call`, `prompts/get`, `completion/complete`, `resources/*`):
//! find the target that owns it, write the target's own name back, and forward.

use crate::audit::{AuditCaller, AuditEntry};
use crate::catalog::ItemKind;
use crate::identity::Acting;
use crate::metrics::CallOutcome;
use crate::policy::{self, Verdict};
use crate::protocol::meta;
use crate::protocol::{Era, jsonrpc, method};
use crate::route::decide;
use crate::route::forward::{self, Forward};
use crate::route::message::{Caller, Inbound, Outcome};
use crate::route::router::{Router, Snapshot};
use crate::telemetry;
use crate::telemetry::TraceContext;
use serde_json::{Value, json};
use std::sync::Arc;
use tracing::{Instrument, Span};

/// Why a request could not be given a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoDestination {
    /// A required parameter is absent.
    #[error("params.{0} is required")]
    Missing(&'static str),
    /// No target lists the name.
    #[error("unknown {what} `{name}`")]
    Unknown {
        /// Tool or prompt.
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// No target lists the URI or a template matching it.
    #[error("no target serves resource `{0}`")]
    NoResource(String),
    /// `completion/complete` with a reference of another type.
    #[error("params.ref must be a ref/prompt or ref/resource")]
    BadReference,
}

/// Where a request goes: the target, and the name to write back into the request.
struct Destination {
    target: Arc<str>,
    rewrite: Option<Arc<str>>,
}

/// What a request names, before it is looked up.
enum Wanted<'a> {
    Named(ItemKind, &'a str),
    Uri(&'a str),
}

fn named(kind: ItemKind, name: Option<&str>) -> Result<Wanted<'_>, NoDestination> {
    name.map(|n| Wanted::Named(kind, n))
        .ok_or(NoDestination::Missing("name"))
}

fn uri(uri: Option<&str>) -> Result<Wanted<'_>, NoDestination> {
    uri.map(Wanted::Uri).ok_or(NoDestination::Missing("uri"))
}

fn wanted(message: &jsonrpc::Message) -> Result<Wanted<'_>, NoDestination> {
    match message.method() {
        method::TOOLS_CALL => named(ItemKind::Tools, message.param_str("name")),
        method::PROMPTS_GET => named(ItemKind::Prompts, message.param_str("name")),
        method::COMPLETE => {
            let reference = message.body.get("params").and_then(|p| p.get("ref"));
            let field = |key: &str| reference.and_then(|r| r.get(key)).and_then(Value::as_str);
            match field("type") {
                Some("ref/prompt") => named(ItemKind::Prompts, field("name")),
                Some("ref/resource") => uri(field("uri")),
                _ => Err(NoDestination::BadReference),
            }
        }
        _ => uri(message.param_str("uri")),
    }
}

fn lookup(snapshot: &Snapshot, wanted: &Wanted<'_>) -> Result<Destination, NoDestination> {
    match *wanted {
        Wanted::Named(kind, name) => snapshot
            .catalog
            .lookup(kind, name)
            .map(|e| Destination {
                target: e.target.clone(),
                rewrite: Some(e.original.clone()),
            })
            .ok_or_else(|| NoDestination::Unknown {
                what: if kind == ItemKind::Tools { "tool" } else { "prompt" },
                name: name.to_owned(),
            }),
        Wanted::Uri(uri) => snapshot
            .catalog
            .route_uri(uri)
            .map(|t| Destination {
                target: t.into(),
                rewrite: None,
            })
            .ok_or_else(|| NoDestination::NoResource(uri.to_owned())),
    }
}

/// The target that is down now and used to list the name, with the error to answer.
fn down_target_error(snapshot: &Snapshot, wanted: &Wanted<'_>) -> Option<(Arc<str>, String)> {
    let Wanted::Named(kind, name) = *wanted else {
        return None;
    };
    let slot = snapshot.slots.iter().find(|s| s.knew(kind, name))?;
    let state = slot.state();
    state.items.is_none().then(|| {
        let error = state
            .error
            .unwrap_or_else(|| format!("target `{}` is unavailable", slot.name));
        (Arc::from(slot.name.as_str()), error)
    })
}

/// The methods the audit trail records.
const AUDITED: [&str; 3] = [method::TOOLS_CALL, method::PROMPTS_GET, method::RESOURCES_READ];

/// The audit line of a routed call, before its outcome is known. Arguments appear only as a hash, and
/// only when the operator asked for it; no header (so no token) is read.
fn audit_entry(
    router: &Router,
    inbound: &Inbound,
    method: &'static str,
    wanted: &Wanted<'_>,
    destination: &Destination,
    trace: Option<&TraceContext>,
    verdict: Option<&Verdict>,
) -> AuditEntry {
    let name = match *wanted {
        Wanted::Named(_, name) | Wanted::Uri(name) => name.to_owned(),
    };
    let principal = inbound.acting.as_deref().map(Acting::current);
    let subject = principal.as_ref().map(|p| p.subject.clone());
    let actor = principal.as_ref().and_then(|p| p.actor.clone());
    let caller = match &inbound.caller {
        Caller::Session(session) => AuditCaller {
            subject,
            actor,
            session: Some(session.id.clone()),
            client: session
                .context
                .client_info
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        Caller::Stateless(_) => AuditCaller {
            subject,
            actor,
            session: None,
            client: inbound
                .message
                .meta()
                .and_then(|m| m.get(meta::CLIENT_INFO)?.get("name")?.as_str())
                .map(str::to_owned),
        },
    };
    let arguments = inbound.message.body.get("params").and_then(|p| p.get("arguments"));
    AuditEntry {
        time: String::new(),
        kind: "mcplex.audit",
        caller,
        profile: router.profile.clone(),
        method,
        name,
        upstream_name: destination.rewrite.as_deref().map(str::to_owned),
        target: destination.target.to_string(),
        decision: if verdict.is_none_or(|v| v.allowed) {
            "allow"
        } else {
            "deny"
        },
        rule: verdict.map_or_else(|| policy::NO_POLICY.to_owned(), |v| v.rule.to_string()),
        outcome: "",
        latency_ms: 0.0,
        trace_id: trace.and_then(TraceContext::trace_id),
        arguments_sha256: router.audit.arguments_hash(arguments),
    }
}

/// The method as a fixed label (the dispatcher only routes these here).
fn routed_method(name: &str) -> &'static str {
    [
        method::TOOLS_CALL,
        method::PROMPTS_GET,
        method::COMPLETE,
        method::RESOURCES_READ,
        method::RESOURCES_SUBSCRIBE,
        method::RESOURCES_UNSUBSCRIBE,
    ]
    .into_iter()
    .find(|known| *known == name)
    .unwrap_or("other")
}

/// Routes a request to the target that owns what it names.
pub async fn route(router: &Arc<Router>, inbound: Inbound) -> Outcome {
    let id = inbound.id();
    let wanted = match wanted(&inbound.message) {
        Ok(wanted) => wanted,
        Err(problem) => return Outcome::error(id, jsonrpc::INVALID_PARAMS, problem.to_string()),
    };
    let method_label = routed_method(inbound.message.method());
    let tool = match wanted {
        Wanted::Named(ItemKind::Tools, name) => Some(name),
        _ => None,
    };
    let mut snapshot = router.snapshot();
    let mut found = lookup(&snapshot, &wanted);
    if found.is_err() {
        if let Some((target, error)) = down_target_error(&snapshot, &wanted) {
            router
                .metrics
                .call(&target, method_label, tool)
                .finish(CallOutcome::Unavailable);
            return Outcome::error(id, jsonrpc::TARGET_UNAVAILABLE, error);
        }
        // A miss may mean a target changed its list without telling us: refresh (rate-limited) and look again.
        router.refresh_after_miss().await;
        snapshot = router.snapshot();
        found = lookup(&snapshot, &wanted);
    }
    let destination = match found {
        Ok(destination) => destination,
        Err(problem) => return Outcome::error(id, jsonrpc::INVALID_PARAMS, problem.to_string()),
    };
    let verdict = snapshot.config.policy.as_deref().map(|policy| {
        let (kind, exposed) = match wanted {
            Wanted::Named(kind, name) => (kind, name),
            Wanted::Uri(uri) => (ItemKind::Resources, uri),
        };
        let item = decide::Item {
            kind,
            exposed,
            upstream: destination.rewrite.as_deref().unwrap_or(exposed),
            target: &destination.target,
        };
        decide::decide(policy, inbound.acting.as_deref(), router.profile.as_deref(), &item)
    });
    let mut record = router.metrics.call(&destination.target, method_label, tool);
    let (span, trace) = if router.tracing {
        let span = telemetry::call_span(method_label, &destination.target, tool, inbound.trace.as_ref());
        // A span nobody records (no exporter listening) has no context; the client's is passed on then.
        let trace = telemetry::context_of(&span).or_else(|| inbound.trace.clone());
        (span, trace)
    } else {
        (Span::none(), inbound.trace.clone())
    };
    if router.audit.is_on() && AUDITED.contains(&method_label) {
        let entry = audit_entry(
            router,
            &inbound,
            method_label,
            &wanted,
            &destination,
            trace.as_ref(),
            verdict.as_ref(),
        );
        record.audit(router.audit.clone(), entry);
    }
    let mut fail = |id: Value, code: i64, message: String| {
        record.finish(CallOutcome::of_error(code));
        Outcome::error(id, code, message)
    };
    if let Some(denied) = verdict.filter(|v| !v.allowed) {
        let name = match wanted {
            Wanted::Named(_, name) | Wanted::Uri(name) => name,
        };
        tracing::info!(name, target_name = %destination.target, rule = %denied.rule, "call denied by policy");
        let message = format!("`{name}` is denied by policy (rule `{}`)", denied.rule);
        return fail(id, jsonrpc::DENIED_BY_POLICY, message);
    }
    let Some(slot) = snapshot.slot(&destination.target) else {
        let message = format!("target `{}` is not configured any more", destination.target);
        return fail(id, jsonrpc::TARGET_UNAVAILABLE, message);
    };
    let Some(target) = slot.target.clone() else {
        let error = slot.state().error.unwrap_or_default();
        return fail(id, jsonrpc::TARGET_UNAVAILABLE, error);
    };
    let channel = match &inbound.caller {
        Caller::Session(session) => session.channel(router, &target).await,
        Caller::Stateless(context) => {
            crate::route::channel::Channel::open(&target, context, false, inbound.acting.clone()).await
        }
    };
    let channel = match channel {
        Ok(channel) => channel,
        Err(error) => return fail(id, error.code(), error.to_string()),
    };
    let method_name = inbound.message.method();
    if matches!(method_name, method::RESOURCES_SUBSCRIBE | method::RESOURCES_UNSUBSCRIBE)
        && channel.era() == Era::Modern
    {
        return fail(
            id,
            jsonrpc::METHOD_NOT_FOUND,
            format!(
                "target `{}` speaks only 2026-07-28, where resources/subscribe was replaced by subscriptions/listen; bridging the two is not supported yet",
                target.name()
            ),
        );
    }
    let is_completion = method_name == method::COMPLETE;
    let mut message = Value::Object(inbound.message.body);
    if let Some(original) = destination.rewrite {
        // `wanted` found a string there, so the holder is an object.
        let holder = if is_completion {
            &mut message["params"]["ref"]
        } else {
            &mut message["params"]
        };
        holder["name"] = json!(&*original);
    }
    message["id"] = target.next_request_id();
    if let Some(trace) = &trace {
        trace.write_meta(&mut message);
    }
    let call = forward::forward(Forward {
        channel,
        message,
        client_id: id,
        era: inbound.caller.era(),
        session: inbound.caller.session().cloned(),
        record,
        trace,
        span: span.clone(),
        original: None,
    });
    call.instrument(span).await
}
