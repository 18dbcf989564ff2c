//! Requests that name one item (`tools/call`, `prompts/get`, `completion/complete`, `resources/*`):
//! find the target that owns it, write the target's own name back, and forward.

use crate::audit::{AuditCaller, AuditEntry};
use crate::catalog::ItemKind;
use crate::identity::{Acting, Principal};
use crate::metrics::CallOutcome;
use crate::metrics::CallRecord;
use crate::parking::Waiting;
use crate::policy::{self, Verdict};
use crate::protocol::meta;
use crate::protocol::params::{self, ParamHeader};
use crate::protocol::{ClientContext, mrtr};
use crate::protocol::{Era, jsonrpc, method};
use crate::route::bridge;
use crate::route::channel::CallGetStream;
use crate::route::channel::{Channel, Sharing};
use crate::route::channel::{Outgoing, Rewrite};
use crate::route::failure;
use crate::route::message::{Caller, Inbound, Outcome};
use crate::route::method::access;
use crate::route::refresh::{Router, Snapshot};
use crate::route::relay::{self, EraBridge, Forward, Parking};
use crate::route::session::Watch;
use crate::telemetry;
use crate::telemetry::TraceContext;
use serde_json::{Value, json};
use std::borrow::Cow;
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
    params: Option<Arc<[ParamHeader]>>,
    /// False when the target offers the item in 2026-07-28 only (see [`crate::catalog::Entry`]).
    in_sessions: bool,
}

/// What a request names, before it is looked up.
enum Wanted<'a> {
    Named(ItemKind, Cow<'a, str>),
    Uri(Cow<'a, str>),
}

impl Wanted<'_> {
    /// The name or URI asked for.
    fn text(&self) -> &str {
        match self {
            Self::Named(_, name) | Self::Uri(name) => name,
        }
    }
}

fn named(kind: ItemKind, name: Option<Cow<'_, str>>) -> Result<Wanted<'_>, NoDestination> {
    name.map(|n| Wanted::Named(kind, n))
        .ok_or(NoDestination::Missing("name"))
}

fn uri(uri: Option<Cow<'_, str>>) -> Result<Wanted<'_>, NoDestination> {
    uri.map(Wanted::Uri).ok_or(NoDestination::Missing("uri"))
}

fn wanted(message: &jsonrpc::Message) -> Result<Wanted<'_>, NoDestination> {
    match message.method() {
        method::TOOLS_CALL => named(ItemKind::Tools, message.param_str("name")),
        method::PROMPTS_GET => named(ItemKind::Prompts, message.param_str("name")),
        method::COMPLETE => {
            // Completions are rare next to calls: the reference is read as a tree.
            let reference = message.param_value("ref");
            let field = |key: &str| {
                reference
                    .as_ref()
                    .and_then(|r| r.get(key))
                    .and_then(Value::as_str)
                    .map(|v| Cow::Owned(v.to_owned()))
            };
            match field("type").as_deref() {
                Some("ref/prompt") => named(ItemKind::Prompts, field("name")),
                Some("ref/resource") => uri(field("uri")),
                _ => Err(NoDestination::BadReference),
            }
        }
        _ => uri(message.param_str("uri")),
    }
}

fn lookup(snapshot: &Snapshot, wanted: &Wanted<'_>) -> Result<Destination, NoDestination> {
    match wanted {
        &Wanted::Named(kind, ref name) => snapshot
            .catalog
            .lookup(kind, name)
            .map(|e| Destination {
                target: e.target.clone(),
                rewrite: Some(e.original.clone()),
                params: e.params.clone(),
                in_sessions: e.in_sessions,
            })
            .ok_or_else(|| NoDestination::Unknown {
                what: if kind == ItemKind::Tools { "tool" } else { "prompt" },
                name: name.to_string(),
            }),
        Wanted::Uri(uri) => snapshot
            .catalog
            .route_uri(uri)
            .map(|t| Destination {
                target: t.into(),
                rewrite: None,
                params: None,
                in_sessions: true,
            })
            .ok_or_else(|| NoDestination::NoResource(uri.to_string())),
    }
}

/// The target that is down now and used to list the name, with the error to answer.
fn down_target_error(snapshot: &Snapshot, wanted: &Wanted<'_>) -> Option<(Arc<str>, String)> {
    let &Wanted::Named(kind, ref name) = wanted else {
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

/// The audit trail's rule for a call refused because pinning holds its item back.
const HELD_RULE: &str = "pinning";

/// The methods the audit trail records.
const AUDITED: [&str; 3] = [method::TOOLS_CALL, method::PROMPTS_GET, method::RESOURCES_READ];

/// The audit line of a routed call, before its outcome is known. Arguments appear only as a hash, and
/// only when the operator asked for it; no header (so no token) is read.
fn audit_entry(
    router: &Router,
    inbound: &Inbound,
    wanted: &Wanted<'_>,
    destination: &Destination,
    trace: Option<&TraceContext>,
    verdict: Option<&Verdict>,
    principal: Option<&Principal>,
) -> AuditEntry {
    let name = wanted.text().to_owned();
    let subject = principal.map(|p| p.subject.clone());
    let actor = principal.and_then(|p| p.actor.clone());
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
                .meta_value(meta::CLIENT_INFO)
                .and_then(|info| Some(info.get("name")?.as_str()?.to_owned())),
        },
    };
    let arguments = inbound.message.param_value("arguments");
    AuditEntry {
        time: String::new(),
        kind: "mcplex.audit",
        caller,
        profile: router.profile.clone(),
        method: routed_method(inbound.message.method()),
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
        arguments_sha256: router.audit.arguments_hash(arguments.as_ref()),
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
#[expect(clippy::manual_async_fn, reason = "an async fn would hold `inbound` twice")]
pub fn route(router: &Arc<Router>, inbound: Inbound) -> impl Future<Output = Outcome> + '_ {
    async move {
        let id = inbound.id();
        let wanted = match wanted(&inbound.message) {
            Ok(wanted) => wanted,
            Err(problem) => return Outcome::error(id, jsonrpc::INVALID_PARAMS, problem.to_string()),
        };
        let method_label = routed_method(inbound.message.method());
        let tool = match &wanted {
            Wanted::Named(ItemKind::Tools, name) => Some(&**name),
            _ => None,
        };
        let mut snapshot = router.snapshot();
        let mut found = lookup(&snapshot, &wanted);
        // An item pinning holds back is named in the answer (with both digests), not called unknown.
        let held = match (&found, &wanted) {
            (Err(_), &Wanted::Named(kind, ref name)) => snapshot.held(kind, name),
            _ => None,
        };
        if let Some((target, drift, _)) = &held {
            found = Ok(Destination {
                target: target.clone(),
                rewrite: Some(drift.name.clone()),
                params: None,
                in_sessions: true,
            });
        }
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
        // A 2026-07-28 client mirrors the tool's annotated arguments into headers; they must match the body.
        // The arguments are read as a tree only when there are such headers to check or to write.
        let params = destination.params.as_deref().unwrap_or_default();
        let arguments = (!params.is_empty() || !inbound.param_headers.is_empty())
            .then(|| inbound.message.param_value("arguments"))
            .flatten();
        let arguments = arguments.as_ref();
        if matches!(inbound.caller, Caller::Stateless(_))
            && let Err(problem) = params::check(params, arguments, &inbound.param_headers)
        {
            return Outcome::error(id, jsonrpc::HEADER_MISMATCH, problem.to_string());
        }
        // Whatever the client's era, a 2026-07-28 target gets the headers its tool declares.
        let param_headers = params::headers_for(params, arguments);
        let principal = inbound.acting.as_deref().map(Acting::current);
        let verdict = snapshot.config.policy.as_deref().map(|policy| {
            let (kind, exposed) = match &wanted {
                Wanted::Named(kind, name) => (*kind, &**name),
                Wanted::Uri(uri) => (ItemKind::Resources, &**uri),
            };
            let item = access::Item {
                kind,
                exposed,
                upstream: destination.rewrite.as_deref().unwrap_or(exposed),
                target: &destination.target,
            };
            access::decide(policy, principal.as_deref(), router.profile.as_deref(), &item)
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
            let mut entry = audit_entry(
                router,
                &inbound,
                &wanted,
                &destination,
                trace.as_ref(),
                verdict.as_ref(),
                principal.as_deref(),
            );
            if held.is_some() && verdict.as_ref().is_none_or(|v| v.allowed) {
                entry.decision = "deny";
                entry.rule = HELD_RULE.into();
            }
            record.audit(router.audit.clone(), entry);
        }
        if let Some(denied) = verdict.filter(|v| !v.allowed) {
            let name = wanted.text();
            tracing::info!(name, target_name = %destination.target, rule = %denied.rule, "call denied by policy");
            let message = format!("`{name}` is denied by policy (rule `{}`)", denied.rule);
            return failed(&mut record, id, jsonrpc::DENIED_BY_POLICY, message);
        }
        if let Some((target, _, why)) = held {
            tracing::info!(name = wanted.text(), target_name = %target, "call refused: pinning holds the item back");
            return failed(&mut record, id, jsonrpc::HELD_BACK, why);
        }
        let Some(slot) = snapshot.slot(&destination.target) else {
            let message = format!("target `{}` is not configured any more", destination.target);
            return failed(&mut record, id, jsonrpc::TARGET_UNAVAILABLE, message);
        };
        let Some(target) = slot.target.clone() else {
            let error = slot.state().error.unwrap_or_default();
            return failed(&mut record, id, jsonrpc::TARGET_UNAVAILABLE, error);
        };
        let stateless = matches!(inbound.caller, Caller::Stateless(_));
        let parked_state = inbound
            .message
            .param_str(mrtr::REQUEST_STATE)
            .filter(|state| stateless && router.parked.issued(state))
            .map(Cow::into_owned);
        if let Some(state) = parked_state {
            let retry = Retry {
                state: &state,
                target: &target,
                inbound: &inbound,
                id,
                trace,
                span: span.clone(),
            };
            // A retry of a parked call is rare next to plain calls: its future lives on the heap.
            return Box::pin(resume_parked(router, retry, record).instrument(span)).await;
        }
        // A 2026-07-28 client that can answer requests gets a session of its own at a session-era target
        // (a target already known to speak 2026-07-28 needs none, so nothing is built for it).
        let maybe_legacy = target.known_dialects().is_none_or(|d| d.preferred() == Era::Legacy);
        let answering = (stateless && maybe_legacy)
            .then(|| answering_context(&inbound.message))
            .flatten();
        let opened = match (&inbound.caller, &answering) {
            // What the target's sessions lack is reached in 2026-07-28, its requests bridged to the client.
            (Caller::Session(session), _) if !destination.in_sessions => {
                Channel::open(&target, &session.context, Sharing::Shared, inbound.acting.clone())
                    .await
                    .map(|c| (c, false))
            }
            (Caller::Session(session), _) => session.channel(router, &target).await.map(|c| (c, false)),
            (Caller::Stateless(context), None) => {
                Channel::open(&target, context, Sharing::Shared, inbound.acting.clone())
                    .await
                    .map(|c| (c, false))
            }
            (Caller::Stateless(_), Some(context)) => {
                Box::pin(Channel::open_for_call(&target, context, inbound.acting.clone())).await
            }
        };
        let (channel, own_session) = match opened {
            Ok(opened) => opened,
            Err(error) => return failed_with(&mut record, id, &error),
        };
        let parking = match (own_session, &answering) {
            (true, Some(context)) => {
                // Open before the call goes out: TypeScript SDK servers send requests tied to no call only on a
                // stream that already exists.
                let get_stream = match channel.legacy_session() {
                    Some(session) => Box::pin(session.open_stream(None))
                        .await
                        .ok()
                        .flatten()
                        .map(|stream| CallGetStream::new(session.clone(), stream)),
                    None => None,
                };
                Some(Box::new(Parking {
                    parks: router.parked.clone(),
                    capabilities: context.capabilities.clone(),
                    subject: principal.as_ref().map(|p| p.subject.clone()),
                    get_stream,
                }))
            }
            _ => None,
        };
        let method_name = inbound.message.method();
        if matches!(method_name, method::RESOURCES_SUBSCRIBE | method::RESOURCES_UNSUBSCRIBE)
            && channel.era() == Era::Modern
        {
            // Only session-era clients send these (the 2026-07-28 wire refused them earlier).
            let (Some(session), Some(uri)) = (inbound.caller.session(), inbound.message.param_str("uri")) else {
                let message = "resources/subscribe needs a session and params.uri".to_owned();
                return failed(&mut record, id, jsonrpc::INVALID_PARAMS, message);
            };
            let watch = if method_name == method::RESOURCES_SUBSCRIBE {
                Watch::Start
            } else {
                Watch::Stop
            };
            return match Box::pin(bridge::change_subscription(session, &channel, &uri, watch)).await {
                Ok(()) => {
                    record.finish(CallOutcome::Ok);
                    Outcome::Message(jsonrpc::result(id, json!({})))
                }
                Err(error) => failed_with(&mut record, id, &error),
            };
        }
        let rewrite = Rewrite {
            id: target.next_request_id(),
            name: destination.rewrite,
            name_in_ref: method_name == method::COMPLETE,
        };
        let progress_token = inbound.message.meta_value(meta::PROGRESS_TOKEN);
        let call = relay::forward(Forward {
            era: inbound.caller.era(),
            session: inbound.caller.session().cloned(),
            message: Outgoing::Relayed(inbound.message, rewrite),
            channel,
            client_id: id,
            record,
            trace,
            span: span.clone(),
            bridging: parking.map_or(EraBridge::None, EraBridge::Parking),
            param_headers,
            progress_token,
        });
        call.instrument(span).await
    }
}

/// Records a call that failed before it was sent and answers the client.
fn failed(record: &mut CallRecord, id: Value, code: i64, message: String) -> Outcome {
    record.finish(CallOutcome::of_error(code));
    Outcome::error(id, code, message)
}

/// Answers with the error a failure maps to (see [`failure`]), and records it.
fn failed_with(record: &mut CallRecord, id: Value, error: &(dyn std::error::Error + 'static)) -> Outcome {
    let answer = failure::error_answer(id, error);
    record.finish(CallOutcome::of_error(failure::client_code(error)));
    Outcome::Message(answer)
}

/// The context of a 2026-07-28 request whose client declared it can answer elicitation, sampling or
/// roots requests: what a session opened for it tells the target.
fn answering_context(message: &jsonrpc::Message) -> Option<Arc<ClientContext>> {
    let capabilities = message.meta_raw(meta::CLIENT_CAPABILITIES)?;
    // Most clients declare none of these: the capabilities are read as a tree only when one may be there.
    if capabilities == "{}" {
        return None;
    }
    let capabilities: Value = serde_json::from_str(capabilities).ok()?;
    let answers = mrtr::INPUT_METHODS
        .iter()
        .any(|(_, capability)| capabilities.get(capability).is_some());
    answers.then(|| {
        Arc::new(ClientContext::new(
            crate::protocol::LATEST_LEGACY_VERSION,
            message
                .meta_value(meta::CLIENT_INFO)
                .unwrap_or_else(crate::protocol::mcplex_identity),
            capabilities,
        ))
    })
}

/// A retry that names a parked call.
struct Retry<'a> {
    state: &'a str,
    target: &'a Arc<crate::upstream::Target>,
    inbound: &'a Inbound,
    id: Value,
    trace: Option<TraceContext>,
    span: Span,
}

/// Gives a parked call its client's answers and relays the rest of it as the retry's answer.
async fn resume_parked(router: &Arc<Router>, retry: Retry<'_>, mut record: CallRecord) -> Outcome {
    let Retry {
        state,
        target,
        inbound,
        id,
        trace,
        span,
    } = retry;
    let principal = inbound.acting.as_deref().map(Acting::current);
    let subject = principal.as_ref().map(|p| p.subject.clone());
    let parked = match router.parked.take(state, subject.as_deref()) {
        Ok(parked) => parked,
        Err(error) => return failed_with(&mut record, id, &error),
    };
    if parked.channel.link().name() != target.name() {
        router.parked.put_back(state, parked);
        let message = format!("requestState names a call to another target than `{}`", target.name());
        return failed(&mut record, id, jsonrpc::INVALID_PARAMS, message);
    }
    let responses = inbound.message.param_value(mrtr::INPUT_RESPONSES);
    let answers = match parked.answers(responses.as_ref().and_then(Value::as_object)) {
        Ok(answers) => answers,
        Err(error) => {
            router.parked.put_back(state, parked);
            return failed_with(&mut record, id, &error);
        }
    };
    for answer in answers {
        if let Err(error) = parked.channel.send(answer, None).await {
            bridge::close_own_session(&parked.channel);
            return failed_with(&mut record, id, &error);
        }
    }
    let capabilities = inbound
        .message
        .meta_value(meta::CLIENT_CAPABILITIES)
        .unwrap_or_default();
    let forward = Forward {
        channel: parked.channel.clone(),
        message: Outgoing::Tree(Value::Null),
        client_id: id,
        era: Era::Modern,
        session: None,
        record,
        trace,
        span,
        bridging: EraBridge::Parking(Box::new(Parking {
            parks: router.parked.clone(),
            capabilities,
            subject,
            get_stream: None,
        })),
        param_headers: Vec::new(),
        progress_token: parked.progress_token.clone(),
    };
    relay::resume(forward, parked)
}
