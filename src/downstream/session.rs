//! Legacy client sessions: per-target upstream channels, id maps, and the GET stream's queue.

use crate::hub::Hub;
use crate::upstream::{Channel, ClientContext, Target, UpstreamError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Messages queued for the client's GET stream before it connects (or while it reconnects).
const STREAM_QUEUE: usize = 256;

/// A request a target sent to the client, waiting for the client's answer.
pub struct PendingServerRequest {
    /// Where the answer goes.
    pub channel: Channel,
    /// The id the target used.
    pub upstream_id: Value,
}

/// One legacy client session.
pub struct Session {
    /// The `Mcp-Session-Id`.
    pub id: String,
    /// The client's identity and capabilities.
    pub context: Arc<ClientContext>,
    channels: tokio::sync::Mutex<HashMap<String, Channel>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
    server_requests: Mutex<HashMap<String, PendingServerRequest>>,
    in_flight: Mutex<HashMap<String, (Channel, Value)>>,
    log_level: Mutex<Option<Value>>,
    next_server_request: AtomicU64,
    stream_tx: mpsc::Sender<Value>,
    stream_rx: tokio::sync::Mutex<mpsc::Receiver<Value>>,
    last_used: Mutex<Instant>,
}

impl Session {
    /// A new session for a client that sent `initialize` with these params.
    pub fn new(context: ClientContext) -> Arc<Self> {
        let (stream_tx, stream_rx) = mpsc::channel(STREAM_QUEUE);
        Arc::new(Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            context: Arc::new(context),
            channels: tokio::sync::Mutex::new(HashMap::new()),
            pumps: Mutex::new(Vec::new()),
            server_requests: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            log_level: Mutex::new(None),
            next_server_request: AtomicU64::new(1),
            stream_tx,
            stream_rx: tokio::sync::Mutex::new(stream_rx),
            last_used: Mutex::new(Instant::now()),
        })
    }

    /// Marks the session as used now (idle sessions are dropped).
    pub fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    /// When the session was last used.
    pub fn last_used(&self) -> Instant {
        *lock(&self.last_used)
    }

    /// The channel to `target` for this session, opened on first use (legacy targets get their own session).
    pub async fn channel(self: &Arc<Self>, hub: &Arc<Hub>, target: &Arc<Target>) -> Result<Channel, UpstreamError> {
        let mut channels = self.channels.lock().await;
        if let Some(channel) = channels.get(target.name())
            && Arc::ptr_eq(channel.target(), target)
        {
            return Ok(channel.clone());
        }
        let channel = Channel::open(target, &self.context, true).await?;
        let level = lock(&self.log_level).clone();
        if let Some(level) = level {
            let set_level = json!({"jsonrpc":"2.0","id": target.next_request_id(),"method":"logging/setLevel","params":{"level": level}});
            let _ = channel.send(set_level, None).await;
        }
        if let Channel::Legacy(upstream) = &channel {
            let pump = tokio::spawn(crate::downstream::pump::pump_session_stream(
                Arc::downgrade(self),
                hub.clone(),
                channel.clone(),
                upstream.clone(),
            ));
            lock(&self.pumps).push(pump);
        }
        channels.insert(target.name().to_owned(), channel.clone());
        Ok(channel)
    }

    /// Every channel opened so far.
    pub async fn open_channels(&self) -> Vec<Channel> {
        self.channels.lock().await.values().cloned().collect()
    }

    /// Remembers the level so channels opened later get it too.
    pub fn set_log_level(&self, level: Value) {
        *lock(&self.log_level) = Some(level);
    }

    /// Gives a target's request a session-unique id and remembers where the answer goes.
    pub fn register_server_request(&self, channel: &Channel, mut request: Value) -> Value {
        let id = format!("mcplex-s{}", self.next_server_request.fetch_add(1, Ordering::Relaxed));
        if let Some(upstream_id) = request.get("id").cloned() {
            lock(&self.server_requests).insert(
                id.clone(),
                PendingServerRequest {
                    channel: channel.clone(),
                    upstream_id,
                },
            );
            request["id"] = json!(id);
        }
        request
    }

    /// Takes the pending request the client is answering.
    pub fn take_server_request(&self, id: &Value) -> Option<PendingServerRequest> {
        lock(&self.server_requests).remove(id.as_str()?)
    }

    /// Records a forwarded request so a `notifications/cancelled` can follow it.
    pub fn start_call(&self, client_id: &Value, channel: &Channel, upstream_id: &Value) {
        lock(&self.in_flight).insert(client_id.to_string(), (channel.clone(), upstream_id.clone()));
    }

    /// Forgets a finished request.
    pub fn end_call(&self, client_id: &Value) {
        lock(&self.in_flight).remove(&client_id.to_string());
    }

    /// The target and upstream id of an in-flight request.
    pub fn call_of(&self, client_id: &Value) -> Option<(Channel, Value)> {
        lock(&self.in_flight).get(&client_id.to_string()).cloned()
    }

    /// Queues a message for the GET stream; dropped (with a log line) if the client never reads.
    pub fn push_to_stream(&self, message: Value) {
        if self.stream_tx.try_send(message).is_err() {
            tracing::warn!(session = %self.id, "client GET stream queue is full; a server message was dropped");
        }
    }

    /// The receiver the GET stream reads; only one stream holds it at a time.
    pub fn stream_receiver(&self) -> &tokio::sync::Mutex<mpsc::Receiver<Value>> {
        &self.stream_rx
    }

    /// Ends upstream sessions and stops the pumps.
    pub async fn close(&self) {
        for pump in lock(&self.pumps).drain(..) {
            pump.abort();
        }
        let channels: Vec<Channel> = self.channels.lock().await.drain().map(|(_, c)| c).collect();
        for channel in channels {
            if let Channel::Legacy(session) = channel {
                session.close().await;
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// All legacy sessions by id.
#[derive(Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl SessionStore {
    /// Adds a session.
    pub fn insert(&self, session: Arc<Session>) {
        lock(&self.sessions).insert(session.id.clone(), session);
    }

    /// Finds a session.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.sessions).get(id).cloned()
    }

    /// Removes a session.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.sessions).remove(id)
    }

    /// Every session.
    pub fn all(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).values().cloned().collect()
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// True when there is no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes sessions idle for longer than `idle`, returning them so they can be closed.
    pub fn expire(&self, idle: std::time::Duration) -> Vec<Arc<Session>> {
        let mut sessions = lock(&self.sessions);
        let expired: Vec<String> = sessions
            .iter()
            .filter(|(_, s)| s.last_used().elapsed() > idle)
            .map(|(id, _)| id.clone())
            .collect();
        expired.into_iter().filter_map(|id| sessions.remove(&id)).collect()
    }
}
