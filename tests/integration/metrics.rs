//! `/metrics` of a real `mcplex run` after real calls: requests by target, method and outcome, latency,
//! in-flight, upstream errors, config reloads, and the opt-in per-tool series with its cap.

use crate::support::common::*;
use mcplex_examples::Example;
use mcplex_examples::everything::Versions;
use serde_json::json;

fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// The value of the series whose name and labels start with `series` (0 when absent).
fn value(page: &str, series: &str) -> f64 {
    page.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn calls_errors_and_reloads_are_counted_by_a_real_sidecar() {
    let everything = everything(Versions::All).await;
    let math = example(Example::Math).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.yaml");
    let yaml = config(&[("e", &everything.url(), ""), ("math", &math.url(), "")]);
    std::fs::write(&config_path, &yaml).unwrap();
    let sidecar = SidecarProcess::start(
        &config_path,
        &[],
        &["--metrics-tool-names", "2"],
        &[],
        std::process::Stdio::null(),
    )
    .await;
    let admin = sidecar.admin.clone();
    let url = sidecar.url();
    let call = |tool: &'static str, arguments: serde_json::Value| {
        let url = url.clone();
        async move {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments, "_meta": modern_meta()}}).to_string();
            let (status, _, text) = post(&url, &modern_headers("tools/call", Some(tool)), &body).await;
            assert_eq!(status, 200, "{text}");
            text
        }
    };
    for _ in 0..3 {
        call("e_test_simple_text", json!({})).await;
    }
    let failed = call("e_test_error_handling", json!({})).await;
    assert!(failed.contains("\"isError\":true"), "{failed}");
    call("math_add", json!({"a": 1, "b": 2})).await;
    // The math target goes away: its next call is answered -32030 and counted as unavailable.
    math.shutdown().await;
    let gone = call("math_add", json!({"a": 1, "b": 2})).await;
    assert!(gone.contains("-32030"), "{gone}");
    // An invalid edit is rejected, a valid one accepted.
    let scrape = || async {
        let response = reqwest::get(format!("http://{admin}/metrics")).await.unwrap();
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        response.text().await.unwrap()
    };
    std::fs::write(&config_path, "targets: [ {").unwrap();
    until("the invalid edit is rejected", || async {
        value(&scrape().await, r#"mcplex_config_reloads_total{result="rejected"}"#) >= 1.0
    })
    .await;
    std::fs::write(&config_path, config(&[("e", &everything.url(), "")])).unwrap();
    let page = eventually("the valid edit is accepted", || async {
        let page = scrape().await;
        (value(&page, r#"mcplex_config_reloads_total{result="accepted"}"#) >= 1.0).then_some(page)
    })
    .await;
    drop(sidecar);

    assert!(page.ends_with("# EOF\n"), "an OpenMetrics page ends with # EOF: {page}");
    let requests = |target: &str, outcome: &str| {
        value(
            &page,
            &format!(r#"mcplex_requests_total{{target="{target}",method="tools/call",outcome="{outcome}"}}"#),
        )
    };
    assert_eq!(requests("e", "ok"), 3.0, "{page}");
    assert_eq!(requests("e", "tool_error"), 1.0, "{page}");
    assert_eq!(requests("math", "ok"), 1.0, "{page}");
    assert_eq!(requests("math", "unavailable"), 1.0, "{page}");
    assert_eq!(
        value(
            &page,
            r#"mcplex_request_duration_seconds_count{target="e",method="tools/call"}"#
        ),
        4.0,
        "{page}"
    );
    assert_eq!(value(&page, r#"mcplex_requests_in_flight{target="e"}"#), 0.0, "{page}");
    assert!(
        value(
            &page,
            r#"mcplex_upstream_errors_total{target="math",kind="unreachable"}"#
        ) >= 1.0,
        "{page}"
    );
    assert_eq!(
        value(&page, r#"mcplex_config_reloads_total{result="rejected"}"#),
        1.0,
        "{page}"
    );
    assert_eq!(
        value(&page, r#"mcplex_config_reloads_total{result="accepted"}"#),
        1.0,
        "{page}"
    );
    // Two tool names get their own series, the third is `_other`.
    assert_eq!(
        value(
            &page,
            r#"mcplex_tool_calls_total{target="e",tool="e_test_simple_text",outcome="ok"}"#
        ),
        3.0,
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            r#"mcplex_tool_calls_total{target="e",tool="e_test_error_handling",outcome="tool_error"}"#
        ),
        1.0,
        "{page}"
    );
    assert_eq!(
        value(
            &page,
            r#"mcplex_tool_calls_total{target="math",tool="_other",outcome="ok"}"#
        ),
        1.0,
        "{page}"
    );
    // The reload removed math: it leaves the target gauge.
    assert_eq!(value(&page, r#"mcplex_target_up{target="e"}"#), 1.0, "{page}");
    assert!(!page.contains(r#"mcplex_target_up{target="math"}"#), "{page}");
}

/// Metric names in a PromQL expression (`mcplex_` followed by lowercase letters and underscores).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("mcplex_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn expressions(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => expressions(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| expressions(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_metric_the_dashboard_and_podmonitor_rely_on_is_exported() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/monitoring");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("mcplex-dashboard.json")).unwrap()).unwrap();
    let mut exprs = Vec::new();
    expressions(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    // One call and one target that is not there: every family has a series to show.
    let upstream = everything(Versions::All).await;
    let nothing_there = format!("http://{}/mcp", free_addr());
    let harness = Harness::start(&config(&[("e", &upstream.url(), ""), ("gone", &nothing_there, "")])).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "e_test_simple_text", "_meta": modern_meta()}}).to_string();
    let (status, _, _) = post(
        &harness.url(),
        &modern_headers("tools/call", Some("e_test_simple_text")),
        &body,
    )
    .await;
    assert_eq!(status, 200);
    let page = harness.metrics().await;
    let mut checked = 0;
    for expr in &exprs {
        for name in metric_names(expr) {
            // Counters are exposed as `<family>_total`, histograms as `<family>_bucket|_count|_sum`.
            let family = ["_total", "_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                page.contains(&format!("# TYPE {family} ")),
                "the dashboard queries {name}, which /metrics does not export: {page}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked}");
    // The PodMonitor finds sidecars by the admin port's name and scrapes the path served above.
    let text = std::fs::read_to_string(root.join("podmonitor.yaml")).unwrap();
    let monitor: serde_json::Value =
        serde::Deserialize::deserialize(yaml_serde::Deserializer::from_str(&text).next().unwrap()).unwrap();
    assert_eq!(monitor["kind"], "PodMonitor");
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    let mut pod = json!({
        "metadata": { "name": "agent", "annotations": { "mcplex.dev/inject": "true" } },
        "spec": { "containers": [{ "name": "agent", "image": "agent:1" }] }
    });
    let mcplex_webhook::Outcome::Patch(patch) = mcplex_webhook::mutate(&pod, &Default::default()).unwrap() else {
        panic!("not injected")
    };
    json_patch::patch(&mut pod, &patch).unwrap();
    let port = &pod["spec"]["initContainers"][0]["ports"][0];
    assert_eq!(
        endpoint["port"], port["name"],
        "the PodMonitor selects the injected admin port"
    );
    assert_eq!(port["containerPort"], 15302);
}
