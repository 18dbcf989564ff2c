//! The `mcplex` binary: `run` and `check`. (The demo and the example servers are `mcplex-examples`.)
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand, ValueEnum};
use mcplex::app::{Options, Sidecar};
use mcplex::audit::{AuditOptions, AuditSink};
use mcplex::telemetry::Exporter;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// jemalloc's background thread gives freed memory back to the system after a few seconds (glibc's
/// allocator keeps what sessions and large answers used), so the RSS falls again after a burst.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "mcplex",
    version,
    about = "One MCP endpoint on loopback in front of many MCP servers"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Log filter (tracing syntax), e.g. `info` or `mcplex=debug`.
    #[arg(long, global = true, env = "MCPLEX_LOG", default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP on loopback, multiplexing the targets in the config (applied live on change).
    Run {
        /// The config file, inside the mounted ConfigMap directory.
        #[arg(long, default_value = "/etc/mcplex/config/config.yaml")]
        config: PathBuf,
        /// MCP address (loopback only).
        #[arg(long, default_value = mcplex::app::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Admin address (/healthz, /readyz, /status, /metrics).
        #[arg(long, default_value = mcplex::app::DEFAULT_ADMIN)]
        admin: SocketAddr,
        /// Items per page of merged lists.
        #[arg(long, default_value_t = 500)]
        page_size: usize,
        /// Seconds in-flight calls get to finish at shutdown.
        #[arg(long, default_value_t = 20)]
        drain_seconds: u64,
        /// Milliseconds a target's first fetch may delay readiness; a slower target joins later.
        #[arg(long, default_value_t = 1500)]
        startup_deadline_ms: u64,
        /// Session-era client sessions open at once.
        #[arg(long, default_value_t = mcplex::downstream::session_store::DEFAULT_MAX_SESSIONS)]
        max_sessions: usize,
        /// MCP requests handled at once.
        #[arg(long, default_value_t = mcplex::downstream::handler::DEFAULT_MAX_IN_FLIGHT)]
        max_in_flight: usize,
        /// SSE streams open at once.
        #[arg(long, default_value_t = mcplex::downstream::handler::DEFAULT_MAX_STREAMS)]
        max_streams: usize,
        /// Connections to the MCP endpoint at once.
        #[arg(long, default_value_t = 128)]
        max_connections: usize,
        /// MiB of messages held at once (request bodies, targets' answers counted twice); a request
        /// that needs more gets a clear error.
        #[arg(long, default_value_t = mcplex::budget::DEFAULT_BUDGET_BYTES / (1024 * 1024))]
        message_budget_mib: usize,
        /// Serve `/status` (target URLs and errors) to any client of the admin port, not only to loopback.
        #[arg(long)]
        public_status: bool,
        /// Give up to N exposed tool names their own series in mcplex_tool_calls_total (0: off; the rest
        /// are counted as `_other`).
        #[arg(long, default_value_t = 0)]
        metrics_tool_names: usize,
        /// Do not count or time routed requests (for measuring what the metrics cost).
        #[arg(long)]
        no_call_metrics: bool,
        /// The agent role this pod plays: only the targets and tools of `profiles.<NAME>` are exposed.
        #[arg(long, env = "MCPLEX_PROFILE")]
        profile: Option<String>,
        /// Write one JSON line per tool call, prompt get and resource read to PATH (`-`: standard output).
        #[arg(long, value_name = "PATH")]
        audit_log: Option<PathBuf>,
        /// Add the SHA-256 of each call's arguments to its audit line (arguments are never written).
        #[arg(long)]
        audit_hash_arguments: bool,
    },
    /// Fetch every target of a config as the sidecar would and print the `pins` block of each (the SHA-256
    /// of every tool and prompt definition), ready to paste into the config.
    Pins {
        /// The config file.
        path: PathBuf,
        /// Apply this profile's targets and tool filter (as `mcplex run --profile` would) to the notes.
        #[arg(long)]
        profile: Option<String>,
        /// Compare what the targets list with the config's pins instead, and fail (exit status 2) when a
        /// listed definition differs from its pin or is not pinned.
        #[arg(long)]
        check: bool,
    },
    /// Serve a stdio MCP server over Streamable HTTP in both eras (a server process per client session, a
    /// warm pool for 2026-07-28 requests): `mcplex serve --listen ADDR [--tls-cert F --tls-key F
    /// [--client-ca F]] -- COMMAND [ARGS...]`; or put the same checks in front of an HTTP MCP server in the
    /// pod with `--upstream URL`. Without `--client-ca` or a `--config` with `inbound.jwt` it checks no
    /// caller, so it listens on loopback only.
    Serve {
        /// Address to listen on (beyond loopback only when callers are checked).
        #[arg(long, default_value = "127.0.0.1:15310")]
        listen: SocketAddr,
        #[command(flatten)]
        tls: mcplex::net::tls::ServerTlsFlags,
        /// A config file whose `inbound.jwt` says which bearer tokens callers must present (issuer, this
        /// server's audience, the issuer's keys) and whose `policy` says who may call what, as for the
        /// sidecar (the served server is the target `server`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write one JSON line per tool call, prompt get and resource read, with its caller, to PATH
        /// (`-`: standard output).
        #[arg(long, value_name = "PATH")]
        audit_log: Option<PathBuf>,
        /// Add the SHA-256 of each call's arguments to its audit line (arguments are never written).
        #[arg(long)]
        audit_hash_arguments: bool,
        /// Serve `/healthz` and `/metrics` on this address too.
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// Client sessions (so server processes) at once.
        #[arg(long, default_value_t = 64)]
        max_sessions: usize,
        /// Longest wait for a server process's answer to a request.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        call_timeout: Duration,
        /// Longest wait for a new server process to start and answer `initialize`.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        start_timeout: Duration,
        /// Warm server processes serving 2026-07-28 requests at once (each started once and reused).
        #[arg(long, default_value = "4")]
        pool: std::num::NonZeroUsize,
        /// A session its client has not used this long ends, and its process with it.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        idle: Duration,
        /// Front this HTTP MCP server (its URL, as `http://127.0.0.1:8080/mcp`) instead of running a command.
        #[arg(long, conflicts_with = "command")]
        upstream: Option<http::Uri>,
        /// With `--upstream`: pass the caller's FIELD (`sub`, `act`, `serviceAccount` or `namespace`) to the
        /// server in the header NAME (`FIELD=NAME`; repeatable). A client's own header of that name is dropped.
        #[arg(long, value_name = "FIELD=NAME", requires = "upstream", value_parser = caller_header)]
        caller_header: Vec<mcplex::http_front::CallerHeader>,
        /// The stdio server: a program and its arguments.
        #[arg(last = true, required_unless_present = "upstream", num_args = 1..)]
        command: Vec<std::ffi::OsString>,
    },
    /// Copy this binary into DIR (as `DIR/mcplex`): how the webhook's init container brings
    /// `mcplex serve` into a pod whose image is the MCP server's own.
    Install {
        /// The directory (a volume shared with the server's container).
        dir: PathBuf,
    },
    /// Validate a config file and print every problem with its key path.
    Check {
        /// The config file.
        path: PathBuf,
    },
}

/// Reads `--caller-header FIELD=NAME`.
fn caller_header(value: &str) -> Result<mcplex::http_front::CallerHeader, String> {
    const FIELDS: [&str; 4] = ["sub", "act", "serviceAccount", "namespace"];
    let (field, name) = value
        .split_once('=')
        .ok_or_else(|| format!("`{value}` is not FIELD=NAME"))?;
    if !FIELDS.contains(&field) {
        return Err(format!(
            "`{field}` is not a field of the caller; use one of {}",
            FIELDS.join(", ")
        ));
    }
    let name = http::HeaderName::try_from(name).map_err(|_| format!("`{name}` is not a header name"))?;
    Ok(mcplex::http_front::CallerHeader {
        field: field.to_owned(),
        name,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Built before the runtime: the exporter's HTTP client and batch thread are its own.
    let exporter = match Exporter::from_env() {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    // `mcplex pins` prints what it found; the targets' comings and goings are noise there unless asked for.
    let quiet = matches!(cli.command, Command::Pins { .. }) && cli.log_level == "info";
    let level = if quiet { "warn" } else { &cli.log_level };
    init_logging(cli.log_format, level, exporter.as_ref());
    let code = mcplex::app::run_command(execute(cli.command, exporter.is_some()));
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
    code
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// The sidecar could not start.
    #[error(transparent)]
    Start(#[from] mcplex::app::StartError),
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] mcplex::config::ConfigError),
    /// `mcplex pins` could not read every target.
    #[error("{0} target(s) could not be listed; their pins are missing above")]
    Unlisted(usize),
    /// `mcplex install` could not copy the binary.
    #[error("cannot install mcplex into {dir}: {source}")]
    Install {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `mcplex serve` was asked to listen beyond loopback without checking its callers.
    #[error(
        "mcplex serve listens beyond loopback ({0}) only when it checks its callers: give --client-ca (with --tls-cert and --tls-key) or a --config with inbound.jwt"
    )]
    ServeNotLoopback(SocketAddr),
    /// The audit log cannot be opened.
    #[error(transparent)]
    Audit(#[from] mcplex::audit::AuditError),
    /// `--upstream` is not an absolute http(s) URL.
    #[error("--upstream `{0}` must be an absolute http:// or https:// URL, as http://127.0.0.1:8080/mcp")]
    UpstreamUrl(http::Uri),
    /// No randomness for the key that seals 2026-07-28 `requestState`s.
    #[error(transparent)]
    Randomness(#[from] mcplex::parking::NoRandomness),
    /// `mcplex serve`'s TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] mcplex::net::tls::TlsError),
    /// `mcplex serve` could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `mcplex pins --check` found definitions that pinning would hold back or flag.
    #[error("{0} definition(s) differ from the config's pins or are not pinned")]
    Drifting(usize),
}

/// The audit settings of `--audit-log` (`-` for standard output) and `--audit-hash-arguments`.
fn audit_options(audit_log: Option<PathBuf>, hash_arguments: bool) -> AuditOptions {
    AuditOptions {
        sink: audit_log.map(|path| match path.to_str() {
            Some("-") => AuditSink::Stdout,
            _ => AuditSink::File(path),
        }),
        hash_arguments,
    }
}

async fn execute(command: Command, tracing: bool) -> Result<(), CliError> {
    match command {
        Command::Run {
            config,
            listen,
            admin,
            page_size,
            drain_seconds,
            startup_deadline_ms,
            max_sessions,
            max_in_flight,
            max_streams,
            max_connections,
            message_budget_mib,
            public_status,
            metrics_tool_names,
            no_call_metrics,
            profile,
            audit_log,
            audit_hash_arguments,
        } => {
            let mut options = Options::new(config);
            options.listen = listen;
            options.admin = admin;
            options.page_size = page_size;
            options.drain = Duration::from_secs(drain_seconds);
            options.startup_deadline = Duration::from_millis(startup_deadline_ms);
            options.limits.max_sessions = max_sessions;
            options.limits.max_in_flight = max_in_flight;
            options.limits.max_streams = max_streams;
            options.connections.max_connections = max_connections;
            options.message_budget = message_budget_mib * 1024 * 1024;
            options.metrics.tool_names = metrics_tool_names;
            options.metrics.calls = !no_call_metrics;
            if public_status {
                options.status_access = mcplex::admin::StatusAccess::Anyone;
            }
            options.tracing = tracing;
            options.profile = profile;
            options.audit = audit_options(audit_log, audit_hash_arguments);
            let sidecar = Sidecar::start(options).await?;
            mcplex::app::wait_for_signal().await;
            sidecar.stop().await;
            Ok(())
        }
        Command::Serve {
            listen,
            tls,
            config,
            audit_log,
            audit_hash_arguments,
            admin,
            max_sessions,
            call_timeout,
            start_timeout,
            idle,
            pool,
            upstream,
            caller_header,
            mut command,
        } => {
            let (inbound, policy) = match &config {
                Some(path) => {
                    let config = mcplex::config::load(path)?.0;
                    (config.inbound, config.policy)
                }
                None => (None, None),
            };
            let audit = mcplex::audit::AuditLog::open(&audit_options(audit_log, audit_hash_arguments))?;
            let checks = mcplex::server_end::PolicyAndAudit {
                policy,
                audit: Arc::new(audit),
            };
            if !listen.ip().is_loopback() && tls.client_ca.is_none() && inbound.is_none() {
                return Err(CliError::ServeNotLoopback(listen));
            }
            let tls = tls.config()?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|source| CliError::Listen { addr: listen, source })?;
            let stop = tokio_util::sync::CancellationToken::new();
            let checks: Arc<dyn mcplex::child::Checks> = Arc::new(checks);
            let front: mcplex::server_end::Front = match upstream {
                Some(upstream) => {
                    let scheme = upstream.scheme_str();
                    if !matches!(scheme, Some("http" | "https")) || upstream.authority().is_none() {
                        return Err(CliError::UpstreamUrl(upstream));
                    }
                    let limits = mcplex::http_front::HttpFrontLimits {
                        call_timeout,
                        max_body: mcplex::child::FrontLimits::default().max_body,
                        max_sessions,
                    };
                    mcplex::http_front::HttpFront::new(upstream, limits, Some(checks), caller_header)?.into()
                }
                None => {
                    let program = command.remove(0);
                    let server = mcplex::child::ServerCommand { program, args: command };
                    let limits = mcplex::child::FrontLimits {
                        max_sessions,
                        call_timeout,
                        start_timeout,
                        idle,
                        pool: pool.get(),
                        ..Default::default()
                    };
                    mcplex::child::StdioFront::new(server, limits, Some(checks), stop.clone())?.into()
                }
            };
            tracing::info!(%listen, "mcplex serve: listening");
            if let Some(admin) = admin {
                let listener = tokio::net::TcpListener::bind(admin)
                    .await
                    .map_err(|source| CliError::Listen { addr: admin, source })?;
                tokio::spawn(mcplex::server_end::admin(listener, front.clone(), stop.clone()));
            }
            let end = mcplex::server_end::ServerEnd::new(front, inbound);
            let serving = tokio::spawn(mcplex::server_end::serve(listener, tls, end, stop.clone()));
            mcplex::app::wait_for_signal().await;
            stop.cancel();
            let _ = serving.await;
            Ok(())
        }
        Command::Install { dir } => {
            use std::os::unix::fs::PermissionsExt;
            let fail = |source| CliError::Install {
                dir: dir.clone(),
                source,
            };
            let target = dir.join("mcplex");
            std::fs::copy(std::env::current_exe().map_err(fail)?, &target).map_err(fail)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
            println!("installed {}", target.display());
            Ok(())
        }
        Command::Pins { path, profile, check } => {
            let (config, _) = mcplex::config::load(&path)?;
            let config = mcplex::config::select_profile(config, profile.as_deref(), &path)?;
            let scan = mcplex::route::PinScan::run(&config).await;
            if check {
                let (report, drifting) = scan.check();
                print!("{report}");
                if drifting > 0 {
                    return Err(CliError::Drifting(drifting));
                }
            } else {
                print!("{}", scan.yaml());
            }
            match scan.incomplete() {
                0 => Ok(()),
                unlisted => Err(CliError::Unlisted(unlisted)),
            }
        }
        Command::Check { path } => {
            let (config, _) = mcplex::config::load(&path)?;
            println!("{}: OK ({} target(s))", path.display(), config.targets.len());
            for target in &config.targets {
                let prefix = if target.prefix.is_empty() {
                    "(none)".to_string()
                } else {
                    target.prefix.clone()
                };
                let pinning = match (target.pinning, &target.pins) {
                    (mcplex::config::schema::Pinning::Off, _) => String::new(),
                    (mode, Some(pins)) => format!(
                        "  pinning {} ({} tool(s), {} prompt(s) pinned)",
                        mode.as_str(),
                        pins.tools.len(),
                        pins.prompts.len()
                    ),
                    (mode, None) => format!("  pinning {} (pins what it first lists)", mode.as_str()),
                };
                println!(
                    "  {}  {}  prefix {}  timeout {:?}  protocol {:?}{pinning}",
                    target.name, target.url, prefix, target.timeout, target.protocol
                );
            }
            for (name, profile) in &config.profiles {
                println!("  profile {name}: targets {}", profile.targets.join(", "));
            }
            if let Some(jwt) = &config.inbound {
                println!(
                    "  inbound: JWT from {} for {} (keys: {})",
                    jwt.issuer,
                    jwt.audiences.join(", "),
                    jwt.keys
                );
            }
            if config.policy.is_some() {
                println!("  policy: Cedar (calls not permitted are denied)");
            }
            // Tokens are projected when a pod is created, so pods must ask for every audience up front.
            let own = config
                .targets
                .iter()
                .filter_map(|t| t.auth.as_ref()?.service_account_token.as_ref())
                .filter(|token| token.path.is_none())
                .map(|token| token.audience.as_str());
            // A token exchange sends the pod's token for the authorization server as its actor.
            let actors = config
                .targets
                .iter()
                .filter_map(|t| t.auth.as_ref()?.token_exchange.as_ref())
                .filter(|exchange| exchange.actor_path.is_none())
                .filter_map(|exchange| exchange.actor_audience.as_deref());
            // Lists of an exchange target may go with the pod's own token for its audience (withoutCaller).
            let listing = config.targets.iter().filter_map(|t| {
                match t.auth.as_ref()?.token_exchange.as_ref()?.without_caller.as_ref()? {
                    mcplex::config::schema::WithoutCaller::ServiceAccountToken(token) if token.path.is_none() => {
                        Some(token.audience.as_str())
                    }
                    _ => None,
                }
            });
            let mut audiences: Vec<&str> = own.chain(actors).chain(listing).collect();
            audiences.sort_unstable();
            audiences.dedup();
            if !audiences.is_empty() {
                println!(
                    "pods using this config need the annotation  mcplex.dev/token-audiences: \"{}\"",
                    audiences.join(",")
                );
            }
            Ok(())
        }
    }
}

fn init_logging(format: LogFormat, level: &str, exporter: Option<&Exporter>) {
    // `Targets` takes `level` or `target=level,...` directives without pulling in a regex engine
    // (EnvFilter's span-field filters are not needed here, and its matcher costs binary size and memory).
    let filter = level
        .parse::<tracing_subscriber::filter::Targets>()
        .unwrap_or_else(|_| tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO));
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log = match format {
        LogFormat::Human => log.boxed(),
        LogFormat::Json => log.json().flatten_event(true).boxed(),
    };
    // The log level applies to the log only: call spans reach the exporter whatever it is.
    tracing_subscriber::registry()
        .with(log.with_filter(filter))
        .with(exporter.map(Exporter::layer))
        .init();
}
