//! Property tests: nothing a client or a target sends (any JSON, any bytes, any cursor, any chunking
//! of an SSE stream) panics the parsers, and the parsers agree with themselves.

use crate::catalog::naming::Rules;
use crate::catalog::{ItemKind, Listed, Namer, TargetItems, cursor};
use crate::protocol::raw::RawMessage;
use crate::protocol::sse::{SseDecoder, SseError};
use crate::protocol::{ClientContext, Era, jsonrpc};
use crate::route::adapt;
use crate::telemetry::TraceContext;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Any JSON value, biased towards the keys JSON-RPC and MCP care about.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("jsonrpc".to_string()),
        Just("id".to_string()),
        Just("method".to_string()),
        Just("params".to_string()),
        Just("result".to_string()),
        Just("error".to_string()),
        Just("_meta".to_string()),
        Just("resultType".to_string()),
        Just("io.modelcontextprotocol/protocolVersion".to_string()),
        "[a-z]{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![Just("2.0".to_string()), Just("complete".to_string()), ".{0,8}"].prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A request with the members relaying touches: `params` with a name, a reference and a `_meta` of
/// MCP, trace and other keys, each present or not, beside any other members.
fn any_request() -> impl Strategy<Value = Value> {
    let meta_key = prop_oneof![
        Just("io.modelcontextprotocol/protocolVersion".to_string()),
        Just("io.modelcontextprotocol/clientInfo".to_string()),
        Just("io.modelcontextprotocol/clientCapabilities".to_string()),
        Just("io.modelcontextprotocol/other".to_string()),
        Just("traceparent".to_string()),
        Just("tracestate".to_string()),
        "[a-z]{0,4}",
    ];
    let meta = prop_oneof![
        prop::collection::vec((meta_key, any_json()), 0..6)
            .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        any_json(),
    ];
    let params_key = prop_oneof![
        Just("name".to_string()),
        Just("ref".to_string()),
        Just("arguments".to_string()),
        "[a-z]{0,4}",
    ];
    let params = prop_oneof![
        (
            prop::collection::vec((params_key, any_json()), 0..4),
            prop::option::of(meta)
        )
            .prop_map(|(entries, meta)| {
                let mut params: Map<String, Value> = entries.into_iter().collect();
                if let Some(meta) = meta {
                    params.insert("_meta".into(), meta);
                }
                Value::Object(params)
            }),
        any_json(),
    ];
    (prop::option::of(params), prop::option::of(any_json()), any::<bool>()).prop_map(|(params, extra, id_first)| {
        let mut request = Map::new();
        if id_first {
            request.insert("id".into(), json!(3));
        }
        request.insert("jsonrpc".into(), json!("2.0"));
        request.insert("method".into(), json!("tools/call"));
        if let Some(params) = params {
            request.insert("params".into(), params);
        }
        if let Some(extra) = extra {
            request.insert("x-extra".into(), extra);
        }
        request.insert("id".into(), json!(3));
        Value::Object(request)
    })
}

/// Writes `value` as JSON text with the whitespace `spaces` gives between tokens, each key with a
/// `\u` escape for its first letter when `escape` says so: the spellings a compact writer never makes.
fn spaced_json(value: &Value, spaces: &mut impl Iterator<Item = (&'static str, bool)>, out: &mut String) {
    fn space(spaces: &mut impl Iterator<Item = (&'static str, bool)>, out: &mut String) -> bool {
        let (text, escape) = spaces.next().unwrap_or(("", false));
        out.push_str(text);
        escape
    }
    match value {
        Value::Object(members) => {
            out.push('{');
            for (at, (key, member)) in members.iter().enumerate() {
                if at > 0 {
                    out.push(',');
                }
                let escape = space(spaces, out);
                match key.chars().next() {
                    Some(first) if escape => {
                        out.push_str(&format!("\"\\u{:04x}", first as u32));
                        out.push_str(&serde_json::to_string(&key[first.len_utf8()..]).unwrap_or_default()[1..]);
                    }
                    _ => out.push_str(&serde_json::to_string(key).unwrap_or_default()),
                }
                space(spaces, out);
                out.push(':');
                space(spaces, out);
                spaced_json(member, spaces, out);
                space(spaces, out);
            }
            space(spaces, out);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `value` with every float made an integer: an item given twice goes through a tree, and serde_json
/// may read a float back one unit in the last place away from the one it wrote.
fn without_floats(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => Value::from(n.as_f64().unwrap_or_default() as i64),
        Value::Array(items) => Value::Array(items.into_iter().map(without_floats).collect()),
        Value::Object(members) => Value::Object(members.into_iter().map(|(k, v)| (k, without_floats(v))).collect()),
        other => other,
    }
}

/// The members of an indexed object as a list of key and value, for comparing with a tree's.
fn members_of<'a>(members: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, Value)> {
    members
        .map(|(key, raw)| (key.to_owned(), serde_json::from_str(raw).unwrap_or(Value::Null)))
        .collect()
}

proptest! {
    #[test]
    fn the_envelope_parser_takes_any_json(value in any_json()) {
        let text = value.to_string();
        if let Ok(message) = jsonrpc::Message::parse(text.clone().into()) {
            let _ = (message.method(), message.id(), message.param_str("name"), message.meta_str("traceparent"));
            // What the index reads agrees with a tree of the same text (not with `value` itself: serde_json
            // may read a float back one unit in the last place away from the one it wrote).
            let tree: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(message.to_value(), tree.clone());
            let params = message.params_value();
            prop_assert_eq!(params.as_ref(), tree.get("params"));
        }
    }

    /// The one-pass index of the envelope, `params` and `params._meta` reads what a tree of the same
    /// text holds, whatever the whitespace, however keys are escaped, and when a member comes twice
    /// (first place, last value).
    #[test]
    fn the_envelope_index_agrees_with_a_tree_of_any_spelling(
        request in any_request(),
        spaces in prop::collection::vec((prop_oneof![Just(""), Just(" "), Just("\n\t "), Just("\r\n")], prop::bool::weighted(0.2)), 0..64),
        earlier in prop::option::of(prop_oneof![Just(r#""params":{"_meta":{"x":1},"name":"early"},"#), Just(r#""params":7,"#), Just(r#""_meta":{},"#)]),
    ) {
        let mut text = String::new();
        spaced_json(&request, &mut spaces.into_iter().cycle(), &mut text);
        if let Some(earlier) = earlier {
            text.insert_str(1, earlier);
        }
        let tree: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        let message = match jsonrpc::Message::parse(text.clone().into()) {
            Ok(message) => message,
            // Valid JSON that is not a valid request (`params` of another kind) is refused as such.
            Err(jsonrpc::Unreadable::Invalid(_)) if tree.get("params").is_some_and(|p| !p.is_object() && !p.is_array()) => return Ok(()),
            Err(error) => return Err(TestCaseError::fail(format!("{error}: {text}"))),
        };
        let object = |value: Option<&Value>| value.and_then(Value::as_object).map(|members| {
            members.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>()
        });
        prop_assert_eq!(Some(members_of(message.members())), object(Some(&tree)), "{}", text);
        let params = tree.get("params").filter(|p| p.is_object());
        prop_assert_eq!(message.params().map(members_of), object(params), "{}", text);
        prop_assert_eq!(message.meta().map(members_of), object(params.and_then(|p| p.get("_meta"))), "{}", text);
        let params_value = message.params_value();
        prop_assert_eq!(params_value.as_ref(), tree.get("params"));
    }

    /// A target's answer is rewritten as a tree would be: the client's id, `resultType` for the client's
    /// era, a task's id with its target in front, everything else as it came, whatever its spelling.
    #[test]
    fn a_response_is_rewritten_as_the_tree_path_would(
        result in prop::option::of(prop::collection::vec((prop_oneof![Just("resultType".to_string()), Just("taskId".to_string()), Just("isError".to_string()), Just("content".to_string()), "[a-z]{0,4}"], prop_oneof![Just(json!("complete")), Just(json!("input_required")), Just(json!(true)), Just(json!("t-1"))]), 0..5)),
        error in prop::option::of(any_json()),
        extra in prop::option::of(any_json()),
        spaces in prop::collection::vec((prop_oneof![Just(""), Just(" "), Just("\n ")], prop::bool::weighted(0.1)), 0..32),
        modern in any::<bool>(),
    ) {
        let mut response = Map::new();
        response.insert("jsonrpc".into(), json!("2.0"));
        response.insert("id".into(), json!(9));
        if let Some(result) = result {
            response.insert("result".into(), Value::Object(result.into_iter().collect()));
        }
        if let Some(error) = error {
            response.insert("error".into(), error);
        }
        if let Some(extra) = extra {
            response.insert("x-extra".into(), extra);
        }
        let mut text = String::new();
        spaced_json(&Value::Object(response), &mut spaces.into_iter().cycle(), &mut text);
        let tree: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let era = if modern { Era::Modern } else { Era::Legacy };
        let rewritten = adapt::rewrite_response(&RawMessage::new(text.clone()), &json!("client-1"), era, "t");
        let has_answer = tree.get("result").is_some() || tree.get("error").is_some();
        let mut expected = tree.clone();
        expected["id"] = json!("client-1");
        let mut refused = false;
        if let Some(result) = expected.get_mut("result").and_then(Value::as_object_mut) {
            match (era, result.get("resultType").cloned()) {
                (Era::Legacy, Some(Value::String(kind))) if kind != "complete" => refused = true,
                (Era::Legacy, _) => { result.shift_remove("resultType"); }
                (Era::Modern, Some(Value::String(_))) => {}
                (Era::Modern, _) => { result.insert("resultType".into(), json!("complete")); }
            }
            if let (Era::Modern, Some(Value::String(task))) = (era, result.get("taskId").cloned()) {
                result.insert("taskId".into(), json!(adapt::client_task_id("t", &task)));
            }
        }
        match rewritten {
            Ok(rewritten) => {
                prop_assert!(has_answer && !refused, "{}", text);
                let written: Value = serde_json::from_slice(&rewritten.json).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(written, expected, "{}", text);
                prop_assert_eq!(rewritten.tool_error, tree["result"]["isError"] == json!(true));
                prop_assert_eq!(rewritten.error_code, tree["error"]["code"].as_i64());
            }
            Err(adapt::AdaptError::NotResponse { .. }) => prop_assert!(!has_answer, "{}", text),
            Err(adapt::AdaptError::InputRequired { .. }) => prop_assert!(refused, "{}", text),
            Err(other) => prop_assert!(false, "{}: {}", other, text),
        }
    }

    /// The index accepts what serde_json reads into an object tree, and nothing serde_json refuses when it
    /// skips over values unread (which lets through a number out of range such as `1e999`): valid JSON,
    /// mangled a little.
    #[test]
    fn the_index_accepts_what_serde_json_accepts(
        value in any_json(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), prop_oneof![
            Just(""), Just("{"), Just("}"), Just("["), Just("]"), Just("\""), Just(","), Just(":"), Just("\\"),
            Just("\\u"), Just("\\ud800"), Just("\\udc00"), Just("\u{1}"), Just("\u{7f}"), Just("é"), Just("0"), Just("-"),
            Just("."), Just("e"), Just("1e999"), Just("tru"), Just("nul"), Just("NaN"), Just(" "), Just("\t"),
        ]), 0..3),
    ) {
        let mut text = Value::Object(Map::from_iter([("a".to_string(), value)])).to_string();
        for (at, insert) in edits {
            let mut at = at.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            // Half the edits replace the character there, half insert before it.
            if insert.len() % 2 == 0 && at < text.len() {
                let end = (at + 1..=text.len()).find(|&end| text.is_char_boundary(end)).unwrap_or(text.len());
                text.replace_range(at..end, insert);
            } else {
                text.insert_str(at, insert);
            }
        }
        let as_tree = serde_json::from_str::<Value>(&text).is_ok_and(|tree| tree.is_object());
        let skipped = serde_json::from_str::<crate::protocol::raw::RawObject<'_>>(&text).is_ok();
        let by_index = crate::protocol::raw::Members::index_path(&text, 0..text.len(), []).is_ok();
        prop_assert!(!as_tree || by_index, "the index refused what serde_json reads: {}", text);
        prop_assert!(!by_index || skipped, "the index took what serde_json refuses: {}", text);
    }

    #[test]
    fn the_envelope_parser_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = jsonrpc::Message::parse(bytes.into());
    }

    /// A relayed request written from its text is the request the tree path builds: same members, same
    /// values, for either era of target, with or without a trace context and a name to write back.
    #[test]
    fn a_relayed_request_is_written_as_the_tree_path_builds_it(
        request in any_request(),
        name in prop::option::of("[a-z]{0,6}"),
        name_in_ref in any::<bool>(),
        trace in prop::option::of(prop::option::of(Just("k=v"))),
        modern in any::<bool>(),
        spaces in prop::collection::vec((prop_oneof![Just(""), Just(""), Just(" "), Just("\n ")], prop::bool::weighted(0.05)), 0..32),
    ) {
        let mut text = String::new();
        spaced_json(&request, &mut spaces.into_iter().cycle(), &mut text);
        let Ok(message) = jsonrpc::Message::parse(text.into()) else {
            return Ok(());
        };
        let rewrite = adapt::Rewrite { id: json!("m-7"), name: name.map(Into::into), name_in_ref };
        let trace = trace.map(|state| {
            let mut headers = http::HeaderMap::new();
            headers.insert("traceparent", http::HeaderValue::from_static("00-11111111111111111111111111111111-2222222222222222-01"));
            if let Some(state) = state {
                headers.insert("tracestate", http::HeaderValue::from_static(state));
            }
            TraceContext::from_request(&headers, &message).unwrap_or_else(|| unreachable!())
        });
        let context = ClientContext::mcplex();
        let mut tree = adapt::Outgoing::Relayed(message.clone(), rewrite.clone()).to_tree(trace.as_ref());
        let era = if modern {
            adapt::add_modern_meta(&mut tree, &context);
            adapt::MetaFor::Modern(&context)
        } else {
            adapt::strip_modern_meta(&mut tree);
            adapt::MetaFor::Legacy
        };
        let written = adapt::write_request(&message, &rewrite, trace.as_ref(), era);
        let written: Value = serde_json::from_slice(&written).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(written, tree);
    }

    /// A target's list page is read from its text, and each item exposed by editing only its name, into
    /// what setting the name on a tree of the item gives: the same items, whatever their spelling and
    /// other members, and a name given twice written once.
    #[test]
    fn listed_items_are_exposed_as_the_tree_path_would(
        items in prop::collection::vec((prop_oneof![
            any_json(),
            (prop_oneof![Just("echo".to_string()), "[a-z_]{0,6}", ".{0,6}"], prop::collection::vec(("[a-z]{0,4}", any_json()), 0..4))
                .prop_map(|(name, members)| {
                    let mut item: Map<String, Value> = members.into_iter().collect();
                    item.insert("name".into(), json!(name));
                    Value::Object(item)
                }),
        ], prop::bool::weighted(0.3)), 0..6),
        spaces in prop::collection::vec((prop_oneof![Just(""), Just(" "), Just("\n ")], prop::bool::weighted(0.1)), 0..32),
    ) {
        let mut spaces = spaces.into_iter().cycle();
        let written: Vec<String> = items.iter().map(|(item, twice)| {
            let mut text = String::new();
            spaced_json(&without_floats(item.clone()), &mut spaces, &mut text);
            if *twice && item.get("name").is_some() {
                text.insert_str(1, r#""name":"shadowed","#);
            }
            text
        }).collect();
        let page = format!(r#"{{"tools":[{}]}}"#, written.join(","));
        let mut listed = Listed::default();
        listed.add_page(ItemKind::Tools, &page).map_err(|e| TestCaseError::fail(format!("{e}: {page}")))?;
        let namer = Namer::new("p", Rules::default());
        let exposed = TargetItems::expose("t", &namer, &namer, listed);
        let from_text: Vec<Value> = exposed.entries(ItemKind::Tools).iter()
            .map(|entry| serde_json::from_str(&entry.json).unwrap_or(Value::Null))
            .collect();
        let from_tree: Vec<Value> = written.iter()
            .filter_map(|text| {
                let mut item: Value = serde_json::from_str(text).ok()?;
                let name = namer.expose(item.get("name")?.as_str()?)?;
                item.as_object_mut()?.insert("name".into(), name.into());
                Some(item)
            })
            .collect();
        prop_assert_eq!(from_text, from_tree, "{}", page);
        // A parsed tree keeps one of two equal keys, so only the text shows that the other is gone.
        for entry in exposed.entries(ItemKind::Tools) {
            prop_assert!(!entry.json.contains("shadowed"), "{}", entry.json);
        }
    }

    #[test]
    fn era_adaptation_takes_any_message(value in any_json()) {
        let mut request = value.clone();
        adapt::add_modern_meta(&mut request, &ClientContext::mcplex());
        adapt::strip_modern_meta(&mut request);
        let raw = RawMessage::new(value.to_string());
        for era in [Era::Legacy, Era::Modern] {
            if let Ok(rewritten) = adapt::rewrite_response(&raw, &json!(1), era, "t") {
                prop_assert!(serde_json::from_slice::<Value>(&rewritten.json).is_ok());
            }
        }
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_errors(offset in any::<usize>(), text in ".{0,40}", size in any::<usize>(), len in 0usize..10_000) {
        prop_assert_eq!(cursor::decode(&cursor::encode(offset)), Ok(offset));
        if let Ok(decoded) = cursor::decode(&text) {
            prop_assert_eq!(cursor::encode(decoded), text);
        }
        let page = cursor::page(offset, size, len);
        prop_assert!(page.start <= page.end && page.end <= len);
    }

    #[test]
    fn sse_decoding_does_not_depend_on_chunking(
        events in prop::collection::vec("[ -~]{0,40}", 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        crlf in any::<bool>(),
    ) {
        let newline = if crlf { "\r\n" } else { "\n" };
        let text: String = events
            .iter()
            .map(|e| format!(": comment{newline}event: message{newline}data: {e}{newline}{newline}"))
            .collect();
        let bytes = text.as_bytes();
        let mut whole = Vec::new();
        SseDecoder::default().feed(bytes, &mut whole).unwrap();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut decoder = SseDecoder::default();
        let mut pieces = Vec::new();
        let mut start = 0;
        for point in points.into_iter().chain([bytes.len()]) {
            decoder.feed(&bytes[start..point], &mut pieces).unwrap();
            start = point;
        }
        prop_assert_eq!(&whole, &pieces);
        // Only the one space after `data:` is stripped, as the SSE rules say: payloads come back whole.
        prop_assert_eq!(whole, events);
    }

    #[test]
    fn the_sse_decoder_takes_any_bytes_within_its_limit(bytes in prop::collection::vec(any::<u8>(), 0..512), limit in 1usize..64) {
        let mut decoder = SseDecoder::with_limit(limit);
        let mut out = Vec::new();
        match decoder.feed(&bytes, &mut out) {
            Ok(()) | Err(SseError::NotUtf8) => {}
            Err(SseError::EventTooLarge) => {}
        }
        prop_assert!(out.iter().all(|event| event.len() <= limit));
    }
}

#[test]
fn a_response_survives_adaptation_unchanged_but_for_id_and_result_type() {
    let response =
        json!({"jsonrpc": "2.0", "id": 1, "result": {"x-extra": {"deep": [1, 2]}, "content": []}, "x-top": 1});
    let rewrite = |value: &Value, era| {
        let rewritten = adapt::rewrite_response(&RawMessage::new(value.to_string()), &json!(1), era, "t").unwrap();
        serde_json::from_slice::<Value>(&rewritten.json).unwrap()
    };
    let modern = rewrite(&response, Era::Modern);
    assert_eq!(modern["result"]["x-extra"], response["result"]["x-extra"]);
    assert_eq!(rewrite(&modern, Era::Legacy), response);
}
