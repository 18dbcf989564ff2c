//! The `mcplex` binary: `run`, `check`, `demo` and `example-server`.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand, ValueEnum};
use mcplex::app::{Options, Sidecar};
use mcplex::examples::Example;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

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
    #[arg(long, global = true, env = "MCPLEX_LOG", default_value = "info,rmcp=warn")]
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
    },
    /// Validate a config file and print every problem with its key path.
    Check {
        /// The config file.
        path: PathBuf,
    },
    /// Start the math and date example servers and the sidecar in front of them.
    Demo {
        /// MCP address (loopback only).
        #[arg(long, default_value = mcplex::app::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Admin address.
        #[arg(long, default_value = "127.0.0.1:15302")]
        admin: SocketAddr,
    },
    /// Run one example MCP server (for the Kubernetes examples and tests).
    ExampleServer {
        /// Which server.
        #[arg(value_enum)]
        which: Example,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// PEM certificate: serve HTTPS.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// PEM CA: require client certificates signed by it (mTLS).
        #[arg(long, requires = "tls_cert")]
        client_ca: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    // The sidecar serves one agent: a single-threaded runtime avoids cross-thread wake-ups, which cost
    // more per call than the work itself at the loads a pod sees (BENCHMARKS.md).
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

async fn execute(command: Command) -> Result<(), String> {
    match command {
        Command::Run {
            config,
            listen,
            admin,
            page_size,
            drain_seconds,
        } => {
            let mut options = Options::new(config);
            options.listen = listen;
            options.admin = admin;
            options.page_size = page_size;
            options.drain = std::time::Duration::from_secs(drain_seconds);
            let sidecar = Sidecar::start(options).await.map_err(|e| e.to_string())?;
            mcplex::app::wait_for_signal().await;
            sidecar.stop().await;
            Ok(())
        }
        Command::Check { path } => {
            let (config, _) = mcplex::config::load(&path).map_err(|e| e.to_string())?;
            println!("{}: OK ({} target(s))", path.display(), config.targets.len());
            for target in &config.targets {
                let prefix = if target.prefix.is_empty() {
                    "(none)".to_string()
                } else {
                    target.prefix.clone()
                };
                println!(
                    "  {}  {}  prefix {}  timeout {:?}  protocol {:?}",
                    target.name, target.url, prefix, target.timeout, target.protocol
                );
            }
            Ok(())
        }
        Command::Demo { listen, admin } => mcplex::demo::run(listen, admin).await,
        Command::ExampleServer {
            which,
            listen,
            tls_cert,
            tls_key,
            client_ca,
        } => {
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(
                    mcplex::server_tls::server_config(&cert, &key, client_ca.as_deref()).map_err(|e| e.to_string())?,
                ),
                _ => None,
            };
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            tracing::info!(example = ?which, %listen, tls = tls.is_some(), "example MCP server listening at /mcp");
            let shutdown = CancellationToken::new();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                mcplex::app::wait_for_signal().await;
                stop.cancel();
            });
            mcplex::examples::run(which, listener, tls, shutdown).await;
            Ok(())
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
