//! The running sidecar: listeners, the config watcher, background upkeep, and graceful stop.

use crate::admin::StatusAccess;
use crate::audit::{AuditError, AuditLog, AuditOptions};
use crate::budget::{Budget, DEFAULT_BUDGET_BYTES};
use crate::config::{self, ConfigError, watch};
use crate::downstream::Endpoint;
use crate::downstream::handler::Limits;
use crate::metrics::{Metrics, MetricsOptions};
use crate::route::DEFAULT_STARTUP_DEADLINE;
use crate::route::Router;
use crate::serve::{ServeLimits, serve, serve_per_peer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The MCP endpoint's fixed address (DESIGN §2).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:15301";
/// The admin endpoint's fixed address (DESIGN §2).
pub const DEFAULT_ADMIN: &str = "0.0.0.0:15302";

/// How the sidecar runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file (inside the mounted ConfigMap directory).
    pub config_path: PathBuf,
    /// MCP endpoint address; must be loopback.
    pub listen: SocketAddr,
    /// Admin endpoint address.
    pub admin: SocketAddr,
    /// Items per page of merged lists.
    pub page_size: usize,
    /// Limits of the MCP endpoint (body size, sessions, requests and streams at once).
    pub limits: Limits,
    /// Limits of each listener (connections at once, header-read timeout).
    pub connections: ServeLimits,
    /// How long a new target's first fetch may delay readiness.
    pub startup_deadline: Duration,
    /// Bytes of messages held at once (request bodies, targets' answers), counted twice for answers.
    pub message_budget: usize,
    /// How long in-flight calls may take to finish at shutdown.
    pub drain: Duration,
    /// Session-era sessions idle this long are ended.
    pub session_idle: Duration,
    /// Who may read the admin port's `/status`.
    pub status_access: StatusAccess,
    /// What `/metrics` records.
    pub metrics: MetricsOptions,
    /// Give every routed call a span (only useful with an OpenTelemetry layer installed).
    pub tracing: bool,
    /// The agent role of this pod (`profiles.<name>` of the config); `None` sees every target.
    pub profile: Option<String>,
    /// Where the audit trail of calls goes (off by default).
    pub audit: AuditOptions,
}

impl Options {
    /// Defaults for a config file.
    pub fn new(config_path: PathBuf) -> Self {
        Self {
            config_path,
            listen: DEFAULT_LISTEN.parse().expect("constant address"),
            admin: DEFAULT_ADMIN.parse().expect("constant address"),
            page_size: 500,
            limits: Limits::default(),
            connections: ServeLimits::default(),
            startup_deadline: DEFAULT_STARTUP_DEADLINE,
            message_budget: DEFAULT_BUDGET_BYTES,
            drain: Duration::from_secs(20),
            session_idle: Duration::from_secs(30 * 60),
            status_access: StatusAccess::Loopback,
            metrics: MetricsOptions::default(),
            tracing: false,
            profile: None,
            audit: AuditOptions::default(),
        }
    }
}

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The first config is unusable (later bad configs are only reported).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The MCP endpoint was asked to listen beyond loopback.
    #[error("the MCP endpoint must listen on loopback only, not {0}")]
    NotLoopback(SocketAddr),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config directory cannot be watched.
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
    /// The audit log cannot be opened.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// No randomness for the key that seals parked calls' states.
    #[error(transparent)]
    Randomness(#[from] crate::route::NoRandomness),
}

/// A started sidecar.
pub struct Sidecar {
    /// Where MCP is served.
    pub mcp_addr: SocketAddr,
    /// Where admin is served.
    pub admin_addr: SocketAddr,
    /// The endpoint state (sessions, router).
    pub endpoint: Arc<Endpoint>,
    shutdown: CancellationToken,
    servers: Vec<JoinHandle<()>>,
}

impl Sidecar {
    /// Loads the config, binds both listeners, fetches every target (each for at most the start-up
    /// deadline) and starts watching the config.
    pub async fn start(options: Options) -> Result<Self, StartError> {
        crate::net::tls::install_crypto_provider();
        if !options.listen.ip().is_loopback() {
            return Err(StartError::NotLoopback(options.listen));
        }
        let (config, text) = config::load(&options.config_path)?;
        let config = config::select_profile(config, options.profile.as_deref(), &options.config_path)?;
        let audit = AuditLog::open(&options.audit)?;
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        let mcp_listener = bind(options.listen).await?;
        let admin_listener = bind(options.admin).await?;
        let mcp_addr = mcp_listener.local_addr().map_err(|source| StartError::Bind {
            addr: options.listen,
            source,
        })?;
        let admin_addr = admin_listener.local_addr().map_err(|source| StartError::Bind {
            addr: options.admin,
            source,
        })?;
        let router = Router::new(
            options.page_size,
            options.startup_deadline,
            Budget::new(options.message_budget),
            Metrics::new(options.metrics),
            options.tracing,
            (Arc::new(audit), options.profile.clone()),
        )?;
        let endpoint = Endpoint::new(router.clone(), options.limits);
        let shutdown = CancellationToken::new();
        let mcp_endpoint = endpoint.clone();
        let admin_endpoint = endpoint.clone();
        let servers = vec![
            tokio::spawn(serve(
                mcp_listener,
                None,
                move |r| mcp_endpoint.clone().handle(r),
                options.connections,
                shutdown.clone(),
                options.drain,
            )),
            tokio::spawn(serve_per_peer(
                admin_listener,
                None,
                move |peer| {
                    let endpoint = admin_endpoint.clone();
                    move |r| crate::admin::handle(endpoint.clone(), options.status_access, peer, r)
                },
                ServeLimits::ADMIN,
                shutdown.clone(),
                Duration::from_secs(1),
            )),
        ];
        tracing::info!(%mcp_addr, %admin_addr, config = %options.config_path.display(), "mcplex listening");
        router.apply(config).await;
        let apply_router = router.clone();
        let reject_metrics = router.metrics.clone();
        let (profile, path) = (options.profile.clone(), options.config_path.clone());
        watch::spawn(
            options.config_path.clone(),
            text,
            move |config| {
                let router = apply_router.clone();
                // An edit that drops this pod's profile is refused like any invalid config.
                let selected = config::select_profile(config, profile.as_deref(), &path);
                Box::pin(async move {
                    match selected {
                        Ok(config) => {
                            tracing::info!(targets = config.targets.len(), "config changed; applying");
                            router.metrics.config_reload(true);
                            router.apply(config).await;
                        }
                        Err(error) => config_rejected(&router.metrics, &error),
                    }
                })
            },
            move |error| config_rejected(&reject_metrics, &error),
            shutdown.clone(),
        )?;
        tokio::spawn(upkeep(endpoint.clone(), options.session_idle, shutdown.clone()));
        Ok(Self {
            mcp_addr,
            admin_addr,
            endpoint,
            shutdown,
            servers,
        })
    }

    /// Stops accepting, lets in-flight calls finish (bounded by the drain time), ends upstream sessions.
    pub async fn stop(self) {
        tracing::info!("shutting down: no new connections; draining in-flight calls");
        self.shutdown.cancel();
        for server in self.servers {
            let _ = server.await;
        }
        self.endpoint.close_all().await;
        self.endpoint.router.retire_all().await;
        tracing::info!("stopped");
    }
}

/// Counts and reports a config edit that is not applied (the last good config stays live).
fn config_rejected(metrics: &Metrics, error: &ConfigError) {
    metrics.config_reload(false);
    tracing::error!(%error, "config change rejected; the last good config stays live");
}

/// Retries down targets, honours cache hints, re-reads rotated TLS files and ends idle sessions.
async fn upkeep(endpoint: Arc<Endpoint>, session_idle: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let router = &endpoint.router;
        for slot in &router.snapshot().slots {
            if let Some(target) = &slot.target {
                match target.reload_tls_if_changed() {
                    Ok(true) => {
                        router.metrics.tls_reload(true);
                        tracing::info!(target_name = %slot.name, "TLS files changed; new connections use them");
                    }
                    Ok(false) => {}
                    Err(error) => {
                        router.metrics.tls_reload(false);
                        tracing::warn!(%error, "TLS files changed but cannot be used; keeping the old ones");
                    }
                }
            }
        }
        // Down targets are retried every tick; healthy ones are re-read in the background at most every
        // 30 s (clients asking for lists refresh sooner, per the target's ttlMs).
        router.refresh_stale(Duration::from_secs(30));
        for session in endpoint.sessions.expire(session_idle) {
            tracing::info!(session = %session.id(), "session ended after being idle");
            tokio::spawn(async move { session.route.close().await });
        }
    }
}

/// Runs a command on a single-threaded runtime and turns its outcome into the process's exit code
/// (2 with the error on stderr). The sidecar serves one agent: cross-thread wake-ups would cost more per
/// call than the work itself at the loads a pod sees (BENCHMARKS.md).
pub fn run_command<E: std::fmt::Display>(command: impl std::future::Future<Output = Result<(), E>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// Waits for SIGTERM (how Kubernetes stops a container) or Ctrl-C.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}
