//! `cargo bench --bench relay`: what the sidecar costs. Starts fast MCP upstreams in this process (and one in a
//! process of its own, for rounds in the layout of a pod) and the release `mcplex` binary as a separate process,
//! and drives them with a pooled HTTP/1.1 client and with `wrk`. Prints a Markdown table (the one in BENCHMARKS.md).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[path = "support/embedder.rs"]
mod support;
use support::embedder;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const CALLS: usize = 28_000;
/// Calls per round at 16 sessions: five times a one-session round, so each round runs about a second
/// and a moment of the shared VM weighs less in it.
const CALLS_PER_ROUND_16: usize = 5 * CALLS / ROUNDS;
/// Size of the large tool result.
const BIG_RESULT: usize = 10 * 1024 * 1024;
const WARMUP: usize = 2_000;

/// A modern MCP target that answers at once: discover, tools/list (with `tools` tools) and tools/call
/// (the tool `big` answers with a 10 MiB text block).
async fn fast_upstream(tools: usize) -> SocketAddr {
    // About 150 bytes of JSON a tool, plus `big`.
    let list: Vec<Value> = (0..tools)
        .map(|i| format!("tool_{i:03}"))
        .chain(["big".to_string()])
        .map(|name| json!({"name": name, "description": "a fast tool that answers at once, for benchmarks", "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}}}))
        .collect();
    upstream_listing(list).await
}

/// A 2026-07-28 upstream that lists the 10 tools [`varied_tool`] makes for `target`.
async fn varied_upstream(target: usize) -> SocketAddr {
    let list: Vec<Value> = (0..10)
        .map(|tool| serde_json::from_str(&varied_tool(target, tool).json).unwrap())
        .collect();
    upstream_listing(list).await
}

/// A 2026-07-28 upstream that lists `list` and answers every call at once.
async fn upstream_listing(list: Vec<Value>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let list = Bytes::from(
        json!({"resultType": "complete", "tools": list, "ttlMs": 3_600_000, "cacheScope": "public"}).to_string(),
    );
    tokio::spawn(mcplex::serve::serve(
        listener,
        None,
        move |request: http::Request<hyper::body::Incoming>| {
            let list = list.clone();
            async move {
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let message: Value = serde_json::from_slice(&body).unwrap_or_default();
                let id = message["id"].to_string();
                let result = match message["method"].as_str() {
                    Some("server/discover") => r#"{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"ttlMs":0,"cacheScope":"private"}"#.as_bytes().to_vec(),
                    Some("tools/list") => list.to_vec(),
                    Some("tools/call") if message["params"]["name"] == "big" => {
                        format!(r#"{{"resultType":"complete","content":[{{"type":"text","text":"{}"}}]}}"#, "x".repeat(BIG_RESULT)).into_bytes()
                    }
                    Some("tools/call") => r#"{"resultType":"complete","content":[{"type":"text","text":"ok"}]}"#.as_bytes().to_vec(),
                    _ => {
                        let error = format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"not here"}}}}"#);
                        return http::Response::builder().header("content-type", "application/json").body(Full::new(Bytes::from(error))).unwrap();
                    }
                };
                let mut reply = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"#).into_bytes();
                reply.extend_from_slice(&result);
                reply.push(b'}');
                http::Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(reply)))
                    .unwrap()
            }
        },
        mcplex::serve::ServeLimits::default(),
        CancellationToken::new(),
        Duration::from_secs(1),
    ));
    addr
}

/// A caller's identity for the benchmark: an ES256 key whose JWKS is in a file, a token signed with it,
/// and a token endpoint on loopback that answers every exchange at once.
struct BenchIdentity {
    token: &'static str,
    jwks: std::path::PathBuf,
    endpoint: SocketAddr,
    _dir: tempfile::TempDir,
}

impl BenchIdentity {
    const ISSUER: &str = "https://bench.idp";
    const POLICY_YAML: &str = "policy:\n  cedar: |\n    @id(\"bench\")\n    permit(principal, action == Action::\"tools/call\", resource) when { context.target == \"t0\" && context.claims has groups && context.claims.groups.contains(\"bench\") };\n";

    async fn new() -> Self {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        use base64::Engine;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]), "kid": "bench", "alg": "ES256", "use": "sig"}]});
        let dir = tempfile::tempdir().unwrap();
        let jwks_path = dir.path().join("jwks.json");
        std::fs::write(&jwks_path, jwks.to_string()).unwrap();
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let claims =
            json!({"iss": Self::ISSUER, "aud": "mcplex", "sub": "bench-user", "exp": exp, "groups": ["bench"]});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("bench".into());
        let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
        let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        Self {
            token: Box::leak(token.into_boxed_str()),
            jwks: jwks_path,
            endpoint: token_endpoint().await,
            _dir: dir,
        }
    }

    fn inbound_yaml(&self) -> String {
        format!(
            "inbound:\n  jwt: {{ issuer: \"{}\", audiences: [mcplex], jwks: {{ file: {} }} }}\n",
            Self::ISSUER,
            self.jwks.display()
        )
    }

    fn exchange_yaml(&self) -> String {
        format!(
            "    auth: {{ tokenExchange: {{ tokenEndpoint: \"http://{}/token\", audience: t0 }} }}\n",
            self.endpoint
        )
    }

    /// The three steps alone, in this process: validating the JWT, a cached exchange, a policy decision.
    async fn in_process(&self) {
        let timed = 20_000;
        let validator = mcplex::identity::JwtValidator::new(mcplex::config::inbound::InboundJwt {
            issuer: Self::ISSUER.into(),
            audiences: vec!["mcplex".into()],
            keys: mcplex::config::inbound::KeySource::File(self.jwks.clone()),
            resource: None,
            leeway: Duration::from_secs(30),
            scopes: Vec::new(),
        })
        .unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {}", self.token).parse().unwrap());
        let principal = validator.authenticate(&headers).await.unwrap();
        let begun = Instant::now();
        for _ in 0..timed {
            std::hint::black_box(validator.authenticate(&headers).await.unwrap());
        }
        println!(
            "| inbound JWT validation (ES256), per call (in process) | {:.2} µs |",
            micros(begun.elapsed()) / timed as f64
        );
        let exchanger = mcplex::identity::TokenExchanger::new(mcplex::config::schema::TokenExchangeSpec {
            token_endpoint: format!("http://{}/token", self.endpoint),
            audience: Some("t0".into()),
            resource: None,
            scope: None,
            actor_audience: None,
            actor_path: None,
            client_id: None,
            client_secret_file: None,
            ca: None,
            without_caller: None,
        })
        .unwrap();
        let subject = || mcplex::identity::exchange::Subject {
            token: principal.token(),
            key: principal.token_key(),
            expires_at: principal.expires_at,
        };
        exchanger.authorization(subject(), None).await.unwrap();
        let begun = Instant::now();
        for _ in 0..timed {
            std::hint::black_box(exchanger.authorization(subject(), None).await.unwrap());
        }
        println!(
            "| exchanged token from the cache, per call (in process) | {:.2} µs |",
            micros(begun.elapsed()) / timed as f64
        );
        let text = Self::POLICY_YAML
            .lines()
            .skip(2)
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("\n");
        let policy = mcplex::policy::Policy::parse(&text).unwrap();
        let query = mcplex::policy::Query {
            caller_key: principal.token_key(),
            subject: Some(&principal.subject),
            claims: Some(&principal.claims),
            action: mcplex::policy::Action::CallTool,
            exposed: "t0_tool_000",
            upstream: "tool_000",
            target: "t0",
            profile: None,
        };
        assert!(policy.decide(&query).allowed);
        // A first decision for each caller: Cedar evaluates.
        let fresh = 2_000u32;
        let begun = Instant::now();
        for i in 0..fresh {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_le_bytes());
            std::hint::black_box(policy.decide(&mcplex::policy::Query {
                caller_key: key,
                ..query
            }));
        }
        println!(
            "| Cedar policy decision, first for a caller (evaluated), per call (in process) | {:.2} µs |",
            micros(begun.elapsed()) / fresh as f64
        );
        let begun = Instant::now();
        for _ in 0..timed {
            std::hint::black_box(policy.decide(&query));
        }
        println!(
            "| Cedar policy decision, remembered after the first, per call (in process) | {:.2} µs |",
            micros(begun.elapsed()) / timed as f64
        );
    }
}

/// A token endpoint that answers every request with a fresh-looking token valid for an hour.
async fn token_endpoint() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(mcplex::serve::serve(
        listener,
        None,
        |_: http::Request<hyper::body::Incoming>| async {
            let token = r#"{"access_token":"exchanged-for-t0","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}"#;
            http::Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(token.as_bytes())))
                .unwrap()
        },
        mcplex::serve::ServeLimits::default(),
        CancellationToken::new(),
        Duration::from_secs(1),
    ));
    addr
}

struct Sidecar {
    child: Child,
    mcp: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Sidecar {
    /// Stops the sidecar as Kubernetes does (SIGTERM), so that it exits through its own shutdown (an
    /// instrumented build writes its profile then); SIGKILL after 5 s if it has not.
    fn drop(&mut self) {
        let asked = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        while asked && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts `mcplex run` in front of `targets`; returns it and how long it took to be ready.
async fn start_sidecar(targets: &[SocketAddr]) -> (Sidecar, Duration) {
    start_sidecar_with(targets, &[]).await
}

/// [`start_sidecar`] with extra `mcplex run` arguments.
async fn start_sidecar_with(targets: &[SocketAddr], extra: &[&str]) -> (Sidecar, Duration) {
    start_sidecar_yaml(&targets_yaml(targets, ""), extra).await
}

/// The `targets:` of a config listing `targets` as modern targets, each with `per_target` lines.
fn targets_yaml(targets: &[SocketAddr], per_target: &str) -> String {
    let mut yaml = String::from("targets:\n");
    for (i, addr) in targets.iter().enumerate() {
        yaml.push_str(&format!(
            "  - name: t{i}\n    url: http://{addr}/mcp\n    protocol: modern\n{per_target}"
        ));
    }
    yaml
}

/// The sidecar under test: this build's `mcplex`, or the binary `MCPLEX_BENCH_BIN` names (to compare two builds
/// of it against the same client, upstreams and raw relay).
fn sidecar_binary() -> std::path::PathBuf {
    std::env::var_os("MCPLEX_BENCH_BIN").map_or_else(|| env!("CARGO_BIN_EXE_mcplex").into(), Into::into)
}

/// Starts `mcplex run` with this config text and extra arguments.
async fn start_sidecar_yaml(yaml: &str, extra: &[&str]) -> (Sidecar, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml).unwrap();
    let (mcp, admin) = (free_port(), free_port());
    let started = Instant::now();
    let mut child = Command::new(sidecar_binary())
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &mcp.to_string(),
            "--admin",
            &admin.to_string(),
            "--log-level",
            "warn",
        ])
        .args(extra.iter().filter(|a| !a.starts_with("env:")))
        .envs(extra.iter().filter_map(|a| a.strip_prefix("env:")?.split_once('=')))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .expect("spawn mcplex");
    let client = http_client();
    loop {
        // A sidecar that exits at start would otherwise leave the bench polling for ever.
        if let Ok(Some(status)) = child.try_wait() {
            let said = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
            panic!("mcplex exited before it was ready ({status}):\n{said}");
        }
        let ready = client
            .get(format!("http://{admin}/readyz").parse().unwrap())
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false);
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (
        Sidecar {
            child,
            mcp,
            admin,
            _dir: dir,
        },
        started.elapsed(),
    )
}

fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(connector)
}

fn modern_call(id: usize, tool: &str) -> http::Request<Full<Bytes>> {
    modern_call_as(id, tool, None)
}

/// A modern `tools/call`, with the caller's bearer token when there is one.
fn modern_call_as(id: usize, tool: &str, bearer: Option<&str>) -> http::Request<Full<Bytes>> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {"x": 1},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}});
    let request = http::Request::post("/");
    let request = match bearer {
        Some(token) => request.header("authorization", format!("Bearer {token}")),
        None => request,
    };
    request
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// A modern `tools/list` of the first page.
fn list_request() -> http::Request<Full<Bytes>> {
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}});
    http::Request::post("/")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(Full::new(Bytes::from(list.to_string())))
        .unwrap()
}

async fn send(client: &HttpClient, addr: SocketAddr, mut request: http::Request<Full<Bytes>>) -> Bytes {
    *request.uri_mut() = format!("http://{addr}/mcp").parse().unwrap();
    let response = client.request(request).await.expect("request");
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap().to_bytes()
}

/// Runs `total` calls over `concurrency` connections; returns every latency and the wall time.
async fn drive(addr: SocketAddr, tool: &'static str, concurrency: usize, total: usize) -> (Vec<Duration>, Duration) {
    drive_as(addr, tool, concurrency, total, None).await
}

/// [`drive`] with the caller's bearer token on every call.
async fn drive_as(
    addr: SocketAddr,
    tool: &'static str,
    concurrency: usize,
    total: usize,
    bearer: Option<&'static str>,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            tokio::spawn(async move {
                let client = http_client();
                let mut latencies = Vec::with_capacity(total / concurrency);
                for i in 0..total / concurrency {
                    let begun = Instant::now();
                    let body = send(&client, addr, modern_call_as(i, tool, bearer)).await;
                    latencies.push(begun.elapsed());
                    debug_assert!(body.windows(2).any(|w| w == b"ok"));
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    (all, started.elapsed())
}

const ROUNDS: usize = 7;
/// How long freed memory is given to go back to the system: jemalloc purges unused pages gradually over its
/// 10 s decay curve, and by hand a 10 MiB answer's pages were still resident 12 s later and gone by 37 s.
const RETURN_WAIT: Duration = Duration::from_secs(30);
/// Idle session-era sessions opened to measure their cost.
const SESSIONS: usize = 1000;

/// One interleaved round: latencies in µs for direct / raw relay / mcplex, CPU per call for relay / mcplex.
struct Round {
    p50: [f64; 3],
    p99: [f64; 3],
    cpu: [f64; 2],
    throughput: [f64; 2],
}

/// Drives one round through `addr` while reading the CPU time of the process `pid` before and after.
async fn measured(
    pid: u32,
    addr: SocketAddr,
    tool: &'static str,
    concurrency: usize,
    bearer: Option<&'static str>,
) -> (Duration, Duration, Vec<Duration>, Duration) {
    let before = cpu_time(pid);
    let (latencies, wall) = drive_as(addr, tool, concurrency, calls_per_round(concurrency), bearer).await;
    let after = cpu_time(pid);
    (before, after, latencies, wall)
}

/// Seconds of load in each round from `wrk` (about as long as an in-process round at 16 sessions).
const EXTERNAL_ROUND_SECS: u32 = 2;

/// Drives each relay `(pid, address, tool)` in turn with 16 connections from `wrk` for [`ROUNDS`] interleaved
/// rounds and prints, under `label`, the median calls per second, the median ratio per round and the CPU per call; a line
/// saying it was skipped when `wrk` is not installed (`scripts/bench` installs it).
async fn external_load_rounds(label: &str, relays: [(u32, SocketAddr, &'static str); 2]) {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("| tools/call throughput, {label}: raw hyper relay / mcplex | not measured: `wrk` is not installed |");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut scripts = Vec::new();
    for (_, _, tool) in relays {
        let (parts, body) = modern_call(1, tool).into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let mut lua = format!(
            "wrk.method = \"POST\"\nwrk.body = [[{}]]\n",
            String::from_utf8_lossy(&body)
        );
        for (name, value) in &parts.headers {
            lua.push_str(&format!("wrk.headers[\"{name}\"] = \"{}\"\n", value.to_str().unwrap()));
        }
        let script = dir.path().join(format!("{tool}.lua"));
        std::fs::write(&script, lua).unwrap();
        scripts.push(script);
    }
    for (relay, script) in relays.iter().zip(&scripts) {
        wrk_round(*relay, script.clone(), 1).await;
    }
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let raw = wrk_round(relays[0], scripts[0].clone(), EXTERNAL_ROUND_SECS).await;
        let mcplex = wrk_round(relays[1], scripts[1].clone(), EXTERNAL_ROUND_SECS).await;
        rounds.push([raw, mcplex]);
    }
    let ratio = median(rounds.iter().map(|r| r[1].0 / r[0].0));
    let [raw_rate, rate] = [0, 1].map(|i| median(rounds.iter().map(|r| r[i].0)));
    let [raw_cpu, cpu] = [0, 1].map(|i| median(rounds.iter().map(|r| r[i].1)));
    println!(
        "| tools/call throughput, {label}: raw hyper relay / mcplex | {raw_rate:.0} / {rate:.0} calls/s ({:.0} % median per round) |",
        100.0 * ratio
    );
    println!("| CPU per call, {label}: raw hyper relay / mcplex | {raw_cpu:.0} µs / {cpu:.0} µs |");
}

/// One `wrk` round of `secs` seconds against a relay: its calls per second and the relay's CPU per call. wrk
/// runs on the blocking pool, so the upstreams in this process keep both runtime threads.
async fn wrk_round(
    (pid, addr, _): (u32, SocketAddr, &'static str),
    script: std::path::PathBuf,
    secs: u32,
) -> (f64, f64) {
    let before = cpu_time(pid);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("wrk")
            .args(["-t1", "-c16", &format!("-d{secs}s"), "-s"])
            .arg(script)
            .arg(format!("http://{addr}/mcp"))
            .output()
            .expect("run wrk")
    })
    .await
    .unwrap();
    let after = cpu_time(pid);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        !report.contains("Non-2xx") && !report.contains("Socket errors"),
        "wrk saw failed calls:\n{report}"
    );
    let rate: f64 = report
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk printed no rate:\n{report}"));
    (rate, micros(after - before) / (rate * f64::from(secs)))
}

/// Runs sidecars side by side at one session in interleaved rounds (each with its caller's bearer token,
/// if any) and prints the median p50 and CPU per call of each, in order, under `label`.
async fn side_by_side(variants: &[(&Sidecar, Option<&'static str>)], label: &str) {
    for (variant, bearer) in variants {
        drive_as(variant.mcp, "t0_tool_000", 1, WARMUP, *bearer).await;
    }
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let mut round = Vec::new();
        for (variant, bearer) in variants {
            let (before, after, latencies, _) =
                measured(variant.child.id(), variant.mcp, "t0_tool_000", 1, *bearer).await;
            round.push((
                percentile_of(latencies, 0.5),
                micros(after - before) / calls_per_round(1) as f64,
            ));
        }
        rounds.push(round);
    }
    let column = |pick: fn(&(f64, f64)) -> f64| {
        (0..variants.len())
            .map(|v| format!("{:.0}", median(rounds.iter().map(|r| pick(&r[v])))))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!("| 1 session: {label}: p50 | {} µs |", column(|r| r.0));
    println!("| 1 session: {label}: CPU per call | {} µs |", column(|r| r.1));
}

fn percentile_of(mut latencies: Vec<Duration>, p: f64) -> f64 {
    latencies.sort();
    micros(percentile(&latencies, p))
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A `/proc/<pid>/status` field in MiB (VmRSS: resident now, VmHWM: the peak so far).
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Calls in one measured round at `concurrency` sessions.
fn calls_per_round(concurrency: usize) -> usize {
    if concurrency > 1 {
        CALLS_PER_ROUND_16
    } else {
        CALLS / ROUNDS
    }
}

/// CPU time a process has used, summed over its threads, to the nanosecond (the scheduler's own account
/// in `/proc/PID/task/*/schedstat`; `/proc/PID/stat` counts 10 ms ticks, a tenth of a short round).
fn cpu_time(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return rss_and_cpu(pid).1;
    };
    let nanos: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// Resident memory and total CPU time of a process, from /proc.
fn rss_and_cpu(pid: u32) -> (f64, Duration) {
    let rss_mib = status_mib(pid, "VmRSS:");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (rss_mib, Duration::from_millis(ticks * 10))
}

/// The baseline: a hyper relay that forwards bytes with no MCP work, run as its own process like mcplex.
fn run_raw_relay(listen: SocketAddr, upstream: SocketAddr) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await.unwrap();
        let client = http_client();
        mcplex::serve::serve(
            listener,
            None,
            move |request: http::Request<hyper::body::Incoming>| {
                let client = client.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let mut forwarded = http::Request::post(format!("http://{upstream}/mcp"))
                        .body(Full::new(body))
                        .unwrap();
                    *forwarded.headers_mut() = parts.headers;
                    let response = client.request(forwarded).await.unwrap();
                    let (parts, body) = response.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    http::Response::from_parts(parts, Full::new(body))
                }
            },
            mcplex::serve::ServeLimits::default(),
            CancellationToken::new(),
            Duration::from_secs(1),
        )
        .await;
    });
}

/// Serves the bench's upstream (one tool) until killed, printing its address: for profiling the sidecar
/// and the raw relay by hand against the same upstream the bench uses (`cargo bench --bench relay -- --fast-upstream`).
fn run_fast_upstream() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("{}", fast_upstream(1).await);
        std::future::pending::<()>().await
    });
}

/// Spawns this binary as the bench's upstream in a process of its own (`--fast-upstream`, one thread) and
/// reads the address it prints.
fn start_upstream_process() -> (Child, SocketAddr) {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--fast-upstream")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the upstream process");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("its stdout"))
        .read_line(&mut line)
        .expect("read the upstream's address");
    let addr = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the upstream printed no address: {line:?}"));
    (child, addr)
}

/// Spawns this binary as the raw relay baseline.
async fn start_raw_relay(upstream: SocketAddr) -> (Child, SocketAddr) {
    let listen = free_port();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--raw-relay", &listen.to_string(), &upstream.to_string()])
        .spawn()
        .expect("spawn the raw relay");
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (child, listen)
}

/// Where the processes run for one-session rounds: the bench (client and upstreams) on one CPU and the relay
/// under test on the other, so the relay neither waits for nor evicts the caches of the processes it talks to.
/// Three processes sharing two vCPUs otherwise make one-session latency swing by more than the costs measured.
struct Pinning {
    bench: String,
    relay: String,
}

impl Pinning {
    /// One-session rounds pinned; `MCPLEX_BENCH_PIN=0` turns it off.
    fn pinned() -> Self {
        Self {
            bench: "0".into(),
            relay: "1".into(),
        }
    }

    /// Every process free on every CPU (the 16-session rounds need them all for the client and upstreams).
    fn unpinned() -> Self {
        let all = format!("0-{}", cpu_count() - 1);
        Self {
            bench: all.clone(),
            relay: all,
        }
    }
}

/// CPUs this process may use.
fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Whether this machine can pin: two CPUs or more, `taskset` present, and not turned off.
fn can_pin() -> bool {
    cpu_count() >= 2
        && std::env::var("MCPLEX_BENCH_PIN").as_deref() != Ok("0")
        && Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Sets every thread of process `pid` to run on `cpus` (a `taskset` list).
fn set_affinity(pid: u32, cpus: &str) {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("run taskset");
    assert!(status.success(), "taskset -a -p -c {cpus} {pid} failed");
}

/// Applies `pinning` to this process and to the relays `relays`.
fn pin(pinning: &Pinning, relays: &[u32]) {
    set_affinity(std::process::id(), &pinning.bench);
    for relay in relays {
        set_affinity(*relay, &pinning.relay);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` probes benches; there is nothing to test here.
    }
    if let Some(at) = args.iter().position(|a| a == "--raw-relay") {
        return run_raw_relay(args[at + 1].parse().unwrap(), args[at + 2].parse().unwrap());
    }
    if args.iter().any(|a| a == "--fast-upstream") {
        return run_fast_upstream();
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}

async fn bench() {
    // `MCPLEX_BENCH_ONLY=search` runs the tool search rows alone (to compare builds on them quickly).
    if std::env::var("MCPLEX_BENCH_ONLY").as_deref() == Ok("rank") {
        return semantic_ranking_in_process(10_000);
    }
    if std::env::var("MCPLEX_BENCH_ONLY").as_deref() == Ok("search") {
        println!("| measurement | value |\n|---|---|");
        return tool_search(&http_client()).await;
    }
    let upstream = fast_upstream(1).await;
    let (mut raw_relay, raw_relay_addr) = start_raw_relay(upstream).await;
    let (sidecar, ready_after) = start_sidecar(&[upstream]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (idle_rss, _) = rss_and_cpu(sidecar.child.id());
    println!("| measurement | value |\n|---|---|");
    println!(
        "| start-up to ready (1 target) | {:.1} ms |",
        ready_after.as_secs_f64() * 1e3
    );
    println!("| RSS idle (1 target) | {idle_rss:.1} MiB |");

    let pinnable = can_pin();
    let relays = [raw_relay.id(), sidecar.child.id()];
    let mut runs = vec![(1usize, false), (16, false)];
    if pinnable {
        runs.insert(0, (1, true));
    }
    for (concurrency, pinned) in runs {
        if pinnable {
            pin(&if pinned { Pinning::pinned() } else { Pinning::unpinned() }, &relays);
        }
        let label = if pinned {
            format!("{concurrency} session(s), pinned")
        } else {
            format!("{concurrency} session(s)")
        };
        drive(upstream, "tool_000", concurrency, WARMUP).await;
        drive(sidecar.mcp, "t0_tool_000", concurrency, WARMUP).await;
        drive(raw_relay_addr, "tool_000", concurrency, WARMUP).await;
        // Interleaved rounds: drift on a shared VM hits all three paths alike; medians of rounds are reported.
        let mut rounds: Vec<Round> = Vec::new();
        for _ in 0..ROUNDS {
            let calls = calls_per_round(concurrency);
            let (direct, _) = drive(upstream, "tool_000", concurrency, calls).await;
            let (raw_cpu_before, raw_cpu_after, raw, raw_wall) =
                measured(raw_relay.id(), raw_relay_addr, "tool_000", concurrency, None).await;
            let (cpu_before, cpu_after, relayed, wall) =
                measured(sidecar.child.id(), sidecar.mcp, "t0_tool_000", concurrency, None).await;
            let per_call = |a: Duration, b: Duration| micros(b - a) / calls as f64;
            rounds.push(Round {
                p50: [
                    percentile_of(direct.clone(), 0.5),
                    percentile_of(raw.clone(), 0.5),
                    percentile_of(relayed.clone(), 0.5),
                ],
                p99: [
                    percentile_of(direct, 0.99),
                    percentile_of(raw, 0.99),
                    percentile_of(relayed, 0.99),
                ],
                cpu: [per_call(raw_cpu_before, raw_cpu_after), per_call(cpu_before, cpu_after)],
                throughput: [calls as f64 / raw_wall.as_secs_f64(), calls as f64 / wall.as_secs_f64()],
            });
        }
        for (which, pick) in [
            ("p50", (|r: &Round| r.p50) as fn(&Round) -> [f64; 3]),
            ("p99", |r: &Round| r.p99),
        ] {
            let [d, h, r] = [0, 1, 2].map(|i| median(rounds.iter().map(|round| pick(round)[i])));
            println!(
                "| tools/call {which}, {label}: direct / raw hyper relay / mcplex; added by relay / by mcplex | {d:.0} / {h:.0} / {r:.0} µs; +{:.0} / +{:.0} µs |",
                h - d,
                r - d
            );
        }
        let [raw_rate, rate] = [0, 1].map(|i| median(rounds.iter().map(|r| r.throughput[i])));
        // The ratio is taken per round (the two paths ran back to back) and its median reported, so a slow
        // moment of the shared VM in one round does not pair one path's good round with the other's bad one.
        let ratio = median(rounds.iter().map(|r| r.throughput[1] / r.throughput[0]));
        println!(
            "| tools/call throughput, {label}: raw hyper relay / mcplex | {raw_rate:.0} / {rate:.0} calls/s ({:.0} % median per round) |",
            100.0 * ratio
        );
        println!(
            "| CPU per call, {label}: raw hyper relay / mcplex | {:.0} µs / {:.0} µs |",
            median(rounds.iter().map(|r| r.cpu[0])),
            median(rounds.iter().map(|r| r.cpu[1]))
        );
    }

    // The same 16 sessions from a client in a process of its own, as an agent is in its pod: `wrk`, whose
    // one C thread costs a fraction of the in-process hyper client above, so the rounds tell the relays apart
    // rather than how the three share the two vCPUs with a heavy client.
    if pinnable {
        pin(&Pinning::unpinned(), &relays);
    }
    external_load_rounds(
        "16 connections from wrk, its own process",
        [
            (raw_relay.id(), raw_relay_addr, "tool_000"),
            (sidecar.child.id(), sidecar.mcp, "t0_tool_000"),
        ],
    )
    .await;

    // The layout of a pod: the agent (`wrk`) beside the relay, and the target in a process of its own (on a
    // cluster it is another pod, usually on another node), not the bench's two-thread runtime that also
    // serves the client above. A second raw relay and sidecar are put in front of that upstream.
    {
        let (mut upstream_process, remote) = start_upstream_process();
        let (mut remote_raw_relay, remote_raw_relay_addr) = start_raw_relay(remote).await;
        let (remote_sidecar, _) = start_sidecar(&[remote]).await;
        external_load_rounds(
            "16 connections from wrk, upstream in a process of its own",
            [
                (remote_raw_relay.id(), remote_raw_relay_addr, "tool_000"),
                (remote_sidecar.child.id(), remote_sidecar.mcp, "t0_tool_000"),
            ],
        )
        .await;
        drop(remote_sidecar);
        for child in [&mut remote_raw_relay, &mut upstream_process] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    // What metrics, traces and the audit trail cost: the sidecar above (call metrics on, no exporter) beside
    // one without call metrics, one exporting a span per call over OTLP (to a sink that accepts everything)
    // and one writing an audit line per call to a file; one session, interleaved rounds, so drift hits all alike.
    {
        let (quiet, _) = start_sidecar_with(&[upstream], &["--no-call-metrics"]).await;
        let sink = format!("env:OTEL_EXPORTER_OTLP_ENDPOINT=http://{upstream}");
        let (traced, _) = start_sidecar_with(&[upstream], &[sink.as_str()]).await;
        let audit_dir = tempfile::tempdir().unwrap();
        let audit_file = audit_dir.path().join("audit.jsonl");
        let (audited, _) = start_sidecar_with(&[upstream], &["--audit-log", audit_file.to_str().unwrap()]).await;
        side_by_side(
            &[(&quiet, None), (&sidecar, None), (&traced, None), (&audited, None)],
            "metrics off / metrics on / + OTLP span per call / + audit line per call",
        )
        .await;
        // The bookkeeping itself, without the noise of three processes: start, finish and time one call.
        let metrics = mcplex::metrics::Metrics::new(mcplex::metrics::MetricsOptions::default());
        let target: std::sync::Arc<str> = "t0".into();
        let timed = 200_000;
        let begun = Instant::now();
        for _ in 0..timed {
            let mut record = metrics.call(&target, "tools/call", Some("t0_tool_000"));
            record.finish(mcplex::metrics::CallOutcome::Ok);
        }
        println!(
            "| call metrics bookkeeping per call (in process, {timed} calls) | {:.2} µs |",
            micros(begun.elapsed()) / timed as f64
        );
        // What tracing off costs a call: reading the client's context (a header here) and passing it on.
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t0_tool_000", "_meta": meta}});
        let message = mcplex::protocol::jsonrpc::Message::parse(body.to_string().into()).unwrap();
        let begun = Instant::now();
        for _ in 0..timed {
            let trace = mcplex::telemetry::TraceContext::from_request(&headers, &message);
            if let Some(trace) = &trace {
                std::hint::black_box(trace.meta_values());
            }
            std::hint::black_box(&trace);
        }
        println!(
            "| tracing off: reading and passing on the client's trace context, per call (in process) | {:.2} µs |",
            micros(begun.elapsed()) / timed as f64
        );
    }

    // What pinning costs a call: nothing on the call path (digests are taken when lists are fetched), so a
    // sidecar enforcing pins (taken at first sight) is run beside the plain one; then the digests themselves.
    {
        let (pinned, _) = start_sidecar_yaml(&targets_yaml(&[upstream], "    pinning: enforce\n"), &[]).await;
        side_by_side(&[(&sidecar, None), (&pinned, None)], "pinning off / pinning enforce").await;
        // Tool search on: every tools/call is first looked at for find_tools and call_tool.
        let searching_yaml = format!("{}toolSearch: {{ visible: [\"*\"] }}\n", targets_yaml(&[upstream], ""));
        let (searching, _) = start_sidecar_yaml(&searching_yaml, &[]).await;
        side_by_side(&[(&sidecar, None), (&searching, None)], "tool search off / on").await;
        let tools: Vec<Value> = (0..1000)
            .map(|i| json!({"name": format!("tool_{i:03}"), "description": "a fast tool that answers at once, for benchmarks", "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}}}))
            .collect();
        let page = json!({"tools": tools}).to_string();
        let plain = mcplex::catalog::Namer::new("t0", Default::default());
        let reviews = 20;
        let begun = Instant::now();
        for _ in 0..reviews {
            let mut listed = mcplex::catalog::Listed::default();
            listed.add_page(mcplex::catalog::ItemKind::Tools, &page).unwrap();
            let mut book = mcplex::catalog::pins::PinBook::new(mcplex::catalog::pins::Pinning::Enforce, None);
            let digests = mcplex::catalog::pins::ListDigests::of(&listed);
            book.review(&mut listed, &digests, &plain, &plain);
            let digests = mcplex::catalog::pins::ListDigests::of(&listed);
            std::hint::black_box(book.review(&mut listed, &digests, &plain, &plain));
        }
        println!(
            "| pin review when a list is fetched (in process): digest of one ~150-byte tool definition, RFC 8785 + SHA-256 | {:.2} µs |",
            micros(begun.elapsed()) / (2 * reviews * 1000) as f64
        );
    }

    // What identity costs a call: the caller's JWT validated (ES256, keys from a file) and a token exchanged
    // for the target (the cache is warm after the first call), then the same with a Cedar policy, beside the
    // plain sidecar; one session, interleaved rounds.
    {
        let identity = BenchIdentity::new().await;
        let verified_yaml = format!(
            "{}{}",
            targets_yaml(&[upstream], &identity.exchange_yaml()),
            identity.inbound_yaml()
        );
        let (verified, _) = start_sidecar_yaml(&verified_yaml, &[]).await;
        let (governed, _) = start_sidecar_yaml(&format!("{verified_yaml}{}", BenchIdentity::POLICY_YAML), &[]).await;
        side_by_side(
            &[
                (&sidecar, None),
                (&verified, Some(identity.token)),
                (&governed, Some(identity.token)),
            ],
            "identity off / JWT + exchanged token (cache warm) / + Cedar policy",
        )
        .await;
        identity.in_process().await;
    }

    let client = http_client();
    // Idle session-era sessions: the cost of each, and whether it is returned when they end.
    let (before_sessions, _) = rss_and_cpu(sidecar.child.id());
    let mut ids = Vec::new();
    for i in 0..SESSIONS {
        let init = json!({"jsonrpc": "2.0", "id": i, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}});
        let mut request = http::Request::post(format!("http://{}/mcp", sidecar.mcp))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(init.to_string())))
            .unwrap();
        *request.uri_mut() = format!("http://{}/mcp", sidecar.mcp).parse().unwrap();
        let response = client.request(request).await.unwrap();
        ids.push(response.headers()["mcp-session-id"].to_str().unwrap().to_owned());
        response.into_body().collect().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (with_sessions, _) = rss_and_cpu(sidecar.child.id());
    for id in &ids {
        let request = http::Request::delete(format!("http://{}/mcp", sidecar.mcp))
            .header("mcp-session-id", id)
            .body(Full::new(Bytes::new()))
            .unwrap();
        client
            .request(request)
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap();
    }
    tokio::time::sleep(RETURN_WAIT).await;
    let (after_sessions, _) = rss_and_cpu(sidecar.child.id());
    println!(
        "| RSS: before / with {SESSIONS} idle sessions / after they ended | {before_sessions:.1} / {with_sessions:.1} / {after_sessions:.1} MiB ({:.1} KiB per session) |",
        (with_sessions - before_sessions) * 1024.0 / SESSIONS as f64
    );
    // A 10 MiB tool result: how far the peak RSS rises above what it was.
    let peak_before = status_mib(sidecar.child.id(), "VmHWM:");
    let body = send(&client, sidecar.mcp, modern_call(1, "t0_big")).await;
    assert!(body.len() > BIG_RESULT, "the big result came back whole");
    let peak_after = status_mib(sidecar.child.id(), "VmHWM:");
    tokio::time::sleep(RETURN_WAIT).await;
    let (after_big, _) = rss_and_cpu(sidecar.child.id());
    println!(
        "| peak RSS rise for one 10 MiB tool result (JSON answer); RSS 30 s later | {:.1} MiB ({:.1} x the result); {after_big:.1} MiB |",
        peak_after - peak_before,
        (peak_after - peak_before) / (BIG_RESULT as f64 / 1048576.0)
    );

    drop(sidecar);
    let _ = raw_relay.kill();
    let _ = raw_relay.wait();

    // tools/list over 10 targets x 50 tools.
    let mut targets = Vec::new();
    for _ in 0..10 {
        targets.push(fast_upstream(50).await);
    }
    let (sidecar, ready_after) = start_sidecar(&targets).await;
    println!(
        "| start-up to ready (10 targets x 50 tools) | {:.1} ms |",
        ready_after.as_secs_f64() * 1e3
    );
    let mut latencies = Vec::new();
    for i in 0..2_200 {
        let begun = Instant::now();
        let body = send(&client, sidecar.mcp, list_request()).await;
        if i == 0 {
            let parsed: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                parsed["result"]["tools"].as_array().map(Vec::len),
                Some(500),
                "all 500 tools in one page"
            );
        }
        if i >= 200 {
            latencies.push(begun.elapsed());
        }
    }
    latencies.sort();
    println!(
        "| tools/list, 500 merged tools (10 targets x 50), p50 / p99 | {:.0} µs / {:.0} µs |",
        micros(percentile(&latencies, 0.5)),
        micros(percentile(&latencies, 0.99))
    );
    let (rss, _) = rss_and_cpu(sidecar.child.id());
    println!("| RSS with 10 targets x 50 tools | {rss:.1} MiB |");
    drop(sidecar);

    // Peak RSS shows what reading every target's lists at once costs on top of holding them; the last row
    // enforces pins (taken at first sight), which adds a digest of every definition to each fetch.
    for (count, tools, pinning) in [
        (50usize, 2usize, false),
        (50, 100, false),
        (50, 1000, false),
        (50, 1000, true),
    ] {
        let mut targets = Vec::new();
        for _ in 0..count {
            targets.push(fast_upstream(tools).await);
        }
        let per_target = if pinning { "    pinning: enforce\n" } else { "" };
        let (sidecar, ready_after) = start_sidecar_yaml(&targets_yaml(&targets, per_target), &[]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (rss, _) = rss_and_cpu(sidecar.child.id());
        let peak = status_mib(sidecar.child.id(), "VmHWM:");
        let mut latencies = Vec::new();
        for i in 0..300 {
            let begun = Instant::now();
            send(&client, sidecar.mcp, list_request()).await;
            if i >= 50 {
                latencies.push(begun.elapsed());
            }
        }
        latencies.sort();
        println!(
            "| {count} targets x {tools} tools{}: ready / RSS / peak RSS / tools/list first page (500) p50 | {:.1} ms / {rss:.1} MiB / {peak:.1} MiB / {:.0} µs |",
            if pinning { ", pinning enforce" } else { "" },
            ready_after.as_secs_f64() * 1e3,
            micros(percentile(&latencies, 0.5)),
        );
    }

    tool_search(&client).await;
}

/// Words the bench's tool definitions are made of, so that no two tools read alike.
const WORDS: [&str; 48] = [
    "create",
    "list",
    "delete",
    "update",
    "read",
    "write",
    "search",
    "send",
    "fetch",
    "query",
    "issue",
    "file",
    "repository",
    "message",
    "channel",
    "calendar",
    "event",
    "weather",
    "forecast",
    "invoice",
    "customer",
    "order",
    "database",
    "table",
    "record",
    "image",
    "document",
    "page",
    "user",
    "team",
    "project",
    "ticket",
    "email",
    "payment",
    "report",
    "metric",
    "alert",
    "deployment",
    "cluster",
    "pod",
    "branch",
    "commit",
    "review",
    "note",
    "task",
    "map",
    "route",
    "price",
];

/// A tool definition of about 300 bytes whose words follow from `seed`.
fn varied_tool(target: usize, tool: usize) -> mcplex::catalog::Entry {
    let mut state = (target * 7919 + tool * 104_729 + 17) as u64;
    let mut word = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        WORDS[(state >> 33) as usize % WORDS.len()]
    };
    let name = format!("{}_{}_{}", word(), word(), tool);
    let description: Vec<&str> = (0..14).map(|_| word()).collect();
    let (first, second) = (word(), word());
    let definition = json!({"name": name, "description": description.join(" "), "inputSchema": {"type": "object",
        "properties": {first: {"type": "string", "description": format!("the {first} to {second}")}}}});
    mcplex::catalog::Entry {
        exposed: format!("t{target}_{name}").into(),
        target: format!("t{target}").into(),
        original: name.into(),
        json: definition.to_string().into(),
        params: None,
        in_sessions: true,
    }
}

/// The semantic ranking alone, in process: `count` tools, each with a vector of its own (as a real
/// catalog's distinct descriptions have), of all-MiniLM-L6-v2's 384 dimensions. The components are
/// pseudo-random: this times the ranking, whose cost does not depend on what the vectors mean.
fn semantic_ranking_in_process(count: usize) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut unit_vector = || {
        let raw: Vec<f32> = (0..384)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
        raw.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let mut store = mcplex::catalog::search::VectorRows::default();
    let tools = (0..count)
        .map(|i| {
            let name: std::sync::Arc<str> = format!("t{i}_tool").into();
            (name, store.push(&unit_vector()).unwrap())
        })
        .collect();
    store.shrink_to_fit();
    let vectors = mcplex::catalog::search::ToolVectors::new(tools, std::sync::Arc::new(store));
    let queries: Vec<Vec<f32>> = (0..300).map(|_| unit_vector()).collect();
    let mut latencies: Vec<Duration> = queries
        .iter()
        .map(|query| {
            let begun = Instant::now();
            std::hint::black_box(vectors.rank(query).map(|ranked| ranked.take(100).count()));
            begun.elapsed()
        })
        .collect();
    latencies.sort();
    println!(
        "| semantic ranking in process, {count} distinct 384-dimension vectors: p50 / p99; held | {:.0} / {:.0} µs; {:.2} MB |",
        micros(percentile(&latencies, 0.5)),
        micros(percentile(&latencies, 0.99)),
        vectors.heap_bytes() as f64 / 1e6,
    );
}

/// Tool search at scale: the lexical index of 10,000 tools built and searched in process, then `find_tools`
/// through a sidecar in front of the same tools on 1,000 targets, beside the same sidecar without tool search.
async fn tool_search(client: &HttpClient) {
    let tools: Vec<mcplex::catalog::Entry> = (0..1000)
        .flat_map(|t| (0..10).map(move |i| varied_tool(t, i)))
        .collect();
    let json_bytes: usize = tools.iter().map(|e| e.json.len()).sum();
    let begun = Instant::now();
    let index = mcplex::catalog::search::SearchIndex::build(&tools, &Default::default());
    let built = begun.elapsed();
    // Five words of a description no tool has (its seed is past every tool's).
    let queries: Vec<String> = (0..1000)
        .map(|i| {
            let t = varied_tool(i, 1000 + i);
            let value: Value = serde_json::from_str(&t.json).unwrap();
            value["description"]
                .as_str()
                .unwrap()
                .split(' ')
                .take(5)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut latencies: Vec<Duration> = queries
        .iter()
        .map(|query| {
            let begun = Instant::now();
            std::hint::black_box(index.search(query).take(8).count());
            begun.elapsed()
        })
        .collect();
    latencies.sort();
    println!(
        "| tool search in process, 1,000 targets x 10 tools ({:.1} MB of definitions): index built; search p50 / p99 | {:.0} ms; {:.0} / {:.0} µs |",
        json_bytes as f64 / 1e6,
        built.as_secs_f64() * 1e3,
        micros(percentile(&latencies, 0.5)),
        micros(percentile(&latencies, 0.99)),
    );
    drop(index);
    semantic_ranking_in_process(tools.len());

    let mut targets = Vec::new();
    for target in 0..1000 {
        targets.push(varied_upstream(target).await);
    }
    let plain = targets_yaml(&targets, "");
    let (without, _) = start_sidecar_yaml(&plain, &[]).await;
    let (with, ready_after) = start_sidecar_yaml(&format!("{plain}toolSearch: {{ visible: [] }}\n"), &[]).await;
    // The first search waits for the index built in the background.
    let begun = Instant::now();
    let first = send(client, with.mcp, find_request(with.mcp, 0, &queries[0])).await;
    let first_answer = begun.elapsed();
    assert!(
        String::from_utf8_lossy(&first).contains("structuredContent"),
        "find_tools answered"
    );
    // Every target joins the index before the searches are timed.
    wait_for_indexed(client, with.admin, tools.len()).await;
    let before = search_times(client, with.admin).await;
    let mut latencies = Vec::new();
    for (id, query) in (1..).zip(&queries) {
        let begun = Instant::now();
        send(client, with.mcp, find_request(with.mcp, id, query)).await;
        latencies.push(begun.elapsed());
    }
    let inside = search_times(client, with.admin).await.since(&before);
    latencies.sort();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_without, _) = rss_and_cpu(without.child.id());
    let (rss_with, _) = rss_and_cpu(with.child.id());
    println!(
        "| find_tools through the sidecar, 1,000 targets x 10 tools: ready; first answer (index built after ready); p50 / p99; mean inside the sidecar | {:.0} ms; {:.0} ms; {:.0} / {:.0} µs; {:.0} µs |",
        ready_after.as_secs_f64() * 1e3,
        first_answer.as_secs_f64() * 1e3,
        micros(percentile(&latencies, 0.5)),
        micros(percentile(&latencies, 0.99)),
        inside.search_mean() * 1e6,
    );
    println!("| RSS, 1,000 targets x 10 tools: tool search off / on | {rss_without:.1} / {rss_with:.1} MiB |");
    drop((without, with));
    semantic_search(client, &plain, tools.len(), &queries[..300]).await;

    // The size of the issue's trial: 1,250 targets and 12,500 tools behind one sidecar in search mode.
    let mut targets = Vec::new();
    for _ in 0..1250 {
        targets.push(fast_upstream(10).await);
    }
    let yaml = format!("{}toolSearch: {{ visible: [] }}\n", targets_yaml(&targets, ""));
    let (large, ready_after) = start_sidecar_yaml(&yaml, &[]).await;
    // Targets past the start-up deadline join later; the index follows them.
    for attempt in 0.. {
        let answer = send(client, large.mcp, find_request(large.mcp, attempt, "a fast tool")).await;
        if String::from_utf8_lossy(&answer).contains("structuredContent") {
            break;
        }
        assert!(
            attempt < 300,
            "find_tools never answered: {}",
            String::from_utf8_lossy(&answer)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss, _) = rss_and_cpu(large.child.id());
    let peak = status_mib(large.child.id(), "VmHWM:");
    // Idle upstream connections close after the pool's idle time (4 s) and jemalloc returns their memory.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (settled, _) = rss_and_cpu(large.child.id());
    println!(
        "| 1,250 targets x 10 tools, tool search on: ready; RSS; peak RSS; RSS 12 s later (idle connections closed) | {:.0} ms; {rss:.1} MiB; {peak:.1} MiB; {settled:.1} MiB |",
        ready_after.as_secs_f64() * 1e3
    );
}

/// Waits (at most 60 s) until the sidecar's latest tool index holds `tools` tools.
async fn wait_for_indexed(client: &HttpClient, admin: SocketAddr, tools: usize) {
    let begun = Instant::now();
    loop {
        let status: Value = admin_json(client, admin, "/status").await;
        if status["toolSearch"]["indexedTools"].as_u64() == Some(tools as u64) {
            return;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(60),
            "all {tools} tools indexed within 60 s: {}",
            status["toolSearch"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sidecar's own account of its searches, from `/metrics`: how many, and the seconds they took in
/// all, whole and waiting for the query's embedding.
#[derive(Default)]
struct SearchTimes {
    searches: f64,
    seconds: f64,
    embedding_seconds: f64,
}

impl SearchTimes {
    /// What was added since `earlier`.
    fn since(&self, earlier: &SearchTimes) -> SearchTimes {
        SearchTimes {
            searches: self.searches - earlier.searches,
            seconds: self.seconds - earlier.seconds,
            embedding_seconds: self.embedding_seconds - earlier.embedding_seconds,
        }
    }

    fn search_mean(&self) -> f64 {
        self.seconds / self.searches.max(1.0)
    }

    fn embedding_mean(&self) -> f64 {
        self.embedding_seconds / self.searches.max(1.0)
    }
}

/// The sidecar's search times read from its `/metrics` page.
async fn search_times(client: &HttpClient, admin: SocketAddr) -> SearchTimes {
    let body = admin_get(client, admin, "/metrics").await;
    let mut times = SearchTimes::default();
    for line in String::from_utf8_lossy(&body).lines() {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        match name {
            "mcplex_tool_search_duration_seconds_count" => times.searches = value,
            "mcplex_tool_search_duration_seconds_sum" => times.seconds = value,
            "mcplex_tool_search_query_embedding_seconds_sum" => times.embedding_seconds = value,
            _ => {}
        }
    }
    times
}

/// The semantic signal at the same size: `find_tools` through a sidecar whose `toolSearch.embeddings` is a
/// real all-MiniLM-L6-v2 behind an OpenAI-compatible endpoint, beside that endpoint's own time for the same
/// queries.
async fn semantic_search(client: &HttpClient, targets: &str, tools: usize, queries: &[String]) {
    let Some((_embedder, url)) = embedder().await else {
        return;
    };
    let yaml =
        format!("{targets}toolSearch: {{ visible: [], embeddings: {{ url: \"{url}\", model: all-MiniLM-L6-v2 }} }}\n");
    let (sidecar, _) = start_sidecar_yaml(&yaml, &[]).await;
    let begun = Instant::now();
    loop {
        let status: Value = admin_json(client, sidecar.admin, "/status").await;
        let semantic = &status["toolSearch"]["semantic"];
        if semantic["vectors"].as_u64() == Some(tools as u64) && semantic["vectors"] == semantic["of"] {
            break;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(900),
            "vectors within 900 s: {semantic}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let vectors_after = begun.elapsed();
    let before = search_times(client, sidecar.admin).await;
    let mut searches = Vec::new();
    for (id, query) in (1..).zip(queries) {
        let begun = Instant::now();
        let answer = send(client, sidecar.mcp, find_request(sidecar.mcp, id, query)).await;
        searches.push(begun.elapsed());
        assert!(String::from_utf8_lossy(&answer).contains("structuredContent"));
    }
    let inside = search_times(client, sidecar.admin).await.since(&before);
    searches.sort();
    // The endpoint alone, asked for the same queries' vectors as the sidecar asks for them.
    let endpoint: http::Uri = url.parse().unwrap();
    let mut embeddings = Vec::new();
    for query in queries {
        let body = json!({"input": [query], "model": "all-MiniLM-L6-v2"});
        let request = http::Request::post(endpoint.clone())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let begun = Instant::now();
        let response = client.request(request).await.unwrap();
        response.into_body().collect().await.unwrap();
        embeddings.push(begun.elapsed());
    }
    embeddings.sort();
    let (rss, _) = rss_and_cpu(sidecar.child.id());
    let status: Value = admin_json(client, sidecar.admin, "/status").await;
    let megabytes = |value: &Value| value.as_f64().unwrap_or(0.0) / 1e6;
    let held = format!(
        "{:.2} + {:.2} MB of index and vectors for {:.2} MB of tools' JSON",
        megabytes(&status["toolSearch"]["indexBytes"]),
        megabytes(&status["toolSearch"]["semantic"]["vectorBytes"]),
        megabytes(&status["toolSearch"]["toolsJsonBytes"]),
    );
    println!(
        "| find_tools with the semantic signal, 1,000 targets x 10 tools ({tools} distinct tool texts embedded): vectors ready after; p50 / p99; mean inside the sidecar, of which the query's embedding; the endpoint's own p50 / p99 for the same queries; RSS; held | {:.1} s; {:.1} / {:.1} ms; {:.2} ms, {:.2} ms; {:.1} / {:.1} ms; {rss:.1} MiB; {held} |",
        vectors_after.as_secs_f64(),
        percentile(&searches, 0.5).as_secs_f64() * 1e3,
        percentile(&searches, 0.99).as_secs_f64() * 1e3,
        inside.search_mean() * 1e3,
        inside.embedding_mean() * 1e3,
        percentile(&embeddings, 0.5).as_secs_f64() * 1e3,
        percentile(&embeddings, 0.99).as_secs_f64() * 1e3,
    );
}

/// A GET of the admin endpoint's JSON.
async fn admin_json(client: &HttpClient, admin: SocketAddr, path: &str) -> Value {
    serde_json::from_slice(&admin_get(client, admin, path).await).unwrap_or_default()
}

/// The body of a GET of the admin endpoint.
async fn admin_get(client: &HttpClient, admin: SocketAddr, path: &str) -> Bytes {
    let request = http::Request::get(format!("http://{admin}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    response.into_body().collect().await.unwrap().to_bytes()
}

/// A 2026-07-28 `find_tools` call to the sidecar at `mcp`.
fn find_request(mcp: SocketAddr, id: usize, query: &str) -> http::Request<Full<Bytes>> {
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "find_tools", "arguments": {"query": query}, "_meta": meta}});
    http::Request::post(format!("http://{mcp}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "find_tools")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}
