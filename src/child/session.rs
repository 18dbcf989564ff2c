//! One client session and the server process that serves it alone: the client's requests wait for the
//! answers with their ids; everything else the process sends (its own requests, notifications) goes to the
//! session's GET stream, held in a bounded backlog until the client opens one.

use super::limits::STREAM_BACKLOG;
use super::process::{Ended, FromServer, ServerCommand, ServerProcess, SpawnError};
use crate::sync::lock;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Why a request of the client got no answer from its server process.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The process ended (how is in the source).
    #[error("{0}")]
    Ended(#[source] Ended),
    /// It did not answer in time.
    #[error("the server process did not answer within {0:?}")]
    Timeout(Duration),
    /// The client already has a request with this id waiting.
    #[error("a request with id {0} is already waiting for its answer")]
    DuplicateId(String),
}

/// Where the process's messages that answer no request of the client go.
#[derive(Default)]
struct Stream {
    open: Option<mpsc::Sender<Value>>,
    backlog: VecDeque<Value>,
}

/// One client session and its server process.
pub struct Session {
    /// The `Mcp-Session-Id` the client sends.
    pub id: String,
    owner: Option<String>,
    process: ServerProcess,
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    stream: Mutex<Stream>,
    last_used: Mutex<Instant>,
    ended: Mutex<Option<Ended>>,
    gone: CancellationToken,
    idle: Notify,
}

impl Session {
    /// Starts a process for a new session, bound to the caller `owner` (when callers are checked).
    pub fn start(id: String, command: &ServerCommand, owner: Option<String>) -> Result<Arc<Self>, SpawnError> {
        let (process, from_server) = ServerProcess::spawn(command, &id)?;
        let session = Arc::new(Self {
            id,
            owner,
            process,
            waiting: Mutex::new(HashMap::new()),
            stream: Mutex::new(Stream::default()),
            last_used: Mutex::new(Instant::now()),
            ended: Mutex::new(None),
            gone: CancellationToken::new(),
            idle: Notify::new(),
        });
        tokio::spawn(session.clone().dispatch(from_server));
        Ok(session)
    }

    /// The caller the session is bound to.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// Cancelled once the process has ended.
    pub fn gone(&self) -> &CancellationToken {
        &self.gone
    }

    /// How long since the client last sent something.
    pub fn idle_for(&self) -> Duration {
        lock(&self.last_used).elapsed()
    }

    /// True while a request of the client waits for its answer.
    pub fn busy(&self) -> bool {
        !lock(&self.waiting).is_empty()
    }

    /// Ends the process, saying why.
    pub fn stop(&self, why: &'static str) {
        self.process.stop(why);
    }

    /// Sends one request of the client and waits at most `timeout` for its answer. A request that times
    /// out is cancelled at the process, as a client would.
    pub async fn request(&self, message: &Value, timeout: Duration) -> Result<Value, SessionError> {
        *lock(&self.last_used) = Instant::now();
        let id = message["id"].to_string();
        let (answer, answered) = oneshot::channel();
        {
            let mut waiting = lock(&self.waiting);
            if waiting.contains_key(&id) {
                return Err(SessionError::DuplicateId(id));
            }
            waiting.insert(id.clone(), answer);
        }
        let waited = async {
            self.process
                .send(Bytes::from(message.to_string()))
                .await
                .map_err(SessionError::Ended)?;
            answered.await.map_err(|_| SessionError::Ended(self.end_reason()))
        };
        let result = match tokio::time::timeout(timeout, waited).await {
            Ok(result) => result,
            Err(_) => {
                let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": message["id"], "reason": "mcplex: no answer in time"}});
                self.process.send_now(Bytes::from(cancel.to_string()));
                Err(SessionError::Timeout(timeout))
            }
        };
        let now_idle = {
            let mut waiting = lock(&self.waiting);
            waiting.remove(&id);
            waiting.is_empty()
        };
        if now_idle {
            self.idle.notify_waiters();
        }
        result
    }

    /// Returns once no request of the client waits for its answer (or the process has ended).
    pub async fn until_idle(&self) {
        loop {
            // Registered before the check, so an answer between the two is not missed.
            let answered = self.idle.notified();
            if !self.busy() || self.gone.is_cancelled() {
                return;
            }
            tokio::select! {
                _ = answered => {}
                _ = self.gone.cancelled() => return,
            }
        }
    }

    /// Passes on a notification of the client, or its answer to a request of the process.
    pub async fn send(&self, message: &Value) -> Result<(), SessionError> {
        *lock(&self.last_used) = Instant::now();
        self.process
            .send(Bytes::from(message.to_string()))
            .await
            .map_err(SessionError::Ended)
    }

    /// Opens the session's stream of what the process sends on its own (replacing one open before, which
    /// then ends): what waited in the backlog comes first.
    pub fn open_stream(&self) -> mpsc::Receiver<Value> {
        let (sender, receiver) = mpsc::channel(STREAM_BACKLOG);
        let mut stream = lock(&self.stream);
        while let Some(event) = stream.backlog.pop_front() {
            let _ = sender.try_send(event);
        }
        stream.open = Some(sender);
        receiver
    }

    /// Why the process ended (or, while it runs, what would be said if it were stopped now).
    pub fn end_reason(&self) -> Ended {
        lock(&self.ended).clone().unwrap_or(Ended::Stopped {
            why: "the session ended",
        })
    }

    /// Routes what the process sends: answers to the requests waiting for them, the rest to the stream.
    async fn dispatch(self: Arc<Self>, mut from_server: mpsc::Receiver<FromServer>) {
        while let Some(event) = from_server.recv().await {
            match event {
                FromServer::Message(message) if message.get("method").is_none() => {
                    let id = message["id"].to_string();
                    match lock(&self.waiting).remove(&id) {
                        Some(waiter) => {
                            let _ = waiter.send(message);
                        }
                        None => {
                            tracing::warn!(session = %self.id, %id, "the server process answered a request nobody waits for; dropped")
                        }
                    }
                }
                FromServer::Message(message) => self.to_stream(message),
                FromServer::Ended(reason) => {
                    *lock(&self.ended) = Some(reason);
                    // Dropping the waiters tells each request that the process is gone.
                    lock(&self.waiting).clear();
                    lock(&self.stream).open = None;
                    self.gone.cancel();
                    return;
                }
            }
        }
    }

    fn to_stream(&self, event: Value) {
        let mut stream = lock(&self.stream);
        if let Some(open) = &stream.open {
            match open.try_send(event) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(session = %self.id, "the client does not read its GET stream; a message of the server process was dropped");
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(event)) => {
                    stream.open = None;
                    stream.backlog.push_back(event);
                }
            }
        } else {
            stream.backlog.push_back(event);
        }
        if stream.backlog.len() > STREAM_BACKLOG {
            stream.backlog.pop_front();
            tracing::warn!(session = %self.id, "no GET stream is open and {STREAM_BACKLOG} messages wait; the oldest was dropped");
        }
    }
}
