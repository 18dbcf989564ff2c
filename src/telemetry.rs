//! Traces. A client's W3C trace context (`traceparent`, `tracestate`) arrives in the request's
//! `params._meta` (MCP SEP-414) or its HTTP headers. With tracing off (the default) mcplex passes it on to
//! the target unchanged, at the cost of a header lookup. With `OTEL_EXPORTER_OTLP_ENDPOINT` set, every routed
//! call gets a span (child of the client's context, with target, method and tool) exported over OTLP/HTTP,
//! and the target receives the span's own context, so its work nests under mcplex's hop.

use crate::protocol::{header, jsonrpc, meta};
use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use serde_json::{Map, Value};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The environment variable that turns export on (the OpenTelemetry SDK's standard name).
pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The `tracing` target of call spans; only the OpenTelemetry layer listens to it.
pub const SPAN_TARGET: &str = "mcplex::otel";

/// Why the OTLP exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot export traces to {ENDPOINT_ENV}: {0}")]
pub struct TelemetryError(#[from] opentelemetry_otlp::ExporterBuildError);

/// W3C trace context as it travels: header values, also written into `_meta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// `traceparent` (version-traceid-parentid-flags).
    pub traceparent: HeaderValue,
    /// `tracestate`, vendor entries.
    pub tracestate: Option<HeaderValue>,
}

impl TraceContext {
    /// The client's context: `params._meta` first (it belongs to the message), else the HTTP headers.
    pub fn from_request(headers: &HeaderMap, message: &jsonrpc::Message) -> Option<Self> {
        let from_meta = |key: &str| HeaderValue::from_str(&message.meta_str(key)?).ok();
        if let Some(traceparent) = from_meta(meta::TRACEPARENT) {
            return Some(Self {
                traceparent,
                tracestate: from_meta(meta::TRACESTATE),
            });
        }
        Some(Self {
            traceparent: headers.get(header::TRACEPARENT)?.clone(),
            tracestate: headers.get(header::TRACESTATE).cloned(),
        })
    }

    /// The trace id (32 hex digits), when `traceparent` is well formed.
    pub fn trace_id(&self) -> Option<String> {
        let id = self.traceparent.to_str().ok()?.split('-').nth(1)?;
        (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_owned())
    }

    /// Writes the context into a request's `params._meta` (replacing what the client put there).
    pub fn write_meta(&self, message: &mut Value) {
        let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) else {
            return;
        };
        let meta = params.entry("_meta").or_insert_with(|| Value::Object(Map::new()));
        let Some(meta) = meta.as_object_mut() else { return };
        let text = |v: &HeaderValue| Value::String(v.to_str().unwrap_or_default().to_owned());
        meta.insert(meta::TRACEPARENT.into(), text(&self.traceparent));
        match &self.tracestate {
            Some(state) => meta.insert(meta::TRACESTATE.into(), text(state)),
            None => meta.remove(meta::TRACESTATE),
        };
    }

    /// What [`TraceContext::write_meta`] writes: `traceparent`, and `tracestate` when there is one.
    pub fn meta_values(&self) -> (&str, Option<&str>) {
        fn text(value: &HeaderValue) -> &str {
            value.to_str().unwrap_or_default()
        }
        (text(&self.traceparent), self.tracestate.as_ref().map(text))
    }

    /// Adds the context to an upstream request's headers.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(header::TRACEPARENT, self.traceparent.clone());
        if let Some(state) = &self.tracestate {
            headers.insert(header::TRACESTATE, state.clone());
        }
    }
}

/// Reads a [`TraceContext`] for the propagator.
struct Carrier<'a>(Option<&'a TraceContext>);

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let context = self.0?;
        match key {
            "traceparent" => context.traceparent.to_str().ok(),
            "tracestate" => context.tracestate.as_ref()?.to_str().ok(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// Collects what the propagator writes.
#[derive(Default)]
struct Written {
    traceparent: Option<HeaderValue>,
    tracestate: Option<HeaderValue>,
}

impl Injector for Written {
    fn set(&mut self, key: &str, value: String) {
        let value = HeaderValue::from_str(&value).ok();
        match key {
            "traceparent" => self.traceparent = value,
            "tracestate" => self.tracestate = value.filter(|v| !v.is_empty()),
            _ => {}
        }
    }
}

/// The span of one routed call, child of the client's context.
pub fn call_span(method: &'static str, target: &str, tool: Option<&str>, client: Option<&TraceContext>) -> Span {
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "mcp.call",
        otel.name = method,
        otel.kind = "client",
        mcp.method.name = method,
        mcplex.target = target,
        gen_ai.tool.name = tool,
        mcplex.outcome = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&Carrier(client));
    // A client without (or with an unreadable) context starts a new trace here.
    let _ = span.set_parent(parent);
    span
}

/// The context a target receives for work done under `span`.
pub fn context_of(span: &Span) -> Option<TraceContext> {
    let mut written = Written::default();
    TraceContextPropagator::new().inject_context(&span.context(), &mut written);
    Some(TraceContext {
        traceparent: written.traceparent?,
        tracestate: written.tracestate,
    })
}

/// The OTLP exporter, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; dropping it does not flush, [`Exporter::shutdown`] does.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Builds the exporter from the standard `OTEL_*` variables, or `None` when the endpoint is unset.
    pub fn from_env() -> Result<Option<Self>, TelemetryError> {
        if std::env::var_os(ENDPOINT_ENV).is_none_or(|v| v.is_empty()) {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("mcplex")
            .build();
        // The batch exporter runs on a thread and runtime of its own (the sidecar's runtime has one
        // thread, which must never wait on the collector), and reuses the hyper client code mcplex has.
        let batch = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::TokioCurrentThread).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batch)
            .with_resource(resource)
            .build();
        Ok(Some(Self { provider }))
    }

    /// The `tracing` layer that turns call spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        use tracing_subscriber::Layer as _;
        let only_calls = tracing_subscriber::filter::Targets::new().with_target(SPAN_TARGET, tracing::Level::TRACE);
        // Only the attributes set on the span: no source location, thread, target or busy/idle timing,
        // which would cost time on every call and say nothing about the MCP hop.
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("mcplex"))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_level(false)
            .with_tracked_inactivity(false)
            .with_filter(only_calls)
    }

    /// Sends what is still buffered (bounded by the SDK's export timeout).
    pub fn shutdown(&self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "traces could not all be exported at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_wins_over_headers_and_is_written_back() {
        let parsed = |meta: serde_json::Value| {
            let body =
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"_meta": meta}});
            jsonrpc::Message::parse(body.to_string().into()).unwrap()
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::TRACEPARENT,
            HeaderValue::from_static("00-11111111111111111111111111111111-2222222222222222-01"),
        );
        let from_headers = TraceContext::from_request(&headers, &parsed(serde_json::json!({}))).unwrap();
        assert_eq!(from_headers.traceparent, headers[header::TRACEPARENT]);
        let meta = serde_json::json!({"traceparent": "00-33333333333333333333333333333333-4444444444444444-01", "tracestate": "k=v"});
        let from_meta = TraceContext::from_request(&headers, &parsed(meta.clone())).unwrap();
        assert!(from_meta.traceparent.to_str().unwrap().contains("3333"));
        let mut message =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}});
        from_meta.write_meta(&mut message);
        assert_eq!(message["params"]["_meta"], meta);
        assert_eq!(
            TraceContext::from_request(&HeaderMap::new(), &parsed(serde_json::json!({}))),
            None
        );
    }
}
