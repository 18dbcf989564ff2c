//! Result shapes that differ between eras: `resultType`, and modern-only results legacy clients cannot take.

use crate::downstream::respond::ClientEra;
use crate::jsonrpc;
use serde_json::{Value, json};

/// Rewrites a target's response for the client's era; `target` names the source in errors.
pub fn response_for(era: ClientEra, mut response: Value, target: &str) -> Value {
    let id = response.get("id").cloned();
    let Some(result) = response.get_mut("result").and_then(Value::as_object_mut) else {
        return response;
    };
    match era {
        ClientEra::Modern => {
            result.entry("resultType").or_insert_with(|| json!("complete"));
        }
        ClientEra::Legacy => match result.get("resultType").and_then(Value::as_str) {
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
    fn adds_and_strips_result_type() {
        let plain = json!({"jsonrpc":"2.0","id":1,"result":{"content":[]}});
        assert_eq!(
            response_for(ClientEra::Modern, plain.clone(), "t")["result"]["resultType"],
            "complete"
        );
        let modern = json!({"jsonrpc":"2.0","id":1,"result":{"content":[],"resultType":"complete"}});
        assert_eq!(response_for(ClientEra::Legacy, modern, "t"), plain);
        let mrtr = json!({"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required"}});
        assert!(
            response_for(ClientEra::Legacy, mrtr, "math")["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`math`")
        );
    }
}
