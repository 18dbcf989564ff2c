//! Era adaptation: what changes in a message when the client and the target speak different eras
//! (`_meta` added or stripped on requests, `resultType` added or removed on results).

use crate::protocol::{ClientContext, Era, MODERN_VERSION, jsonrpc, meta};
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

/// Rewrites a target's response for the client's era; `target` names the source in errors.
pub fn response_for(era: Era, mut response: Value, target: &str) -> Value {
    let id = response.get("id").cloned();
    let Some(result) = response.get_mut("result").and_then(Value::as_object_mut) else {
        return response;
    };
    match era {
        Era::Modern => {
            result.entry("resultType").or_insert_with(|| json!("complete"));
        }
        Era::Legacy => match result.get("resultType").and_then(Value::as_str) {
            Some("complete") => {
                result.remove("resultType");
            }
            Some(other) => {
                return jsonrpc::error(
                    id,
                    jsonrpc::INTERNAL_ERROR,
                    format!(
                        "target `{target}` answered with resultType `{other}` (it asks the client for input the 2026-07-28 way); carrying that to a session-era client is not supported yet"
                    ),
                );
            }
            None => {}
        },
    }
    response
}

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

    #[test]
    fn adds_and_strips_result_type() {
        let plain = json!({"jsonrpc":"2.0","id":1,"result":{"content":[]}});
        assert_eq!(
            response_for(Era::Modern, plain.clone(), "t")["result"]["resultType"],
            "complete"
        );
        let modern = json!({"jsonrpc":"2.0","id":1,"result":{"content":[],"resultType":"complete"}});
        assert_eq!(response_for(Era::Legacy, modern, "t"), plain);
        let mrtr = json!({"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required"}});
        assert!(
            response_for(Era::Legacy, mrtr, "math")["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`math`")
        );
    }
}
