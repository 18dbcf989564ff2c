//! The `mcplex-webhook` binary: `serve` (admission webhook over HTTPS) and `inject` (offline, YAML in and out).
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use mcplex_webhook::server::{ReloadingCert, serve};
use mcplex_webhook::settings::Defaults;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "mcplex-webhook",
    version,
    about = "Injects the mcplex sidecar into annotated pods"
)]
struct Cli {
    /// Sidecar image for pods that do not set mcplex.dev/image.
    #[arg(long, global = true, env = "MCPLEX_IMAGE")]
    image: Option<String>,
    /// Pods may name in mcplex.dev/config only the ConfigMap with this name or names starting with it and `-`.
    #[arg(long, global = true, env = "MCPLEX_CONFIG_MAP_PREFIX", default_value = mcplex_webhook::settings::DEFAULT_CONFIG_MAP)]
    config_map_prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the mutating admission webhook (POST /mutate, GET /healthz) over HTTPS.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:8443")]
        listen: SocketAddr,
        /// PEM serving certificate (re-read when it changes).
        #[arg(long, default_value = "/etc/mcplex-webhook/tls/tls.crt")]
        tls_cert: PathBuf,
        /// PEM private key of the serving certificate.
        #[arg(long, default_value = "/etc/mcplex-webhook/tls/tls.key")]
        tls_key: PathBuf,
    },
    /// Inject the sidecar into the annotated workloads of a multi-document YAML file (`-` for stdin).
    Inject {
        /// The file, or `-`.
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let defaults = Defaults {
        image: cli.image.unwrap_or_else(|| Defaults::default().image),
        config_map_prefix: cli.config_map_prefix,
    };
    if !mcplex_webhook::settings::is_dns_subdomain(&defaults.config_map_prefix) {
        eprintln!(
            "error: --config-map-prefix {:?} is not a ConfigMap name",
            defaults.config_map_prefix
        );
        return ExitCode::from(2);
    }
    if let Some(image) = Some(&defaults.image).filter(|i| !mcplex_webhook::settings::is_image_reference(i)) {
        eprintln!("error: --image {image:?} is not an image reference");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Inject { file } => inject(&file, &defaults),
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
        } => {
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("MCPLEX_LOG").unwrap_or_else(|_| "info".into()),
                )
                .init();
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(async move {
                let cert = match ReloadingCert::load(&tls_cert, &tls_key) {
                    Ok(cert) => cert,
                    Err(error) => {
                        eprintln!("error: {error}");
                        return ExitCode::from(2);
                    }
                };
                let listener = match tokio::net::TcpListener::bind(listen).await {
                    Ok(listener) => listener,
                    Err(error) => {
                        eprintln!("error: cannot listen on {listen}: {error}");
                        return ExitCode::from(2);
                    }
                };
                tracing::info!(%listen, image = %defaults.image, "mcplex-webhook serving");
                let shutdown = tokio_util::sync::CancellationToken::new();
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                    tokio::select! {
                        _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                    stop.cancel();
                });
                serve(listener, cert, Arc::new(defaults), shutdown).await;
                ExitCode::SUCCESS
            })
        }
    }
}

fn inject(file: &str, defaults: &Defaults) -> ExitCode {
    let mut input = String::new();
    let read = if file == "-" {
        std::io::stdin().read_to_string(&mut input).map(drop)
    } else {
        std::fs::read_to_string(file).map(|t| input = t)
    };
    if let Err(error) = read {
        eprintln!("error: cannot read {file}: {error}");
        return ExitCode::from(2);
    }
    match mcplex_webhook::inject::inject(&input, defaults) {
        Ok(injected) => {
            print!("{}", injected.yaml);
            for line in injected.report {
                eprintln!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}
