//! Trace context: a client's `traceparent` (header or `_meta`) reaches the target, and with an OTLP
//! endpoint configured a real `mcplex run` exports one span per call, child of the client's span, whose
//! context is what the target receives. The OTLP receiver here decodes the official protobuf messages.

use crate::support::common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// What a target saw of the trace context: the header and `params._meta.traceparent`.
type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

/// A modern-era target with one tool, `who`, that records the trace context of every tools/call.
async fn recording_target() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let url = scripted_target(Arc::new(move |headers: &http::HeaderMap, message: &Value| {
        if message["method"] == "tools/call" {
            let header = headers.get("traceparent").map(|v| v.to_str().unwrap().to_owned());
            let in_meta = message["params"]["_meta"]["traceparent"].as_str().map(str::to_owned);
            recorder.lock().unwrap().push((header, in_meta));
        }
        Ok("ok".to_owned())
    }))
    .await;
    (url, seen)
}

/// An OTLP/HTTP trace receiver: decodes each export request and keeps its spans.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let kept = spans.clone();
    tokio::spawn(mcplex::serve::serve(
        listener,
        None,
        move |request: http::Request<hyper::body::Incoming>| {
            let kept = kept.clone();
            async move {
                assert_eq!(request.uri().path(), "/v1/traces");
                assert_eq!(request.headers()["content-type"], "application/x-protobuf");
                let body = http_body_util::BodyExt::collect(request.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                let export = ExportTraceServiceRequest::decode(body).expect("an OTLP export request");
                for resource in export.resource_spans {
                    for scope in resource.scope_spans {
                        kept.lock().unwrap().extend(scope.spans);
                    }
                }
                let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
                response
                    .headers_mut()
                    .insert("content-type", http::HeaderValue::from_static("application/x-protobuf"));
                response
            }
        },
        mcplex::serve::ServeLimits::default(),
        tokio_util::sync::CancellationToken::new(),
        Duration::from_secs(1),
    ));
    (format!("http://{addr}"), spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            other => Some(format!("{other:?}")),
        })
}

fn call(tool: &str, meta_trace: Option<&str>) -> String {
    let mut meta = modern_meta();
    if let Some(traceparent) = meta_trace {
        meta["traceparent"] = json!(traceparent);
    }
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "_meta": meta}}).to_string()
}

#[tokio::test]
async fn without_an_exporter_the_clients_context_reaches_the_target_unchanged() {
    let (url, seen) = recording_target().await;
    let harness = Harness::start(&config(&[("rec", &url, "")])).await;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let mut headers = modern_headers("tools/call", Some("rec_who"));
    headers.push(("traceparent", &traceparent));
    let (status, _, text) = post(&harness.url(), &headers, &call("rec_who", None)).await;
    assert_eq!(status, 200, "{text}");
    // Given in _meta only, it is also sent as the header.
    let (status, _, _) = post(
        &harness.url(),
        &modern_headers("tools/call", Some("rec_who")),
        &call("rec_who", Some(&traceparent)),
    )
    .await;
    assert_eq!(status, 200);
    let expected = (Some(traceparent.clone()), Some(traceparent.clone()));
    assert_eq!(*seen.lock().unwrap(), vec![expected.clone(), expected]);
}

#[tokio::test]
async fn with_an_otlp_endpoint_each_call_is_a_span_under_the_clients() {
    let (url, seen) = recording_target().await;
    let (endpoint, spans) = otlp_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config(&[("rec", &url, "")])).unwrap();
    let sidecar = SidecarProcess::start(
        &config_path,
        &["--log-level", "warn"],
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
        Stdio::null(),
    )
    .await;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let mut headers = modern_headers("tools/call", Some("rec_who"));
    headers.push(("traceparent", &traceparent));
    let (status, _, text) = post(&sidecar.url(), &headers, &call("rec_who", None)).await;
    assert_eq!(status, 200, "{text}");

    until("a span is exported", || async { !spans.lock().unwrap().is_empty() }).await;
    drop(sidecar);
    let spans = spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0];
    assert_eq!(hex(&span.trace_id), CLIENT_TRACE);
    assert_eq!(
        hex(&span.parent_span_id),
        CLIENT_SPAN,
        "the span is a child of the client's"
    );
    assert_eq!(span.name, "tools/call");
    assert_eq!(attribute(span, "mcplex.target").as_deref(), Some("rec"));
    assert_eq!(attribute(span, "gen_ai.tool.name").as_deref(), Some("rec_who"));
    assert_eq!(attribute(span, "mcplex.outcome").as_deref(), Some("ok"));
    // The target received mcplex's span as its parent, in the header and in _meta.
    let ours = format!("00-{CLIENT_TRACE}-{}-01", hex(&span.span_id));
    assert_eq!(*seen.lock().unwrap(), vec![(Some(ours.clone()), Some(ours))]);
}
