//! The `mcplex-examples` binary: runs one example MCP server, or the demo (math and date behind the sidecar).
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use mcplex_examples::Example;
use std::net::SocketAddr;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "mcplex-examples", version, about = "Example MCP servers and the mcplex demo")]
struct Cli {
    /// Log filter (tracing syntax), e.g. `info` or `mcplex=debug`.
    #[arg(long, global = true, env = "MCPLEX_LOG", default_value = "info,rmcp=warn")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one example MCP server at `/mcp`.
    Serve {
        /// Which server.
        #[arg(value_enum)]
        which: Example,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        tls: mcplex::net::tls::ServerTlsFlags,
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
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// The TLS files could not be used.
    #[error(transparent)]
    Tls(#[from] mcplex_examples::server_tls::ServerTlsError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The demo failed.
    #[error(transparent)]
    Demo(#[from] mcplex_examples::demo::DemoError),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    mcplex::app::run_command(execute(cli.command))
}

async fn execute(command: Command) -> Result<(), CliError> {
    match command {
        Command::Demo { listen, admin } => Ok(mcplex_examples::demo::run(listen, admin).await?),
        Command::Serve { which, listen, tls } => {
            let tls = tls.config()?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|source| CliError::Listen { addr: listen, source })?;
            tracing::info!(example = ?which, %listen, tls = tls.is_some(), "example MCP server listening at /mcp");
            let shutdown = CancellationToken::new();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                mcplex::app::wait_for_signal().await;
                stop.cancel();
            });
            mcplex_examples::run(which, listener, tls, shutdown).await;
            Ok(())
        }
    }
}
