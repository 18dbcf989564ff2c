//! What `mcplex serve` adds to a call of a stdio server: the server's own answer time over its pipes, a raw
//! HTTP-to-pipes forwarder (no sessions, no checks: the floor of any HTTP front), and `mcplex serve`, side by
//! side in one run; at 1 session and at 16; the time to start a session's process; `serve`'s own memory idle
//! and per idle session. The stdio server is this binary run with `--stdio-server`: it answers at once, so
//! what is measured is the front, not the server.
//!
//! `cargo bench --bench serve` (the `mcplex` binary of the bench build).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

const CALLS: usize = 4_000;
const WARMUP: usize = 500;
const SESSIONS: usize = 16;
const IDLE_SESSIONS: usize = 50;

fn main() {
    if std::env::args().any(|a| a == "--stdio-server") {
        return stdio_server();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}

/// A session-era stdio MCP server that answers at once: `initialize`, `tools/list` (one tool) and
/// `tools/call`; notifications are read and dropped.
fn stdio_server() {
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let Ok(line) = line else { return };
        let message: Value = serde_json::from_str(&line).unwrap_or_default();
        let result = match message["method"].as_str() {
            Some("initialize") => json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                "serverInfo": {"name": "bench-stdio", "version": "1"}}),
            Some("tools/list") => json!({"tools": [{"name": "fast", "inputSchema": {"type": "object"}}]}),
            Some("tools/call") => json!({"content": [{"type": "text", "text": "ok"}]}),
            _ => continue,
        };
        let reply = json!({"jsonrpc": "2.0", "id": message["id"], "result": result});
        if writeln!(stdout, "{reply}").and_then(|_| stdout.flush()).is_err() {
            return;
        }
    }
}

fn server_command() -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.arg("--stdio-server");
    command
}

fn call(id: usize) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "fast", "arguments": {}}}).to_string()
}

/// The same call as a 2026-07-28 client sends it: no session, its context in `_meta`, routing headers.
fn modern_call(id: usize) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "fast", "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"}}}})
    .to_string()
}

/// How a round's clients reach the front.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// No session (the raw forwarder has none).
    Plain,
    /// Each client in a session of its own.
    Sessions,
    /// 2026-07-28 requests, no session.
    Modern,
}

fn initialize() -> String {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
        "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    .to_string()
}

/// The server driven over its own pipes: one line out, one line back.
struct Pipes {
    input: tokio::process::ChildStdin,
    output: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    _child: tokio::process::Child,
}

impl Pipes {
    async fn start() -> Self {
        let mut child = tokio::process::Command::from(server_command())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut pipes = Self {
            input: child.stdin.take().unwrap(),
            output: BufReader::new(child.stdout.take().unwrap()).lines(),
            _child: child,
        };
        pipes.exchange(&initialize()).await;
        pipes
    }

    async fn exchange(&mut self, line: &str) -> String {
        self.input.write_all(line.as_bytes()).await.unwrap();
        self.input.write_all(b"\n").await.unwrap();
        self.input.flush().await.unwrap();
        self.output.next_line().await.unwrap().unwrap()
    }
}

/// The floor of an HTTP front: a POST's body written to one server's stdin, the next line of its stdout
/// the answer. One server for every client, one call at a time: no sessions, no checks.
async fn raw_forwarder() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let pipes = Arc::new(Mutex::new(Pipes::start().await));
    tokio::spawn(mcplex::serve::serve(
        listener,
        None,
        move |request: http::Request<hyper::body::Incoming>| {
            let pipes = pipes.clone();
            async move {
                let body = request.into_body().collect().await.unwrap().to_bytes();
                let answer = pipes.lock().await.exchange(std::str::from_utf8(&body).unwrap()).await;
                http::Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(answer)))
                    .unwrap()
            }
        },
        mcplex::serve::ServeLimits::default(),
        tokio_util::sync::CancellationToken::new(),
        Duration::from_secs(1),
    ));
    url
}

/// An HTTP client session: its session id (none for the raw forwarder, which has no sessions).
async fn open(client: &reqwest::Client, url: &str) -> (Option<String>, Duration) {
    let begun = Instant::now();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(initialize())
        .send()
        .await
        .unwrap();
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let answer: Value = response.json().await.unwrap();
    assert!(answer["result"].is_object(), "{answer}");
    (session, begun.elapsed())
}

async fn post_call(client: &reqwest::Client, url: &str, session: Option<&str>, id: usize, mode: Mode) {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    request = if mode == Mode::Modern {
        request
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "fast")
            .body(modern_call(id))
    } else {
        request.body(call(id))
    };
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let answer = request.send().await.unwrap().bytes().await.unwrap();
    assert!(answer.starts_with(b"{"), "{answer:?}");
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// `sessions` clients at once, each in its own session, `calls` calls in all: p50, p99 (µs) and calls per second.
async fn round(url: &str, sessions: usize, calls: usize, mode: Mode) -> (f64, f64, f64) {
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for _ in 0..sessions {
        let session = if mode == Mode::Sessions {
            open(&client, url).await.0
        } else {
            None
        };
        ids.push(session);
    }
    for (i, session) in ids.iter().enumerate().take(1) {
        for n in 0..WARMUP {
            post_call(&client, url, session.as_deref(), i * 1_000_000 + n, mode).await;
        }
    }
    let begun = Instant::now();
    let tasks: Vec<_> = ids
        .into_iter()
        .enumerate()
        .map(|(i, session)| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(calls / sessions);
                for n in 0..calls / sessions {
                    let at = Instant::now();
                    post_call(&client, &url, session.as_deref(), i * 1_000_000 + WARMUP + n, mode).await;
                    times.push(at.elapsed());
                }
                times
            })
        })
        .collect();
    let mut times = Vec::new();
    for task in tasks {
        times.extend(task.await.unwrap());
    }
    let rate = times.len() as f64 / begun.elapsed().as_secs_f64();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), rate)
}

async fn bench() {
    // The server alone, over its pipes.
    let mut pipes = Pipes::start().await;
    for n in 0..WARMUP {
        pipes.exchange(&call(n)).await;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(CALLS);
    for n in 0..CALLS {
        let at = Instant::now();
        pipes.exchange(&call(WARMUP + n)).await;
        times.push(at.elapsed());
    }
    times.sort();
    println!("| measurement | value |\n|---|---|");
    println!(
        "| the stdio server alone, over its pipes: p50 / p99 | {:.1} / {:.1} µs |",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
    drop(pipes);
    // 16 servers at once, each driven over its own pipes: what 16 sessions could reach without any front.
    let mut all = Vec::new();
    for _ in 0..SESSIONS {
        all.push(Pipes::start().await);
    }
    let begun = Instant::now();
    let per = CALLS * 4 / SESSIONS;
    let tasks: Vec<_> = all
        .into_iter()
        .map(|mut pipes| {
            tokio::spawn(async move {
                for n in 0..per {
                    pipes.exchange(&call(n)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    println!(
        "| the stdio servers alone, {SESSIONS} at once over their pipes: calls/s | {:.0} |",
        (per * SESSIONS) as f64 / begun.elapsed().as_secs_f64()
    );

    let raw = raw_forwarder().await;
    let (p50, p99, rate) = round(&raw, 1, CALLS, Mode::Plain).await;
    println!("| raw HTTP-to-pipes forwarder, 1 client: p50 / p99; calls/s | {p50:.1} / {p99:.1} µs; {rate:.0} |");

    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let server = server_command();
    // The binary measured: the bench build's, or another (the shipped one) named by MCPLEX_BENCH_BIN.
    let binary = std::env::var("MCPLEX_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_mcplex").to_owned());
    let mut serve = Command::new(&binary)
        .args([
            "--log-level",
            "warn",
            "serve",
            "--listen",
            &listen,
            "--max-sessions",
            "128",
            "--pool",
            "16",
            "--",
        ])
        .arg(server.get_program())
        .args(server.get_args())
        .spawn()
        .unwrap();
    let url = format!("http://{listen}/mcp");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(&listen).await.is_err() {
        assert!(Instant::now() < deadline, "mcplex serve listens within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = rss_mib(serve.id());
    // The same binary as a sidecar with no target, for its idle memory beside `serve`'s.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "targets: []\n").unwrap();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string()
    };
    let (mcp, admin) = (free(), free());
    let mut sidecar = Command::new(&binary)
        .args([
            "--log-level",
            "warn",
            "run",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &mcp,
            "--admin",
            &admin,
        ])
        .spawn()
        .unwrap();
    let readyz = format!("http://{admin}/readyz");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reqwest::get(&readyz).await.is_ok_and(|r| r.status() == 200) {
        assert!(Instant::now() < deadline, "the sidecar is ready within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sidecar_idle = rss_mib(sidecar.id());
    let _ = sidecar.kill();
    let _ = sidecar.wait();
    println!(
        "| idle RSS, same binary: `mcplex serve`, no session / `mcplex run`, no target | {idle:.1} / {sidecar_idle:.1} MiB |"
    );

    let client = reqwest::Client::new();
    let mut starts = Vec::new();
    for _ in 0..20 {
        let (session, took) = open(&client, &url).await;
        starts.push(took);
        let _ = client
            .delete(&url)
            .header("mcp-session-id", session.unwrap())
            .send()
            .await;
    }
    starts.sort();
    println!(
        "| a new session: its process started and initialised, p50 / p99 of 20 | {:.2} / {:.2} ms |",
        percentile(&starts, 0.5) / 1e3,
        percentile(&starts, 0.99) / 1e3
    );

    // The eras' 1-client rounds take turns, twice: a round reads slower the later it runs, whatever its
    // era, so only rounds side by side compare.
    for turn in 1..=2 {
        let (p50, p99, rate) = round(&url, 1, CALLS, Mode::Sessions).await;
        println!("| `mcplex serve`, 1 session (turn {turn}): p50 / p99; calls/s | {p50:.1} / {p99:.1} µs; {rate:.0} |");
        let (p50, p99, rate) = round(&url, 1, CALLS, Mode::Modern).await;
        println!(
            "| `mcplex serve`, 2026-07-28, 1 client, warm pool (turn {turn}): p50 / p99; calls/s | {p50:.1} / {p99:.1} µs; {rate:.0} |"
        );
    }
    let (p50, p99, rate) = round(&url, SESSIONS, CALLS * 4, Mode::Sessions).await;
    println!(
        "| `mcplex serve`, {SESSIONS} sessions (one process each): p50 / p99; calls/s | {p50:.1} / {p99:.1} µs; {rate:.0} |"
    );
    let (p50, p99, rate) = round(&url, SESSIONS, CALLS * 4, Mode::Modern).await;
    println!(
        "| `mcplex serve`, 2026-07-28, {SESSIONS} clients (pool of {SESSIONS}): p50 / p99; calls/s | {p50:.1} / {p99:.1} µs; {rate:.0} |"
    );

    // Memory per idle session, the processes apart (they are processes of their own).
    let settle = || tokio::time::sleep(Duration::from_secs(2));
    settle().await;
    let before = rss_mib(serve.id());
    let mut held = Vec::new();
    for _ in 0..IDLE_SESSIONS {
        held.push(open(&client, &url).await.0);
    }
    settle().await;
    let after = rss_mib(serve.id());
    println!(
        "| `mcplex serve` memory per idle session ({IDLE_SESSIONS} sessions, their processes apart) | {:.1} KiB |",
        (after - before) * 1024.0 / IDLE_SESSIONS as f64
    );
    let _ = Command::new("kill").args(["-TERM", &serve.id().to_string()]).status();
    let _ = serve.wait();
    drop(held);
}
