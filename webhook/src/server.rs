//! `mcplex-webhook serve`: HTTPS with a serving certificate that is re-read when cert-manager rotates it.

use crate::metrics::WebhookMetrics;
use crate::review::review;
use crate::settings::Defaults;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Largest AdmissionReview accepted (the API server caps objects well below this).
const MAX_BODY: usize = 8 * 1024 * 1024;
/// How often the certificate files are checked for rotation.
const CERT_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Why the serving certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load the serving certificate {cert} / {key}: {reason}")]
pub struct CertError {
    cert: PathBuf,
    key: PathBuf,
    reason: String,
}

/// A certificate resolver whose key pair is swapped when its files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Option<SystemTime>)>,
}

impl ReloadingCert {
    /// Loads the pair once; fails when the files are unusable.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, CertError> {
        let loaded = load_pair(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.into(),
            key: key.into(),
            current: RwLock::new((loaded, modified(cert, key))),
        }))
    }

    /// Re-reads the files when their modification time changed; a broken new pair keeps the old one.
    /// Returns whether a change was taken (`None` when nothing changed).
    pub fn reload_if_changed(&self) -> Option<bool> {
        let stamp = modified(&self.cert, &self.key);
        if self.current.read().map(|c| c.1 == stamp).unwrap_or(true) {
            return None;
        }
        match load_pair(&self.cert, &self.key) {
            Ok(pair) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = (pair, stamp);
                tracing::info!(cert = %self.cert.display(), "serving certificate reloaded");
                Some(true)
            }
            Err(error) => {
                tracing::warn!(%error, "serving certificate changed but cannot be used; keeping the old one");
                Some(false)
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.0.clone())
    }
}

fn modified(cert: &Path, key: &Path) -> Option<SystemTime> {
    let time = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    time(cert).max(time(key))
}

fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, CertError> {
    let fail = |reason: String| CertError {
        cert: cert.into(),
        key: key.into(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(e.to_string()))?;
    if chain.is_empty() {
        return Err(fail("no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(e.to_string()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| fail(e.to_string()))
}

/// Serves `/mutate`, `/healthz` and `/metrics` over HTTPS until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    cert: Arc<ReloadingCert>,
    defaults: Arc<Defaults>,
    shutdown: CancellationToken,
) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(cert.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let metrics = WebhookMetrics::new();
    let watcher_shutdown = shutdown.clone();
    let watcher_metrics = metrics.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CERT_CHECK_EVERY);
        loop {
            tokio::select! {
                _ = watcher_shutdown.cancelled() => return,
                _ = tick.tick() => {
                    if let Some(ok) = cert.reload_if_changed() {
                        watcher_metrics.cert_reload(ok);
                    }
                }
            }
        }
    });
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let (acceptor, builder, defaults, metrics, watcher) = (
            acceptor.clone(),
            builder.clone(),
            defaults.clone(),
            metrics.clone(),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await else {
                return tracing::debug!("TLS handshake failed or timed out");
            };
            let service = hyper::service::service_fn(move |request| {
                let (defaults, metrics) = (defaults.clone(), metrics.clone());
                async move { Ok::<_, Infallible>(handle(request, &defaults, &metrics).await) }
            });
            let _ = watcher
                .watch(builder.serve_connection(TokioIo::new(tls), service).into_owned())
                .await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

async fn handle(request: Request<Incoming>, defaults: &Defaults, metrics: &WebhookMetrics) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok"),
        (&Method::GET, "/metrics") => {
            let mut response = Response::new(Full::new(Bytes::from(metrics.encode())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            response
        }
        (&Method::POST, "/mutate") => {
            let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(error) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        &format!("cannot read the request body: {error}"),
                    );
                }
            };
            let started = std::time::Instant::now();
            match review(&body, defaults) {
                Ok((response, decision)) => {
                    metrics.admission(decision.outcome, decision.reason, started.elapsed().as_secs_f64());
                    tracing::info!(uid = %decision.uid, pod = %decision.pod, outcome = decision.outcome, reason = decision.reason, verdict = %decision.verdict, "admission decision");
                    Response::builder()
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from(response)))
                        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response could not be built"))
                }
                Err(error) => {
                    metrics.bad_request();
                    tracing::warn!(%error, "bad admission request");
                    text(StatusCode::BAD_REQUEST, &error.to_string())
                }
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: POST /mutate, GET /healthz or GET /metrics",
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
