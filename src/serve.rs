//! One accept loop for every HTTP server in the binary: HTTP/1.1 and HTTP/2, optional TLS, a cap on
//! connections, deadlines for slow or silent clients, and a graceful drain.

use crate::net::CONNECTION_BUFFER;
use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

/// How many connections a listener serves at once and how long a client may take to send headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections served at once; more are answered with HTTP 503 and closed.
    pub max_connections: usize,
    /// Time for the first byte of a connection, for a complete request head, and for the next request
    /// on an idle HTTP/1.1 connection; a client slower than this is disconnected.
    pub header_read_timeout: Duration,
}

impl ServeLimits {
    /// The admin listener: reachable from the cluster network, so a small cap and a short deadline.
    pub const ADMIN: Self = Self {
        max_connections: 64,
        header_read_timeout: Duration::from_secs(10),
    };
}

impl Default for ServeLimits {
    /// The MCP listener's limits.
    fn default() -> Self {
        Self {
            max_connections: 128,
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

/// Requests one HTTP/2 connection may have open at once.
const H2_STREAMS: u32 = 32;

/// What a client over the connection cap receives before the connection is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 52\r\n\r\nmcplex: too many connections are open; retry shortly\n";

/// The address of the client on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

/// Serves `handler` on `listener` until `shutdown`, then waits up to `drain` for open requests.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: H,
    limits: ServeLimits,
    shutdown: CancellationToken,
    drain: Duration,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_per_peer(listener, tls, move |_| handler.clone(), limits, shutdown, drain).await;
}

/// [`serve`] with a handler made for each connection from its peer's address (the admin port answers
/// by who asks); the MCP endpoint, which does not care, pays nothing per request for it.
pub async fn serve_per_peer<M, H, F, B>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler_for: M,
    limits: ServeLimits,
    shutdown: CancellationToken,
    drain: Duration,
) where
    M: Fn(Peer) -> H,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Small per-connection buffers keep the worst case (every connection at the cap busy) bounded:
    // request heads fit in 64 KiB, bodies stream through, and HTTP/2 windows stay small.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(CONNECTION_BUFFER);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_STREAMS)
        .initial_stream_window_size(CONNECTION_BUFFER as u32)
        .initial_connection_window_size(4 * CONNECTION_BUFFER as u32)
        .max_send_buf_size(CONNECTION_BUFFER)
        .max_header_list_size(CONNECTION_BUFFER as u32);
    let builder = Arc::new(builder);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(limit = limits.max_connections, "connection refused: too many open");
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handler = handler_for(Peer(peer));
        // `map` polls the handler's future where it lies. An `async` wrapper would hold it twice (as the
        // captured value and as the value awaited) and copy it, several KiB, from one to the other on
        // every request.
        let service =
            hyper::service::service_fn(move |request: Request<Incoming>| handler(request).map(Ok::<_, Infallible>));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            // hyper's header deadline only starts once it knows the protocol, so a client that connects
            // and sends nothing is bounded here (peek waits for a real byte; readiness can be spurious).
            if !matches!(
                tokio::time::timeout(limits.header_read_timeout, stream.peek(&mut [0u8; 1])).await,
                Ok(Ok(1..))
            ) {
                return tracing::debug!("connection closed: nothing was sent");
            }
            // Plain and TLS connections are served by the same code; `Either` carries whichever it is.
            let io = match acceptor {
                None => Either::Left(stream),
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => Either::Right(tls),
                        Ok(Err(error)) => return tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => return tracing::debug!("TLS handshake timed out"),
                    }
                }
            };
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
        });
    }
    // Close the socket now so new connections are refused while open ones drain.
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(?drain, "some connections were still open after the drain period");
    }
}

/// Tells a client over the connection cap why it is turned away, then closes (bounded: it may not read).
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(OVER_CAPACITY).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
