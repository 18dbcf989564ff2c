//! Shared helpers: real servers on ephemeral loopback ports, the sidecar in-process, rmcp clients.

#![allow(dead_code, deprecated)]

pub use crate::support::wait::{PATIENCE, eventually, holds_for, until, until_listening, within};
use mcplex::app::{Options, Sidecar};
use mcplex_examples::everything::{Everything, Versions};
use mcplex_examples::{self as examples, Example};
use rmcp::model::*;
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// An upstream MCP server running in this process.
pub struct Upstream {
    pub addr: SocketAddr,
    pub stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Stops the server and waits until its port is closed.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Starts the `everything` server, speaking the given revisions, on `addr` (port 0 for any).
pub async fn everything_at(addr: &str, versions: Versions) -> Upstream {
    let listener = TcpListener::bind(addr).await.expect("bind upstream");
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = Everything::with_versions(versions);
    let task = tokio::spawn(examples::serve_handler(
        listener,
        None,
        move || server.clone(),
        stop.clone(),
    ));
    Upstream { addr, stop, task }
}

/// The `everything` server on an ephemeral port.
pub async fn everything(versions: Versions) -> Upstream {
    everything_at("127.0.0.1:0", versions).await
}

/// The math or date example on an ephemeral port.
pub async fn example(which: Example) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(examples::run(which, listener, None, stop.clone()));
    Upstream { addr, stop, task }
}

/// A sidecar with its config in a temp directory.
pub struct Harness {
    pub sidecar: Sidecar,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Harness {
    pub async fn start(config: &str) -> Self {
        Self::start_with(config, |_| {}).await
    }

    pub async fn start_with(config: &str, tune: impl FnOnce(&mut Options)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).unwrap();
        let mut options = Options::new(config_path.clone());
        options.listen = "127.0.0.1:0".parse().unwrap();
        options.admin = "127.0.0.1:0".parse().unwrap();
        options.drain = Duration::from_secs(5);
        tune(&mut options);
        let sidecar = Sidecar::start(options).await.expect("sidecar starts");
        Self {
            sidecar,
            dir,
            config_path,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.sidecar.mcp_addr)
    }

    pub fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.sidecar.admin_addr)
    }

    pub async fn legacy_client(&self) -> RunningService<RoleClient, Recorder> {
        legacy_client(&self.url(), Recorder::default()).await
    }

    pub async fn modern_client(&self) -> RunningService<RoleClient, Recorder> {
        modern_client(&self.url(), Recorder::default()).await
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn status(&self) -> Value {
        reqwest::get(self.admin("/status")).await.unwrap().json().await.unwrap()
    }

    /// Waits until `/status` shows each of `targets` listed. A target whose server process starts on
    /// demand (`mcplex serve`) can take longer than the sidecar's start-up wait on a loaded machine.
    pub async fn until_up(&self, targets: &[&str]) {
        for name in targets {
            until(&format!("target `{name}` is listed"), || async {
                target_status(&self.status().await, name)["up"] == true
            })
            .await;
        }
    }
}

/// The value of one series (its name and labels, exactly as written) on a Prometheus `/metrics` page.
pub fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A config YAML listing `(name, url, extra yaml lines)` targets.
pub fn config(targets: &[(&str, &str, &str)]) -> String {
    let mut yaml = String::from("targets:\n");
    for (name, url, extra) in targets {
        yaml.push_str(&format!("  - name: {name}\n    url: {url}\n"));
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            yaml.push_str(&format!("    {line}\n"));
        }
    }
    yaml
}

/// A client handler that answers sampling and elicitation and records every notification.
#[derive(Clone, Default)]
pub struct Recorder {
    pub events: Arc<Mutex<Vec<Value>>>,
}

impl Recorder {
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    fn record(&self, kind: &str, value: Value) {
        self.events
            .lock()
            .unwrap()
            .push(json!({ "kind": kind, "value": value }));
    }

    /// Waits until an event of `kind` was recorded.
    pub async fn wait_for(&self, kind: &str) -> Value {
        eventually(&format!("a `{kind}` event"), || async {
            let event = self.events().into_iter().find(|e| e["kind"] == kind)?;
            Some(event["value"].clone())
        })
        .await
    }
}

impl ClientHandler for Recorder {
    fn get_info(&self) -> ClientConfig {
        serde_json::from_value(json!({
            "protocolVersion": "2025-11-25",
            "capabilities": { "sampling": {}, "elicitation": {}, "roots": { "listChanged": true } },
            "clientInfo": { "name": "mcplex-test-client", "version": "1.0.0" }
        }))
        .unwrap()
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        self.record("sampling", serde_json::to_value(&params).unwrap());
        Ok(serde_json::from_value(json!({ "role": "assistant", "content": { "type": "text", "text": "sampled answer" }, "model": "test-model", "stopReason": "endTurn" })).unwrap())
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.record("elicitation", serde_json::to_value(&request).unwrap());
        Ok(serde_json::from_value(
            json!({ "action": "accept", "content": { "username": "ada", "email": "ada@example.com" } }),
        )
        .unwrap())
    }

    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.record("progress", serde_json::to_value(&params).unwrap());
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.record("log", serde_json::to_value(&params).unwrap());
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.record("resource_updated", serde_json::to_value(&params).unwrap());
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.record("tools_list_changed", Value::Null);
    }
}

pub async fn legacy_client(url: &str, handler: Recorder) -> RunningService<RoleClient, Recorder> {
    let transport =
        StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(url.to_owned()));
    handler.serve(transport).await.expect("legacy client connects")
}

pub async fn modern_client(url: &str, handler: Recorder) -> RunningService<RoleClient, Recorder> {
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
    let transport =
        StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(url.to_owned()));
    handler
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("modern client connects")
}

/// Calls a tool and returns the text of its first content block.
pub async fn call_text(client: &RunningService<RoleClient, Recorder>, name: &str, arguments: Value) -> String {
    let result = call(client, name, arguments)
        .await
        .unwrap_or_else(|e| panic!("call {name}: {e}"));
    first_text(&result)
}

pub async fn call(
    client: &RunningService<RoleClient, Recorder>,
    name: &str,
    arguments: Value,
) -> Result<CallToolResult, rmcp::ServiceError> {
    let mut params = CallToolRequestParams::new(name.to_owned());
    if let Value::Object(map) = arguments {
        params = params.with_arguments(map);
    }
    client.call_tool(params).await
}

pub fn first_text(result: &CallToolResult) -> String {
    serde_json::to_value(result).unwrap()["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub async fn tool_names(client: &RunningService<RoleClient, Recorder>) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

/// A raw JSON-RPC POST; returns status, headers and body text.
pub async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// A raw 2026-07-28 `tools/call` of `tool` with `arguments`, declaring `capabilities`, with `extra` params;
/// the status and the message answered.
pub async fn modern_tool_call(
    url: &str,
    tool: &str,
    arguments: Value,
    capabilities: Value,
    extra: Value,
) -> (u16, Value) {
    let mut meta = modern_meta();
    meta["io.modelcontextprotocol/clientCapabilities"] = capabilities;
    let mut params = json!({"name": tool, "arguments": arguments, "_meta": meta});
    for (key, value) in extra.as_object().unwrap() {
        params[key] = value.clone();
    }
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}).to_string();
    let (status, _, text) = post(url, &modern_headers("tools/call", Some(tool)), &body).await;
    (status, message_of(&text))
}

/// Opens a 2026-07-28 `subscriptions/listen` with `notifications` (the listen's params) and `id`; the
/// response's body is the stream of what mcplex sends on it.
pub async fn open_modern_listen(url: &str, id: Value, notifications: Value) -> reqwest::Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen", "params": {"notifications": notifications, "_meta": modern_meta()}});
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (name, value) in modern_headers("subscriptions/listen", None) {
        request = request.header(name, value);
    }
    request
        .body(body.to_string())
        .send()
        .await
        .expect("POST subscriptions/listen")
}

/// Headers a modern client sends for `method` (and `name`, when the method has one).
pub fn modern_headers<'a>(method: &'a str, name: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut headers = vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", method)];
    if let Some(name) = name {
        headers.push(("mcp-name", name));
    }
    headers
}

/// The `_meta` a modern request carries.
pub fn modern_meta() -> Value {
    json!({ "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": { "name": "raw", "version": "1" } })
}

/// The JSON-RPC message in a body that is either JSON or SSE (the last data event).
pub fn message_of(body: &str) -> Value {
    if let Ok(value) = serde_json::from_str(body) {
        return value;
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .rfind(|d| !d.trim().is_empty())
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null)
}

/// A server that accepts connections and never answers.
pub async fn silent_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}/mcp")
}

/// The `/status` entry of the target named `name`.
pub fn target_status(status: &Value, name: &str) -> Value {
    status["targets"]
        .as_array()
        .and_then(|targets| targets.iter().find(|t| t["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no target `{name}` in {status}"))
}

/// Asserts that `/status` shows the target at `index` down, with an error containing `reason`.
pub fn assert_down(status: &Value, index: usize, reason: &str) {
    let target = &status["targets"][index];
    assert_eq!(target["up"], false, "{status}");
    let error = target["error"].as_str().unwrap_or_default();
    assert!(error.contains(reason), "expected `{reason}` in the error: {status}");
}

/// A real `mcplex run` process on free loopback ports; killed when dropped unless taken.
pub struct SidecarProcess {
    pub child: Option<std::process::Child>,
    pub mcp: String,
    pub admin: String,
}

impl SidecarProcess {
    /// Runs `mcplex <global> run --config <config> --listen <free> --admin <free> <run_args>` with `envs` and
    /// waits until `/readyz` answers 200 (at most 10 s).
    pub async fn start(
        config: &std::path::Path,
        global: &[&str],
        run_args: &[&str],
        envs: &[(&str, &str)],
        stderr: std::process::Stdio,
    ) -> Self {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .to_string()
        };
        let (mcp, admin) = (free(), free());
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_mcplex"))
            .args(global)
            .args([
                "run",
                "--config",
                config.to_str().unwrap(),
                "--listen",
                &mcp,
                "--admin",
                &admin,
            ])
            .args(run_args)
            .envs(envs.iter().copied())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let process = Self {
            child: Some(child),
            mcp,
            admin,
        };
        let readyz = format!("http://{}/readyz", process.admin);
        until("mcplex ready", || async {
            reqwest::get(&readyz).await.is_ok_and(|r| r.status() == 200)
        })
        .await;
        process
    }

    /// The MCP endpoint's URL.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.mcp)
    }
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The URL path of a recording test upstream: unique to this test process. Tests run in parallel
/// processes, and a sidecar in another one keeps retrying an upstream its test has stopped; when the
/// kernel gives that freed port to an upstream here, those retries arrive at it. They carry the other
/// process's path, so an upstream that answers only its own path records only what this test sent.
pub fn own_path() -> String {
    format!("/mcp/{}", std::process::id())
}

/// Whether `request` was meant for an upstream of this test process (see [`own_path`]); a stray one
/// is logged so a failing test shows it.
pub fn is_own<B>(request: &http::Request<B>) -> bool {
    let own = request.uri().path() == own_path();
    if !own {
        eprintln!(
            "a request for another test process: {} {}",
            request.method(),
            request.uri()
        );
    }
    own
}

/// What a [`scripted_target`] does with a request: answer `tools/call` with this text, or refuse the
/// request with an HTTP status.
pub type Script = dyn Fn(&http::HeaderMap, &Value) -> Result<String, http::StatusCode> + Send + Sync;

/// A minimal 2026-07-28 target on loopback with one tool, `who`. `script` sees every request's headers
/// and JSON body first: it may refuse with a status, and its text answers `tools/call`. Returns the URL.
pub async fn scripted_target(script: Arc<Script>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(mcplex::serve::serve(
        listener,
        None,
        move |request: http::Request<hyper::body::Incoming>| {
            let script = script.clone();
            async move {
                if !is_own(&request) {
                    let mut stray = http::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
                    *stray.status_mut() = http::StatusCode::NOT_FOUND;
                    return stray;
                }
                let (parts, body) = request.into_parts();
                let body = http_body_util::BodyExt::collect(body).await.unwrap().to_bytes();
                let message: Value = serde_json::from_slice(&body).unwrap_or_default();
                let text = match script(&parts.headers, &message) {
                    Ok(text) => text,
                    Err(status) => {
                        let mut refused = http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
                            b"refused by the script",
                        )));
                        *refused.status_mut() = status;
                        return refused;
                    }
                };
                let result = match message["method"].as_str() {
                    Some("server/discover") => {
                        json!({"resultType": "complete", "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}, "ttlMs": 0, "cacheScope": "private"})
                    }
                    Some("tools/list") => {
                        json!({"resultType": "complete", "tools": [{"name": "who", "inputSchema": {"type": "object"}}], "ttlMs": 60000, "cacheScope": "public"})
                    }
                    Some("tools/call") => {
                        json!({"resultType": "complete", "content": [{"type": "text", "text": text}]})
                    }
                    _ => json!({"resultType": "complete"}),
                };
                let reply = json!({"jsonrpc": "2.0", "id": message["id"], "result": result});
                http::Response::new(http_body_util::Full::new(bytes::Bytes::from(reply.to_string())))
            }
        },
        mcplex::serve::ServeLimits::default(),
        CancellationToken::new(),
        Duration::from_secs(1),
    ));
    format!("http://{addr}{}", own_path())
}
