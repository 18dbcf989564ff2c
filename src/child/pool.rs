//! 2026-07-28 requests to a stdio server: a bounded pool of warm server processes, each initialised once
//! (in the session era, over its stdio) and lent to one request at a time, so whatever a process sends
//! while it holds a request belongs to that request. A process that asks its client for input mid-call
//! (elicitation, sampling, roots) has the call parked ([`crate::parking`], as the sidecar parks a
//! session-era target's call): the client gets `input_required`, and its retry's answers go back to that
//! same process. A parked call keeps its process out of the pool but not its place, so clients that take
//! minutes to answer do not starve the others: at most `size` processes serve requests, plus one per
//! parked call.

use super::limits::STOP_GRACE;
use super::metrics::ServeMetrics;
use super::own_client;
use super::process::{Ended, FromServer, ServerCommand, ServerProcess, SpawnError};
use crate::parking::{self, ParkError, ParkedCalls, Waiting};
use crate::protocol::{self, cache, jsonrpc, meta, method, mrtr};
use crate::sync::lock;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Requests that may wait for a free process, per process of the pool.
const WAITING_PER_PROCESS: usize = 16;
/// Messages of a process held for the request it serves before the process waits.
const EVENTS: usize = 64;
/// The name a parked call's request has in `inputRequests`.
const INPUT_NAME: &str = "input";

/// Why a 2026-07-28 request got no answer from a process of the pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every process is busy and as many requests wait as allowed.
    #[error("all {size} processes of the pool are busy and {waiting} requests wait already (--pool)")]
    Busy {
        /// Processes in the pool.
        size: usize,
        /// Requests waiting.
        waiting: usize,
    },
    /// No process became free in time.
    #[error("no process of the pool became free within {0:?} (all are busy; --pool)")]
    NoneFree(Duration),
    /// A process could not be started.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// A new process did not answer `initialize` in time.
    #[error("a new server process did not answer initialize within {0:?} (--start-timeout)")]
    StartTimeout(Duration),
    /// A new process answered `initialize` with an error.
    #[error("the server process refused initialize: {0}")]
    Refused(String),
    /// The process ended (how is in the source).
    #[error("{0}")]
    Ended(#[source] Ended),
    /// It did not answer in time.
    #[error("the server process did not answer within {0:?} (--call-timeout); it was ended")]
    Timeout(Duration),
    /// The call could not be parked, or a retry could not resume it.
    #[error(transparent)]
    Park(#[from] ParkError),
}

impl PoolError {
    /// The JSON-RPC error code a client gets for it.
    pub fn code(&self) -> i64 {
        match self {
            Self::Timeout(_) => jsonrpc::TARGET_TIMEOUT,
            Self::Park(ParkError::Full | ParkError::NoRandomness) => jsonrpc::INTERNAL_ERROR,
            Self::Park(_) => jsonrpc::INVALID_PARAMS,
            _ => jsonrpc::TARGET_UNAVAILABLE,
        }
    }

    /// How the request ended, for metrics and audit.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Park(_) => "error",
            _ => "unavailable",
        }
    }
}

/// One warm process: what it sends goes to the request it serves now, or nowhere between requests.
struct Warm {
    label: String,
    process: ServerProcess,
    sink: Mutex<Option<mpsc::Sender<Value>>>,
    ended: Mutex<Option<Ended>>,
    gone: CancellationToken,
    next_id: AtomicU64,
}

impl Warm {
    fn end_reason(&self) -> Ended {
        lock(&self.ended).clone().unwrap_or(Ended::Stopped {
            why: "it stopped answering",
        })
    }

    async fn send(&self, message: &Value) -> Result<(), PoolError> {
        let bytes = Bytes::from(message.to_string());
        self.process.send(bytes).await.map_err(PoolError::Ended)
    }

    async fn dispatch(self: Arc<Self>, mut from_server: mpsc::Receiver<FromServer>) {
        while let Some(event) = from_server.recv().await {
            match event {
                FromServer::Message(message) => {
                    let sink = lock(&self.sink).clone();
                    match sink {
                        // Waiting here holds the process's output back while its request is slow to read.
                        Some(sink) => drop(sink.send(message).await),
                        None => {
                            tracing::debug!(process = %self.label, "a pool process wrote between requests; dropped")
                        }
                    }
                }
                FromServer::Ended(reason) => {
                    *lock(&self.ended) = Some(reason);
                    lock(&self.sink).take();
                    self.gone.cancel();
                    return;
                }
            }
        }
    }
}

/// A process lent to one request, with what it sends meanwhile.
struct Lease {
    warm: Arc<Warm>,
    events: mpsc::Receiver<Value>,
    place: Option<OwnedSemaphorePermit>,
}

impl Lease {
    fn of(warm: Arc<Warm>, place: Option<OwnedSemaphorePermit>) -> Self {
        let (sink, events) = mpsc::channel(EVENTS);
        *lock(&warm.sink) = Some(sink);
        Self { warm, events, place }
    }

    fn next_id(&self) -> Value {
        json!(self.warm.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// A call whose process asked its client for input.
struct ParkedCall {
    lease: Lease,
    server_id: Value,
    asked: Vec<(String, Value)>,
    subject: Option<String>,
}

impl Waiting for ParkedCall {
    fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    fn asked(&self) -> &[(String, Value)] {
        &self.asked
    }

    fn expire(self) {
        // The process waits for an answer that will not come: it is no process to lend again.
        tracing::info!(process = %self.lease.warm.label, "a parked call was never resumed; its process is ended");
        self.lease.warm.process.stop("its parked call was never resumed");
    }
}

/// One 2026-07-28 request for the pool.
pub struct Call {
    /// The request as the client sent it (its id is the client's).
    pub request: Value,
    /// The client capabilities it declared in its `_meta`.
    pub capabilities: Value,
    /// The caller's subject, when callers are checked (a parked call resumes only for it).
    pub subject: Option<String>,
    /// Where progress and log messages of the process go while it serves the request, if anywhere.
    pub progress: Option<mpsc::Sender<Value>>,
}

/// The pool's bounds.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// Processes serving requests at once (and kept warm).
    pub size: usize,
    /// Longest wait for a process's answer.
    pub call_timeout: Duration,
    /// Longest wait for a new process to answer `initialize`, and for a free process.
    pub start_timeout: Duration,
}

/// The warm processes serving 2026-07-28 requests.
pub struct WarmPool {
    command: ServerCommand,
    limits: PoolLimits,
    idle: Mutex<Vec<Arc<Warm>>>,
    live: Arc<Mutex<HashMap<String, Arc<Warm>>>>,
    places: Arc<Semaphore>,
    waiting: AtomicUsize,
    parked: Arc<ParkedCalls<ParkedCall>>,
    initialized: Mutex<Option<Value>>,
    metrics: Arc<ServeMetrics>,
    started: AtomicU64,
}

/// Counts a request waiting for a free process for as long as it waits (also when its client leaves).
struct WaitingTurn<'a>(&'a AtomicUsize);

impl Drop for WaitingTurn<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl WarmPool {
    /// An empty pool for `command`: processes start when requests need them and stay warm.
    pub fn new(
        command: ServerCommand,
        limits: PoolLimits,
        metrics: Arc<ServeMetrics>,
    ) -> Result<Arc<Self>, parking::NoRandomness> {
        // A pool serves at least one request at a time.
        let limits = PoolLimits {
            size: limits.size.max(1),
            ..limits
        };
        Ok(Arc::new(Self {
            command,
            places: Arc::new(Semaphore::new(limits.size)),
            limits,
            idle: Mutex::default(),
            live: Arc::default(),
            waiting: AtomicUsize::new(0),
            parked: Arc::new(ParkedCalls::new()?),
            initialized: Mutex::default(),
            metrics,
            started: AtomicU64::new(0),
        }))
    }

    /// The process ids of the pool's processes, parked ones included.
    pub fn pids(&self) -> Vec<u32> {
        lock(&self.live).values().map(|w| w.process.pid).collect()
    }

    /// Requests holding a place in the pool now (parked calls hold none).
    pub fn in_use(&self) -> usize {
        self.limits.size - self.places.available_permits()
    }

    /// What the server answered `initialize` (from a process of the pool, started now if none ran yet).
    pub async fn initialize_result(self: &Arc<Self>) -> Result<Value, PoolError> {
        if let Some(known) = lock(&self.initialized).clone() {
            return Ok(known);
        }
        let lease = self.lease().await?;
        self.give_back(lease);
        Ok(lock(&self.initialized).clone().unwrap_or_default())
    }

    /// Serves one request: its answer for the client (with the client's id), `input_required` when the
    /// process asked for input, or why there is none.
    pub async fn serve(self: &Arc<Self>, call: &Call) -> Result<Value, PoolError> {
        let state = call.request["params"][mrtr::REQUEST_STATE]
            .as_str()
            .filter(|s| self.parked.issued(s))
            .map(str::to_owned);
        if let Some(state) = state {
            return self.resume(&state, call).await;
        }
        let lease = self.lease().await?;
        let server_id = lease.next_id();
        let mut request = call.request.clone();
        request["id"] = server_id.clone();
        protocol::strip_modern_meta(&mut request);
        lease.warm.send(&request).await?;
        self.follow(lease, server_id, call).await
    }

    async fn resume(self: &Arc<Self>, state: &str, call: &Call) -> Result<Value, PoolError> {
        let parked = self.parked.take(state, call.subject.as_deref())?;
        let responses = call.request["params"][mrtr::INPUT_RESPONSES].as_object();
        let answers = match parked.answers(responses) {
            Ok(answers) => answers,
            Err(missing) => {
                self.parked.put_back(state, parked);
                return Err(missing.into());
            }
        };
        for answer in &answers {
            parked.lease.warm.send(answer).await?;
        }
        self.follow(parked.lease, parked.server_id, call).await
    }

    /// Reads what the lent process sends until it answers `server_id`, asks for input, fails or is late.
    async fn follow(self: &Arc<Self>, mut lease: Lease, server_id: Value, call: &Call) -> Result<Value, PoolError> {
        let deadline = Instant::now() + self.limits.call_timeout;
        let client_id = call.request["id"].clone();
        let token = call.request["params"]["_meta"][meta::PROGRESS_TOKEN].clone();
        loop {
            let message = match tokio::time::timeout_at(deadline, lease.events.recv()).await {
                Ok(Some(message)) => message,
                Ok(None) => return Err(PoolError::Ended(lease.warm.end_reason())),
                Err(_) => {
                    let cancel = json!({"jsonrpc": "2.0", "method": method::CANCELLED,
                        "params": {"requestId": server_id, "reason": "mcplex: no answer in time"}});
                    lease.warm.process.send_now(Bytes::from(cancel.to_string()));
                    lease.warm.process.stop("it did not answer in time");
                    return Err(PoolError::Timeout(self.limits.call_timeout));
                }
            };
            let asked = message.get("method").and_then(Value::as_str).map(str::to_owned);
            match (asked.as_deref(), message.get("id")) {
                (None, Some(id)) if *id == server_id => {
                    let mut answer = message;
                    answer["id"] = client_id;
                    if let Some(result) = answer.get_mut("result").and_then(Value::as_object_mut) {
                        result
                            .entry(protocol::result_type::KEY)
                            .or_insert(protocol::result_type::COMPLETE.into());
                        let method = call.request["method"].as_str().unwrap_or_default();
                        if cache::METHODS.contains(&method) {
                            // A session-era server gives no hint: stale at once, for this caller alone.
                            result.entry(cache::TTL_MS).or_insert(0.into());
                            result.entry(cache::SCOPE).or_insert(cache::PRIVATE.into());
                        }
                    }
                    self.give_back(lease);
                    return Ok(answer);
                }
                (None, _) => tracing::debug!(process = %lease.warm.label, "an answer to no request under way; dropped"),
                (Some(asked), Some(_)) => {
                    let why = match mrtr::capability_for(asked) {
                        Some(capability) if call.capabilities.get(capability).is_some() => {
                            return self.park(lease, server_id, &message, client_id, call.subject.clone());
                        }
                        Some(capability) => format!("the client did not declare the `{capability}` capability"),
                        None => format!("mcplex serve does not pass `{asked}` on to 2026-07-28 clients"),
                    };
                    if let Some(answer) = own_client::unanswerable(&message, &why) {
                        lease.warm.send(&answer).await?;
                    }
                }
                (Some(method::PROGRESS), None) => {
                    if let Some(progress) = &call.progress
                        && !token.is_null()
                    {
                        // The process serves this request alone, so its progress is this request's, under
                        // the token of the request now open (a retry may bring a new one).
                        let mut message = message;
                        if let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) {
                            params.insert(meta::PROGRESS_TOKEN.into(), token.clone());
                            let _ = progress.try_send(message);
                        }
                    }
                }
                (Some(method::LOG_MESSAGE), None) => {
                    if let Some(progress) = &call.progress {
                        let _ = progress.try_send(message);
                    }
                }
                (Some(_), None) => {}
            }
        }
    }

    fn park(
        self: &Arc<Self>,
        mut lease: Lease,
        server_id: Value,
        request: &Value,
        client_id: Value,
        subject: Option<String>,
    ) -> Result<Value, PoolError> {
        // The process waits for a person, maybe for minutes: its place goes to the next request.
        drop(lease.place.take());
        let parked = ParkedCall {
            lease,
            server_id,
            asked: vec![(INPUT_NAME.to_owned(), request["id"].clone())],
            subject,
        };
        match self.parked.park(parked) {
            Ok(state) => Ok(jsonrpc::result(
                client_id,
                parking::input_required(INPUT_NAME, request, &state),
            )),
            Err(refused) => {
                let (error, parked) = *refused;
                parked.lease.warm.process.stop("its call could not be parked");
                Err(error.into())
            }
        }
    }

    /// A free process: an idle one, or one started now while fewer than the pool's size serve requests.
    async fn lease(self: &Arc<Self>) -> Result<Lease, PoolError> {
        let place = match self.places.clone().try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                let most = self.limits.size * WAITING_PER_PROCESS;
                let waiting = self.waiting.fetch_add(1, Ordering::Relaxed);
                let _turn = WaitingTurn(&self.waiting);
                if waiting >= most {
                    return Err(PoolError::Busy {
                        size: self.limits.size,
                        waiting,
                    });
                }
                match tokio::time::timeout(self.limits.start_timeout, self.places.clone().acquire_owned()).await {
                    Ok(Ok(place)) => place,
                    _ => return Err(PoolError::NoneFree(self.limits.start_timeout)),
                }
            }
        };
        let idle = loop {
            let next = lock(&self.idle).pop();
            match next {
                Some(warm) if warm.gone.is_cancelled() => continue,
                other => break other,
            }
        };
        match idle {
            Some(warm) => Ok(Lease::of(warm, Some(place))),
            None => self.start(place).await,
        }
    }

    /// Starts a process and initialises it.
    async fn start(self: &Arc<Self>, place: OwnedSemaphorePermit) -> Result<Lease, PoolError> {
        let label = format!("pool-{}", self.started.fetch_add(1, Ordering::Relaxed) + 1);
        let (process, from_server) = ServerProcess::spawn(&self.command, &label)?;
        let warm = Arc::new(Warm {
            label: label.clone(),
            process,
            sink: Mutex::default(),
            ended: Mutex::default(),
            gone: CancellationToken::new(),
            next_id: AtomicU64::new(1),
        });
        self.metrics.pool_started();
        lock(&self.live).insert(label.clone(), warm.clone());
        let (live, metrics, watched) = (self.live.clone(), self.metrics.clone(), warm.clone());
        tokio::spawn(async move {
            watched.gone.cancelled().await;
            metrics.pool_ended(&watched.end_reason());
            lock(&live).remove(&watched.label);
        });
        let mut lease = Lease::of(warm.clone(), Some(place));
        tokio::spawn(warm.clone().dispatch(from_server));
        match tokio::time::timeout(self.limits.start_timeout, handshake(&mut lease)).await {
            Ok(Ok(result)) => {
                lock(&self.initialized).get_or_insert(result);
                Ok(lease)
            }
            Ok(Err(error)) => {
                warm.process.stop("it did not initialise");
                Err(error)
            }
            Err(_) => {
                warm.process.stop("it did not answer initialize in time");
                Err(PoolError::StartTimeout(self.limits.start_timeout))
            }
        }
    }

    /// Takes a process back after its request: it stays warm unless it ended or enough are idle.
    fn give_back(&self, lease: Lease) {
        let Lease { warm, events, place } = lease;
        lock(&warm.sink).take();
        drop(events);
        if !warm.gone.is_cancelled() {
            let mut idle = lock(&self.idle);
            if idle.len() < self.limits.size {
                idle.push(warm);
            } else {
                warm.process.stop("the pool has enough idle processes");
            }
        }
        drop(place);
    }

    /// Ends every process of the pool (parked calls are given up) and waits until they are gone.
    pub async fn shutdown(&self) {
        self.parked.expire_all();
        lock(&self.idle).clear();
        let all: Vec<Arc<Warm>> = lock(&self.live).values().cloned().collect();
        for warm in &all {
            warm.process.stop("mcplex is stopping");
        }
        let wait = futures_util::future::join_all(all.iter().map(|w| w.gone.cancelled()));
        let _ = tokio::time::timeout(STOP_GRACE * 2, wait).await;
    }
}

/// The session-era handshake a pool process gets once: mcplex's own client identity, declaring the
/// capabilities a 2026-07-28 client may answer through `input_required`.
async fn handshake(lease: &mut Lease) -> Result<Value, PoolError> {
    let id = lease.next_id();
    let capabilities = json!({ "elicitation": {}, "sampling": {} });
    lease
        .warm
        .send(&own_client::initialize(id.clone(), capabilities))
        .await?;
    loop {
        let Some(message) = lease.events.recv().await else {
            return Err(PoolError::Ended(lease.warm.end_reason()));
        };
        if message.get("method").is_some() {
            if let Some(answer) = own_client::unanswerable(&message, "no client is connected yet") {
                lease.warm.send(&answer).await?;
            }
            continue;
        }
        if message.get("id") == Some(&id) {
            if let Some((_, text)) = jsonrpc::error_of(&message) {
                return Err(PoolError::Refused(text.to_owned()));
            }
            lease.warm.send(&own_client::initialized()).await?;
            return Ok(message["result"].clone());
        }
    }
}
