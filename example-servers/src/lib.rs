//! Example upstream MCP servers written with rmcp (`math`, `date`, `everything`), for the demo, the
//! Kubernetes examples and the tests. They live outside the sidecar so it neither links nor loads them.
#![forbid(unsafe_code)]

pub mod date;
pub mod demo;
pub mod everything;
pub mod listing;
pub mod math;
pub mod server_tls;

use mcplex::serve::{ServeLimits, serve};
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves an rmcp handler over Streamable HTTP at `/mcp` (any Host: Kubernetes calls it by Service name).
pub async fn serve_handler<S>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    make: impl Fn() -> S + Send + Sync + 'static,
    shutdown: CancellationToken,
) where
    S: ServerHandler + Send + 'static,
{
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(shutdown.child_token());
    let service = StreamableHttpService::new(move || Ok(make()), Arc::new(LocalSessionManager::default()), config);
    let handler = move |request: http::Request<hyper::body::Incoming>| {
        let mut service = service.clone();
        async move {
            if request.uri().path() != "/mcp" {
                let mut response = http::Response::new(http_body_util::BodyExt::boxed(http_body_util::Full::new(
                    bytes::Bytes::from_static(b"not found: the MCP endpoint is /mcp\n"),
                )));
                *response.status_mut() = http::StatusCode::NOT_FOUND;
                return response;
            }
            match tower_service::Service::call(&mut service, request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    serve(
        listener,
        tls,
        handler,
        ServeLimits::default(),
        shutdown,
        Duration::from_secs(5),
    )
    .await;
}

/// Which example server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Example {
    /// add, subtract, multiply, divide.
    Math,
    /// today, now, days_between.
    Date,
    /// Every MCP feature, under the conformance suite's fixture names.
    Everything,
}

/// Serves the chosen example until `shutdown`.
pub async fn run(
    example: Example,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) {
    match example {
        Example::Math => serve_handler(listener, tls, math::Math::new, shutdown).await,
        Example::Date => serve_handler(listener, tls, date::Date::new, shutdown).await,
        Example::Everything => {
            let server = everything::Everything::new();
            serve_handler(listener, tls, move || server.clone(), shutdown).await
        }
    }
}
