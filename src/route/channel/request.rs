//! Era adaptation of a request: a client's message written for its target, with the target's names and
//! mcplex's upstream id, and `_meta` added or stripped as the target's era expects.

use crate::protocol::headers::{self, Routing};
use crate::protocol::raw::{self, ObjectEnd, ObjectWriter, RawObject, Splice};
pub use crate::protocol::strip_modern_meta;
use crate::protocol::{ClientContext, MODERN_VERSION, jsonrpc, meta};
use crate::telemetry::TraceContext;
use crate::upstream::Payload;
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::sync::Arc;

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

/// What changes in a client's request on its way to a target, besides its `_meta`.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// mcplex's id for the upstream request.
    pub id: Value,
    /// The target's own name for the item, when it differs from the one the client used.
    pub name: Option<Arc<str>>,
    /// The name sits in `params.ref` (`completion/complete`), not in `params`.
    pub name_in_ref: bool,
}

/// A request on its way to a target.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "relayed requests are the common case; boxing them would allocate once per call"
)]
pub enum Outgoing {
    /// A message mcplex built or changed as a tree.
    Tree(Value),
    /// A client's request, relayed from its text with a [`Rewrite`]: nothing else is parsed or rebuilt.
    Relayed(jsonrpc::Message, Rewrite),
}

impl Outgoing {
    /// The id the target sees.
    pub fn id(&self) -> Value {
        match self {
            Self::Tree(message) => message.get("id").cloned().unwrap_or(Value::Null),
            Self::Relayed(_, rewrite) => rewrite.id.clone(),
        }
    }

    /// True for requests and notifications (which carry `_meta`), false for responses.
    pub fn has_method(&self) -> bool {
        match self {
            Self::Tree(message) => message.get("method").is_some(),
            Self::Relayed(message, _) => !message.method().is_empty(),
        }
    }

    /// The message as a tree with its rewrite and the trace context applied, before era adaptation
    /// (what [`write_request`] writes as text, built the slow way; bridged calls keep it to retry).
    pub fn to_tree(&self, trace: Option<&TraceContext>) -> Value {
        let (message, rewrite) = match self {
            Self::Tree(message) => return message.clone(),
            Self::Relayed(message, rewrite) => (message, rewrite),
        };
        let mut tree = message.to_value();
        if let Some(name) = &rewrite.name {
            let holder = if rewrite.name_in_ref {
                tree.get_mut("params").and_then(|p| p.get_mut("ref"))
            } else {
                tree.get_mut("params")
            };
            if let Some(holder) = holder.and_then(Value::as_object_mut) {
                holder.insert("name".into(), json!(&**name));
            }
        }
        if let Some(object) = tree.as_object_mut() {
            object.insert("id".into(), rewrite.id.clone());
        }
        if let Some(trace) = trace {
            trace.write_meta(&mut tree);
        }
        tree
    }

    /// The message as it goes to a target of `era`: its `_meta` adapted (requests and notifications only,
    /// for trees), its text written, and for a 2026-07-28 target the `Mcp-Method`/`Mcp-Name` values.
    pub fn into_payload(self, trace: Option<&TraceContext>, era: MetaFor<'_>) -> Payload {
        let is_call = self.has_method();
        match self {
            Self::Tree(mut message) => {
                match era {
                    _ if !is_call => {}
                    MetaFor::Modern(context) => add_modern_meta(&mut message, context),
                    MetaFor::Legacy => strip_modern_meta(&mut message),
                }
                Payload::of(&message)
            }
            Self::Relayed(message, rewrite) => {
                let routing = match era {
                    MetaFor::Modern(_) => routing_of(&message, &rewrite),
                    MetaFor::Legacy => Routing::default(),
                };
                Payload {
                    body: write_request(&message, &rewrite, trace, era).into(),
                    routing,
                }
            }
        }
    }
}

/// The routing headers of a relayed request: `Mcp-Name` mirrors the name the target will read, which is
/// the rewritten one when mcplex writes it back into `params.name`.
fn routing_of(message: &jsonrpc::Message, rewrite: &Rewrite) -> Routing {
    let method = message.method();
    let name = match headers::name_field(method) {
        Some("name") if !rewrite.name_in_ref && rewrite.name.is_some() => rewrite.name.as_deref().map(Cow::Borrowed),
        Some(field) => message.param_str(field),
        None => None,
    };
    Routing::new(method, name.as_deref())
}

/// The `_meta` a target of `era` needs: a 2026-07-28 target gets the client context added (what the
/// client sent wins, except the version), a session-era one loses the 2026-07-28 keys.
#[derive(Clone, Copy)]
pub enum MetaFor<'a> {
    /// For a 2026-07-28 target, on behalf of this client.
    Modern(&'a ClientContext),
    /// For a session-era target.
    Legacy,
}

/// Writes a client's request for a target: the client's text with mcplex's id, the target's name for
/// the item, the trace context and the `_meta` of the target's era spliced in; every other member is
/// copied as it came. The result is what [`Outgoing::to_tree`] followed by [`add_modern_meta`] or
/// [`strip_modern_meta`] would serialize, member order included (a property test holds them equal).
pub fn write_request(
    message: &jsonrpc::Message,
    rewrite: &Rewrite,
    trace: Option<&TraceContext>,
    era: MetaFor<'_>,
) -> Vec<u8> {
    if let Some(spliced) = splice_request(message, rewrite, trace, era) {
        return spliced;
    }
    let mut out = Vec::with_capacity(message.text().len() + 160);
    let mut writer = ObjectWriter::start(&mut out);
    let mut has_params = false;
    for (key, raw) in message.members() {
        match key {
            "id" => writer.value("id", &rewrite.id),
            "params" => {
                has_params = true;
                if raw.starts_with('{') {
                    write_params(writer.key("params"), message, rewrite, trace, era);
                } else {
                    writer.raw(key, raw);
                }
            }
            _ => writer.raw(key, raw),
        }
    }
    if message.id().is_none() {
        writer.value("id", &rewrite.id);
    }
    // A 2026-07-28 target needs `_meta` even when the client sent no params.
    if let (false, MetaFor::Modern(context)) = (has_params, era) {
        let mut params = ObjectWriter::start(writer.key("params"));
        write_meta(params.key("_meta"), std::iter::empty(), None, Some(context));
        params.finish();
    }
    writer.finish();
    out
}

/// The common request written by editing its text in place: the id, the name and the `_meta` values
/// mcplex changes are replaced and the members it adds are inserted, with no walk over the members. `None`
/// when a member must be removed or rebuilt (2026-07-28 keys for a session-era target, a completion's
/// reference, a trace state the client sent and the trace drops), when a key came twice, or when a
/// 2026-07-28 target needs a `params` the client did not send; [`write_request`] writes those.
fn splice_request(
    message: &jsonrpc::Message,
    rewrite: &Rewrite,
    trace: Option<&TraceContext>,
    era: MetaFor<'_>,
) -> Option<Vec<u8>> {
    if message.has_repeats() || (rewrite.name_in_ref && rewrite.name.is_some()) {
        return None;
    }
    let context = match era {
        MetaFor::Modern(context) => Some(context),
        MetaFor::Legacy => None,
    };
    let mut splice = Splice::new(message.text());
    splice.replace(message.range("id")?, |out| {
        let _ = serde_json::to_writer(out, &rewrite.id);
    });
    let Some(params_empty) = message.params_empty() else {
        // `params` that is not an object is copied as it came; a 2026-07-28 target needs one for `_meta`.
        return (message.range("params").is_some() || context.is_none()).then(|| splice.finish());
    };
    let mut params = ObjectEnd::of(&message.range("params")?, params_empty);
    if let Some(name) = rewrite.name.as_deref() {
        match message.param_range("name") {
            Some(range) => splice.replace(range, |out| raw::write_string(out, name)),
            None => splice.insert_member(&mut params, "name", |out| raw::write_string(out, name)),
        }
    }
    let Some(meta_empty) = message.meta_empty() else {
        // A `_meta` that is not an object is copied as it came; none at all gets one when it carries something.
        if message.param_range("_meta").is_none() && (trace.is_some() || context.is_some()) {
            splice.insert_member(&mut params, "_meta", |out| {
                write_meta(out, std::iter::empty(), trace, context)
            });
        }
        return Some(splice.finish());
    };
    if context.is_none() {
        let reserved = message
            .meta()
            .into_iter()
            .flatten()
            .any(|(key, _)| key.starts_with(meta::RESERVED_PREFIX));
        // Removing keys (or the whole `_meta` when nothing in it is for the target) is for the writer.
        if reserved || (meta_empty && trace.is_none()) {
            return None;
        }
    }
    let mut meta_end = ObjectEnd::of(&message.param_range("_meta")?, meta_empty);
    if let Some(trace) = trace {
        let (parent, state) = trace.meta_values();
        match message.meta_range(meta::TRACEPARENT) {
            Some(range) => splice.replace(range, |out| raw::write_string(out, parent)),
            None => splice.insert_member(&mut meta_end, meta::TRACEPARENT, |out| raw::write_string(out, parent)),
        }
        match (message.meta_range(meta::TRACESTATE), state) {
            (Some(range), Some(state)) => splice.replace(range, |out| raw::write_string(out, state)),
            (Some(_), None) => return None,
            (None, Some(state)) => {
                splice.insert_member(&mut meta_end, meta::TRACESTATE, |out| raw::write_string(out, state))
            }
            (None, None) => {}
        }
    }
    if let Some(context) = context {
        match message.meta_range(meta::PROTOCOL_VERSION) {
            // Already the version a 2026-07-28 client writes: nothing to change.
            Some(_) if message.meta_str(meta::PROTOCOL_VERSION).as_deref() == Some(MODERN_VERSION) => {}
            Some(range) => splice.replace(range, |out| raw::write_string(out, MODERN_VERSION)),
            None => splice.insert_member(&mut meta_end, meta::PROTOCOL_VERSION, |out| {
                raw::write_string(out, MODERN_VERSION)
            }),
        }
        if message.meta_range(meta::CLIENT_INFO).is_none() {
            splice.insert_member(&mut meta_end, meta::CLIENT_INFO, |out| {
                out.extend_from_slice(context.client_info_json().as_bytes())
            });
        }
        if message.meta_range(meta::CLIENT_CAPABILITIES).is_none() {
            splice.insert_member(&mut meta_end, meta::CLIENT_CAPABILITIES, |out| {
                out.extend_from_slice(context.capabilities_json().as_bytes())
            });
        }
    }
    Some(splice.finish())
}

fn write_params(
    out: &mut Vec<u8>,
    message: &jsonrpc::Message,
    rewrite: &Rewrite,
    trace: Option<&TraceContext>,
    era: MetaFor<'_>,
) {
    let context = match era {
        MetaFor::Modern(context) => Some(context),
        MetaFor::Legacy => None,
    };
    let name = rewrite.name.as_deref();
    let mut name_written = false;
    let mut writer = ObjectWriter::start(out);
    for (key, raw) in message.params().into_iter().flatten() {
        match key {
            "name" if !rewrite.name_in_ref && name.is_some() => {
                name_written = true;
                writer.string(key, name.unwrap_or_default());
            }
            "ref" if rewrite.name_in_ref && name.is_some() => write_reference(writer.key(key), raw, name),
            "_meta" if raw.starts_with('{') => {
                // A session-era target gets no `_meta` at all when nothing in it is for it.
                let keeps_some = context.is_some()
                    || trace.is_some()
                    || message
                        .meta()
                        .into_iter()
                        .flatten()
                        .any(|(key, _)| !key.starts_with(meta::RESERVED_PREFIX));
                if keeps_some {
                    write_meta(writer.key(key), message.meta().into_iter().flatten(), trace, context);
                }
            }
            _ => writer.raw(key, raw),
        }
    }
    if let Some(name) = name.filter(|_| !rewrite.name_in_ref && !name_written) {
        writer.string("name", name);
    }
    if message.param_raw("_meta").is_none() && (trace.is_some() || context.is_some()) {
        write_meta(writer.key("_meta"), std::iter::empty(), trace, context);
    }
    writer.finish();
}

/// Writes a completion's `ref` with the target's name in it; its other members are copied as they came (a
/// tree would spell numbers its own way), and a `ref` that is not an object is copied whole.
fn write_reference(out: &mut Vec<u8>, raw: &str, name: Option<&str>) {
    let Ok(reference) = serde_json::from_str::<RawObject<'_>>(raw) else {
        out.extend_from_slice(raw.as_bytes());
        return;
    };
    let mut writer = ObjectWriter::start(out);
    let mut name_written = false;
    for (key, value) in reference.members() {
        match key {
            // A name given twice is written once, where the first one was.
            "name" if name_written => {}
            "name" => {
                name_written = true;
                writer.value(key, &name);
            }
            _ => writer.raw(key, value.get()),
        }
    }
    if !name_written {
        writer.value("name", &name);
    }
    writer.finish();
}

/// Writes `_meta`: the client's members (`client`, when it sent some) with the trace context and the
/// version replaced in place and, for a session-era target (no `context`), the 2026-07-28 keys left
/// out; then what it lacked: the trace context, and for a 2026-07-28 target the client context.
fn write_meta<'a>(
    out: &mut Vec<u8>,
    client: impl Iterator<Item = (&'a str, &'a str)>,
    trace: Option<&TraceContext>,
    context: Option<&ClientContext>,
) {
    let mut writer = ObjectWriter::start(out);
    let (traceparent, tracestate) = trace.map(TraceContext::meta_values).unzip();
    let tracestate = tracestate.flatten();
    let (mut has_parent, mut has_state, mut has_version, mut has_info, mut has_capabilities) =
        (false, false, false, false, false);
    for (key, raw) in client {
        match key {
            meta::TRACEPARENT if trace.is_some() => {
                has_parent = true;
                writer.string(key, traceparent.unwrap_or_default());
            }
            meta::TRACESTATE if trace.is_some() => {
                has_state = true;
                if let Some(state) = tracestate {
                    writer.string(key, state);
                }
            }
            _ if context.is_none() && key.starts_with(meta::RESERVED_PREFIX) => {}
            meta::PROTOCOL_VERSION => {
                has_version = true;
                writer.string(key, MODERN_VERSION);
            }
            _ => {
                has_info |= key == meta::CLIENT_INFO;
                has_capabilities |= key == meta::CLIENT_CAPABILITIES;
                writer.raw(key, raw);
            }
        }
    }
    if let Some(parent) = traceparent.filter(|_| !has_parent) {
        writer.string(meta::TRACEPARENT, parent);
    }
    if let Some(state) = tracestate.filter(|_| !has_state) {
        writer.string(meta::TRACESTATE, state);
    }
    if let Some(context) = context {
        if !has_version {
            writer.string(meta::PROTOCOL_VERSION, MODERN_VERSION);
        }
        if !has_info {
            writer.raw(meta::CLIENT_INFO, context.client_info_json());
        }
        if !has_capabilities {
            writer.raw(meta::CLIENT_CAPABILITIES, context.capabilities_json());
        }
    }
    writer.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's text travels as it came: members keep their place and their spelling, and only the
    /// id, the name and `_meta` change.
    #[test]
    fn a_relayed_request_keeps_its_text_but_for_what_mcplex_rewrites() {
        let text = r#"{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"t0_add","arguments":{"x": 1.50},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","k":"v"}},"x-extra":[1, 2]}"#;
        let message = jsonrpc::Message::parse(text.into()).unwrap();
        let rewrite = Rewrite {
            id: json!(9),
            name: Some("add".into()),
            name_in_ref: false,
        };
        let context = ClientContext::mcplex();
        let modern = write_request(&message, &rewrite, None, MetaFor::Modern(&context));
        let modern = std::str::from_utf8(&modern).unwrap();
        assert!(
            modern.starts_with(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"add","arguments":{"x": 1.50},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","k":"v","#),
            "{modern}"
        );
        assert!(modern.ends_with(r#""x-extra":[1, 2]}"#), "{modern}");
        let legacy = write_request(&message, &rewrite, None, MetaFor::Legacy);
        assert_eq!(
            std::str::from_utf8(&legacy).unwrap(),
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"add","arguments":{"x": 1.50},"_meta":{"k":"v"}},"x-extra":[1, 2]}"#
        );
    }

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
}
