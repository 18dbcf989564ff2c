//! Era adaptation of a target's answer: the client's own id, `resultType` added or removed as the client's
//! era expects, and a task's id with its target's name in front.

use crate::protocol::raw::{self, Members, ObjectEnd, ObjectWriter, RawMessage, Splice};
use crate::protocol::{self, Era, tasks};
use crate::route::channel::client_task_id;
use bytes::Bytes;
use serde_json::Value;

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
    let text = raw.text().map_err(not_json)?;
    // The envelope and the result in one pass (a large result is read once).
    let (top, [result]) = Members::index_path(text, 0..text.len(), ["result"]).map_err(not_json)?;
    if !top.has(text, "result") && !top.has(text, "error") {
        return Err(AdaptError::NotResponse {
            target: target.to_owned(),
        });
    }
    let result = result.as_ref();
    let result_type = result
        .and_then(|result| result.get(text, protocol::result_type::KEY))
        .map(raw::string);
    if era == Era::Legacy
        && let Some(Some(other)) = result_type
            .as_ref()
            .filter(|kind| kind.as_deref() != Some(protocol::result_type::COMPLETE))
    {
        return Err(AdaptError::InputRequired {
            target: target.to_owned(),
            result_type: other.to_string(),
        });
    }
    let edits = Edits {
        text,
        top: &top,
        result,
        has_result_type: result_type.is_some(),
        result_type_is_text: result_type.as_ref().is_some_and(Option::is_some),
        client_id,
        era,
        target,
    };
    let json = splice_response(&edits).unwrap_or_else(|| write_response(&edits));
    Ok(Rewritten {
        json: Bytes::from(json),
        error_code: top.get(text, "error").and_then(error_code),
        tool_error: result.is_some_and(|result| result.get(text, "isError") == Some("true")),
    })
}

/// What rewriting one answer needs to know, read once by [`rewrite_response`].
struct Edits<'a> {
    text: &'a str,
    top: &'a Members,
    result: Option<&'a Members>,
    /// The result has a `resultType` member.
    has_result_type: bool,
    /// That `resultType` is a string.
    result_type_is_text: bool,
    client_id: &'a Value,
    era: Era,
    target: &'a str,
}

/// The `code` of a JSON-RPC error object given as text.
fn error_code(error: &str) -> Option<i64> {
    serde_json::from_str::<Value>(error).ok()?.get("code")?.as_i64()
}

/// The common answer written by editing its text in place: the client's id replaces the target's, and a
/// 2026-07-28 client's result gets its `resultType` and its task's id with the target in front. `None`
/// when the answer needs a member removed or rebuilt (`resultType` for a session-era client, a result type
/// that is not a string, a key given twice, no id); [`write_response`] writes those member by member.
fn splice_response(edits: &Edits<'_>) -> Option<Vec<u8>> {
    let Edits {
        text, top, result, era, ..
    } = *edits;
    if top.has_repeats() || result.is_some_and(Members::has_repeats) {
        return None;
    }
    let mut splice = Splice::new(text);
    splice.replace(top.range_of(text, "id")?, |out| {
        let _ = serde_json::to_writer(out, edits.client_id);
    });
    if let (Some(result), Some(at)) = (result, top.range_of(text, "result")) {
        match (era, edits.has_result_type, edits.result_type_is_text) {
            (Era::Legacy, false, _) | (Era::Modern, true, true) => {}
            (Era::Legacy, true, _) | (Era::Modern, true, false) => return None,
            (Era::Modern, false, _) => splice.insert_member(
                &mut ObjectEnd::of(&at, result.is_empty()),
                protocol::result_type::KEY,
                |out| raw::write_string(out, protocol::result_type::COMPLETE),
            ),
        }
        if era == Era::Modern
            && let Some(range) = result.range_of(text, tasks::TASK_ID)
            && let Some(task) = text.get(range.clone()).and_then(raw::string)
        {
            let client_task = client_task_id(edits.target, &task);
            splice.replace(range, |out| raw::write_string(out, &client_task));
        }
    }
    Some(splice.finish())
}

/// An answer written member by member: the client's id, and a result with its `resultType` adapted.
fn write_response(edits: &Edits<'_>) -> Vec<u8> {
    let Edits { text, top, .. } = *edits;
    let mut out = Vec::with_capacity(text.len() + 32);
    let mut writer = ObjectWriter::start(&mut out);
    for (key, value) in top.iter(text) {
        match (key, edits.result) {
            ("id", _) => writer.value("id", edits.client_id),
            ("result", Some(result)) => write_result(writer.key("result"), result, edits),
            _ => writer.raw(key, value),
        }
    }
    if !top.has(text, "id") {
        writer.value("id", edits.client_id);
    }
    writer.finish();
    out
}

/// Writes an object result with its `resultType` adapted to the client's era and a task's id prefixed.
fn write_result(out: &mut Vec<u8>, members: &Members, edits: &Edits<'_>) {
    let Edits { text, era, .. } = *edits;
    let mut writer = ObjectWriter::start(out);
    for (key, value) in members.iter(text) {
        // A session-era client gets no `resultType`; a 2026-07-28 one gets a string, written below when the
        // target's is not one (copying it too would send the key twice).
        if key == protocol::result_type::KEY && (era == Era::Legacy || !edits.result_type_is_text) {
            continue;
        }
        // A task's id is unique only at its target: the client sees it with the target's name in front.
        if key == tasks::TASK_ID
            && era == Era::Modern
            && let Some(task) = raw::string(value)
        {
            writer.string(key, &client_task_id(edits.target, &task));
            continue;
        }
        writer.raw(key, value);
    }
    if era == Era::Modern && !edits.result_type_is_text {
        writer.string(protocol::result_type::KEY, protocol::result_type::COMPLETE);
    }
    writer.finish();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
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
    fn a_result_type_that_is_not_text_is_replaced_not_repeated() {
        let lying = r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":5,"content":[]}}"#;
        let rewritten = rewrite_response(&RawMessage::new(lying), &json!(1), Era::Modern, "math").unwrap();
        let text = std::str::from_utf8(&rewritten.json).unwrap();
        assert_eq!(text.matches("resultType").count(), 1, "{text}");
        assert_eq!(rewrite(Era::Modern, lying).unwrap()["result"]["resultType"], "complete");
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
