//! The pooled hyper client used to reach one target (HTTP/1.1 and HTTP/2, optional TLS).

use crate::config::schema::TlsSpec;
use crate::net::tls::{self, TlsError};
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// How long an idle connection to a target is kept for reuse. Node's HTTP server (the TypeScript SDK) and
/// uvicorn (the Python SDK, FastMCP) close keep-alive connections after 5 s idle; reusing one as the server
/// closes it fails the request ("connection closed before message completed"), which marked a healthy target
/// down in a CI run. Shorter than 5 s, a connection is never reused into that race.
const POOL_IDLE: Duration = Duration::from_secs(4);

/// Read buffer of an HTTP/1 connection and window of an HTTP/2 stream, in bytes: the same for the agent-side
/// server and the clients to targets and authorization servers.
pub const CONNECTION_BUFFER: usize = 64 * 1024;

/// A pooled client: connections (and TLS sessions) are reused across calls.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// What a pooled client connects with: TCP, and TLS when the URL is `https`.
pub type Connector = HttpsConnector<HttpConnector>;

/// Builds the client for a target from its TLS settings.
pub fn build_client(tls: Option<&TlsSpec>, https: bool) -> Result<HttpClient, TlsError> {
    Ok(pooled(build_connector(tls, https)?))
}

/// Builds the connector for a target from its TLS settings (the costly part: TLS roots and keys).
pub fn build_connector(tls: Option<&TlsSpec>, https: bool) -> Result<Connector, TlsError> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_keepalive(Some(Duration::from_secs(30)));
    tcp.set_connect_timeout(Some(Duration::from_secs(5)));
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls::client_config(tls, https)?)
        .https_or_http();
    // Validation already checked the name; an unparsable one falls back to the URL host.
    let fixed_name = tls
        .and_then(|t| t.server_name.clone())
        .and_then(|n| rustls_pki_types::ServerName::try_from(n).ok());
    let builder = match fixed_name {
        Some(name) => builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name)),
        None => builder,
    };
    Ok(builder.enable_http1().enable_http2().wrap_connector(tcp))
}

/// A client with a pool of its own over `connector`.
pub fn pooled(connector: Connector) -> HttpClient {
    // Answers are read frame by frame into the message budget, so the connection buffer stays small. The pool
    // has a timer of its own: without one, an idle connection is only dropped when that pool is used again, so
    // a target that is listed once and never called would keep its connections open for good.
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(64)
        .http1_max_buf_size(CONNECTION_BUFFER)
        .http2_initial_stream_window_size(CONNECTION_BUFFER as u32)
        .http2_initial_connection_window_size(4 * CONNECTION_BUFFER as u32)
        .build(connector)
}
