//! Tasks (the 2026-07-28 tasks extension): a target may answer `tools/call` with a task, which the
//! client then polls, answers and cancels by its id. Several targets may hand out the same id, so the
//! client sees each id with its target's name in front (`<target>.<id>`); `tasks/*` requests are routed
//! by that name and reach the target with its own id. Nothing is stored: the target keeps its tasks and
//! checks who asks for them, since each request carries the caller's credential for it.

use crate::metrics::CallOutcome;
use crate::protocol::{Era, jsonrpc, meta, tasks};
use crate::route::channel::{Channel, Sharing};
use crate::route::channel::{Outgoing, split_client_task_id};
use crate::route::failure;
use crate::route::message::{Caller, Inbound, Outcome};
use crate::route::refresh::Router;
use crate::route::relay::{self, EraBridge, Forward};
use serde_json::json;
use std::sync::Arc;
use tracing::Span;

/// Whether the client declared the tasks extension in this request's `_meta`.
fn declared(inbound: &Inbound) -> bool {
    inbound
        .message
        .meta_value(meta::CLIENT_CAPABILITIES)
        .as_ref()
        .and_then(|c| c.get("extensions"))
        .and_then(|e| e.get(tasks::EXTENSION))
        .is_some()
}

/// The method as a fixed label (the dispatcher only routes the tasks methods here).
fn label(name: &str) -> &'static str {
    tasks::METHODS
        .into_iter()
        .find(|known| *known == name)
        .unwrap_or("other")
}

/// Routes `tasks/get`, `tasks/update` or `tasks/cancel` to the target whose task it names.
pub async fn route(router: &Arc<Router>, inbound: Inbound) -> Outcome {
    let id = inbound.id();
    let Caller::Stateless(context) = &inbound.caller else {
        // Session-era clients speak the earlier tasks methods, which mcplex does not route.
        let name = inbound.message.method();
        return Outcome::error(
            id,
            jsonrpc::METHOD_NOT_FOUND,
            format!("method `{name}` is not supported by mcplex"),
        );
    };
    if !declared(&inbound) {
        let data = json!({ "requiredCapabilities": { "extensions": { tasks::EXTENSION: {} } } });
        let message = format!(
            "`{}` needs the {} extension, which this request did not declare",
            inbound.message.method(),
            tasks::EXTENSION
        );
        return Outcome::Message(jsonrpc::error_with_data(
            Some(id),
            jsonrpc::MISSING_CLIENT_CAPABILITY,
            message,
            data,
        ));
    }
    let Some(client_task) = inbound.message.param_str(tasks::TASK_ID) else {
        return Outcome::error(
            id,
            jsonrpc::INVALID_PARAMS,
            format!("params.{} is required", tasks::TASK_ID),
        );
    };
    let snapshot = router.snapshot();
    let Some((slot, upstream_task)) =
        split_client_task_id(&client_task).and_then(|(name, task)| Some((snapshot.slot(name)?, task)))
    else {
        return Outcome::error(id, jsonrpc::INVALID_PARAMS, format!("unknown task `{client_task}`"));
    };
    let target_name: Arc<str> = Arc::from(slot.name.as_str());
    let mut record = router.metrics.call(&target_name, label(inbound.message.method()), None);
    let Some(target) = slot.target.clone() else {
        let error = slot
            .state()
            .error
            .unwrap_or_else(|| format!("target `{}` is unavailable", slot.name));
        record.finish(CallOutcome::Unavailable);
        return Outcome::error(id, jsonrpc::TARGET_UNAVAILABLE, error);
    };
    let upstream_task = upstream_task.to_owned();
    // The channel carries the caller's credential for this target, as the call that created the task did.
    let channel = match Channel::open(&target, context, Sharing::Shared, inbound.acting.clone()).await {
        Ok(channel) => channel,
        Err(error) => {
            record.finish(CallOutcome::of_error(failure::client_code(&error)));
            return Outcome::Message(failure::error_answer(id, &error));
        }
    };
    // Task methods are rare next to calls: the request is rebuilt as a tree.
    let mut message = inbound.message.to_value();
    message["params"][tasks::TASK_ID] = json!(upstream_task);
    message["id"] = target.next_request_id();
    if let Some(trace) = &inbound.trace {
        trace.write_meta(&mut message);
    }
    let progress_token = message["params"]["_meta"].get(meta::PROGRESS_TOKEN).cloned();
    relay::forward(Forward {
        channel,
        message: Outgoing::Tree(message),
        client_id: id,
        era: Era::Modern,
        session: None,
        record,
        trace: inbound.trace,
        span: Span::none(),
        bridging: EraBridge::None,
        param_headers: Vec::new(),
        progress_token,
    })
    .await
}

/// Whether the dispatcher sends `name` here.
pub fn is_task_method(name: &str) -> bool {
    tasks::METHODS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tasks_method_has_its_label() {
        for name in tasks::METHODS {
            assert_eq!(label(name), name);
            assert!(is_task_method(name));
        }
        assert!(!is_task_method(crate::protocol::method::TOOLS_CALL));
    }
}
