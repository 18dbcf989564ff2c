//! Era adaptation: what changes in a message when the client and the target speak different eras
//! (`_meta` added or stripped on requests, `resultType` added or removed on results).

use crate::protocol::raw::{ObjectWriter, RawMessage, RawObject};
use crate::protocol::{ClientContext, Era, MODERN_VERSION, meta, tasks};
use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

fn meta_of(message: &mut Value) -> Option<&mut Map<String, Value>> {
    let params = message.as_object_mut()?.entry("params").or_insert_with(|| json!({}));
    params
        .as_object_mut()?
        .entry("_meta")
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

/// Adds the per-request client context a modern target requires, keeping what the client sent.
pub fn add_modern_meta(message: &mut Value, context: &ClientContext) {
    let Some(meta) = meta_of(message) else { return };
    meta.insert(meta::PROTOCOL_VERSION.into(), json!(MODERN_VERSION));
    meta.entry(meta::CLIENT_INFO)
        .or_insert_with(|| context.client_info.clone());
    meta.entry(meta::CLIENT_CAPABILITIES)
        .or_insert_with(|| context.capabilities.clone());
}

/// Removes modern-only `_meta` keys before a message reaches a legacy target.
pub fn strip_modern_meta(message: &mut Value) {
    let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else {
        return;
    };
    meta.retain(|key, _| !key.starts_with(meta::RESERVED_PREFIX));
    if meta.is_empty() {
        params.remove("_meta");
    }
}

/// Why a target's response could not be given to the client.
#[derive(Debug, thiserror::Error)]
pub enum AdaptError {
    /// The response is not a JSON object (or a member of it is broken).
    #[error("target `{target}` sent an invalid answer: {source}")]
    NotJson {
        /// The target.
        target: String,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// The message is a JSON object but neither a result nor an error.
    #[error("target `{target}` sent an invalid answer: the JSON answer has neither `result` nor `error`")]
    NotResponse {
        /// The target.
        target: String,
    },
    /// A 2026-07-28 target asks a session-era client for input the 2026-07-28 way.
    #[error(
        "target `{target}` answered with resultType `{result_type}`, which a session-era client cannot read and mcplex could not bridge for this call"
    )]
    InputRequired {
        /// The target.
        target: String,
        /// The result type it sent.
        result_type: String,
    },
}

/// A target's response rewritten for the client.
pub struct Rewritten {
    /// The message text.
    pub json: Bytes,
    /// The JSON-RPC error code, when the response is an error.
    pub error_code: Option<i64>,
    /// The result says `isError: true` (a tool that ran and failed).
    pub tool_error: bool,
}

/// Rewrites a target's response for the client: the client's own id, `resultType` as the client's era
/// expects, and a task's id with the target's name in front. Members are copied as raw text, so a large result is held twice at most (in and out).
pub fn rewrite_response(raw: &RawMessage, client_id: &Value, era: Era, target: &str) -> Result<Rewritten, AdaptError> {
    let not_json = |source| AdaptError::NotJson {
        target: target.to_owned(),
        source,
    };
    let object = raw.object().map_err(not_json)?;
    if !object.has("result") && !object.has("error") {
        return Err(AdaptError::NotResponse {
            target: target.to_owned(),
        });
    }
    let mut out = Vec::with_capacity(raw.bytes().len() + 32);
    let mut writer = ObjectWriter::start(&mut out);
    let mut error_code = None;
    let mut tool_error = false;
    for (key, value) in object.members() {
        match key {
            "id" => writer.value("id", client_id),
            "result" => tool_error = write_result(writer.key("result"), value, era, target)?,
            "error" => {
                error_code = serde_json::from_str::<Value>(value.get())
                    .ok()
                    .and_then(|e| e.get("code")?.as_i64());
                writer.raw(key, value.get());
            }
            _ => writer.raw(key, value.get()),
        }
    }
    if !object.has("id") {
        writer.value("id", client_id);
    }
    writer.finish();
    Ok(Rewritten {
        json: Bytes::from(out),
        error_code,
        tool_error,
    })
}

/// Writes a result with its `resultType` adapted; true when it carries `isError: true`.
fn write_result(out: &mut Vec<u8>, result: &RawValue, era: Era, target: &str) -> Result<bool, AdaptError> {
    if !result.get().trim_start().starts_with('{') {
        out.extend_from_slice(result.get().as_bytes());
        return Ok(false);
    }
    let object: RawObject<'_> = serde_json::from_str(result.get()).map_err(|source| AdaptError::NotJson {
        target: target.to_owned(),
        source,
    })?;
    let result_type = object.str("resultType");
    if era == Era::Legacy
        && let Some(other) = result_type.as_deref().filter(|t| *t != RESULT_COMPLETE)
    {
        return Err(AdaptError::InputRequired {
            target: target.to_owned(),
            result_type: other.to_owned(),
        });
    }
    let mut writer = ObjectWriter::start(out);
    for (key, value) in object.members() {
        if key == "resultType" && era == Era::Legacy {
            continue;
        }
        // A task's id is unique only at its target: the client sees it with the target's name in front.
        if key == tasks::TASK_ID
            && era == Era::Modern
            && let Ok(task) = serde_json::from_str::<String>(value.get())
        {
            writer.value(key, &crate::route::tasks::client_task_id(target, &task));
            continue;
        }
        writer.raw(key, value.get());
    }
    if era == Era::Modern && result_type.is_none() {
        writer.value("resultType", &RESULT_COMPLETE);
    }
    writer.finish();
    Ok(object.get("isError").is_some_and(|flag| flag.get() == "true"))
}

/// The `resultType` of a final result.
pub const RESULT_COMPLETE: &str = "complete";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_is_added_for_modern_and_stripped_for_legacy() {
        let mut message = json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"progressToken":5}}});
        add_modern_meta(&mut message, &ClientContext::mcplex());
        assert_eq!(message["params"]["_meta"][meta::PROTOCOL_VERSION], MODERN_VERSION);
        assert_eq!(message["params"]["_meta"][meta::CLIENT_INFO]["name"], "mcplex");
        strip_modern_meta(&mut message);
        assert_eq!(message["params"], json!({"_meta":{"progressToken":5}}));
        let mut bare =
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{meta::PROTOCOL_VERSION: "x"}}});
        strip_modern_meta(&mut bare);
        assert_eq!(bare["params"], json!({}));
        // Params that are not an object are left alone rather than panicking.
        let mut odd = json!({"jsonrpc":"2.0","id":1,"method":"x","params":[1]});
        add_modern_meta(&mut odd, &ClientContext::mcplex());
        strip_modern_meta(&mut odd);
        assert_eq!(odd["params"], json!([1]));
    }

    fn rewrite(era: Era, json: &str) -> Result<Value, AdaptError> {
        rewrite_response(&RawMessage::new(json.to_owned()), &json!("client-7"), era, "math")
            .map(|r| serde_json::from_slice(&r.json).unwrap())
    }

    #[test]
    fn adds_and_strips_result_type_and_writes_the_client_id() {
        let plain = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"x":{"y":1}}}"#;
        let modern = rewrite(Era::Modern, plain).unwrap();
        assert_eq!(modern["id"], "client-7");
        assert_eq!(modern["result"]["resultType"], "complete");
        assert_eq!(modern["result"]["x"]["y"], 1);
        let back = rewrite(Era::Legacy, &modern.to_string()).unwrap();
        assert_eq!(
            back,
            json!({"jsonrpc":"2.0","id":"client-7","result":{"content":[],"x":{"y":1}}})
        );
        let error = rewrite_response(
            &RawMessage::new(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#),
            &json!(1),
            Era::Modern,
            "math",
        )
        .unwrap();
        assert_eq!(error.error_code, Some(-32601));
        assert!(!error.tool_error);
        let failed = rewrite_response(
            &RawMessage::new(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError": true}}"#),
            &json!(1),
            Era::Modern,
            "math",
        )
        .unwrap();
        assert!(failed.tool_error && failed.error_code.is_none());
        let mrtr = r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required"}}"#;
        assert!(rewrite(Era::Legacy, mrtr).unwrap_err().to_string().contains("`math`"));
        assert!(rewrite(Era::Modern, "[1]").is_err());
    }

    #[test]
    fn a_task_id_carries_its_target_for_modern_clients() {
        let created = r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"t-1","status":"working"}}"#;
        let modern = rewrite(Era::Modern, created).unwrap();
        assert_eq!(modern["result"]["taskId"], "math.t-1");
        assert_eq!(modern["result"]["status"], "working");
        // Ids inside the result (an inlined tool result) are the target's business.
        let detailed = r#"{"jsonrpc":"2.0","id":1,"result":{"taskId":"t-1","result":{"taskId":"x"}}}"#;
        let modern = rewrite(Era::Modern, detailed).unwrap();
        assert_eq!(modern["result"]["taskId"], "math.t-1");
        assert_eq!(modern["result"]["result"]["taskId"], "x");
    }
}
