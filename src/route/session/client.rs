//! The routing state of one session-era client: its channel to each target (opened on first use),
//! the id maps for its calls and for the targets' requests to it, and the queue of messages for its
//! GET stream, fed by a pump per upstream session that carries what the target sends on its own stream.

use crate::budget::Budget;
use crate::identity::Acting;
use crate::metrics::{Delivery, Metrics};
use crate::protocol::ClientContext;
use crate::route::channel::Channel;
use crate::route::session::encoded::{EncodedMessage, encode};
use crate::route::session::found::FoundTools;
use crate::route::session::listens::ResourceListens;
use crate::route::session::server_requests::{
    MAX_PENDING_SERVER_REQUESTS, PendingServerRequest, TooManyPending, refuse_server_request,
};
use crate::route::session::streams::{ClientStreams, Route};
use crate::sync::lock;
use crate::upstream::Link;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OnceCell, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Messages queued for the client's GET stream before it connects (or while it reconnects).
pub const STREAM_QUEUE: usize = 256;
/// Bytes those queued messages may take.
pub const STREAM_QUEUE_BYTES: usize = 1024 * 1024;

type ChannelCell = (Arc<Link>, Arc<OnceCell<Channel>>);

/// A request of a session-era client that a target has not answered yet.
struct InFlight {
    channel: Channel,
    upstream_id: Value,
    /// The `_meta.progressToken` the client gave, if any.
    progress_token: Option<Value>,
}

/// One session-era client, as the router sees it.
pub struct ClientSession {
    /// The session id (for logs).
    pub id: String,
    /// The client's identity and capabilities.
    pub context: Arc<ClientContext>,
    pub(super) channels: Mutex<HashMap<String, ChannelCell>>,
    server_requests: Mutex<HashMap<String, PendingServerRequest>>,
    in_flight: Mutex<HashMap<String, InFlight>>,
    pub(super) log_level: Mutex<Option<Value>>,
    next_server_request: AtomicU64,
    outbox: mpsc::Sender<EncodedMessage>,
    inbox: tokio::sync::Mutex<mpsc::Receiver<EncodedMessage>>,
    queued_bytes: AtomicUsize,
    budget: Arc<Budget>,
    metrics: Arc<Metrics>,
    pub(super) closed: CancellationToken,
    /// The streams the client is reading now.
    pub streams: Arc<ClientStreams>,
    /// The caller the session belongs to, when inbound identity is on (its token is updated with each
    /// request; the subject never changes).
    pub acting: Option<Arc<Acting>>,
    /// Resources the client watches at 2026-07-28 targets.
    pub listens: ResourceListens,
    /// Tools the client found with `find_tools` (tool search), listed in its `tools/list`.
    pub found: Mutex<FoundTools>,
}

impl ClientSession {
    /// Routing state for a client that sent `initialize` with this context; messages queued for its GET
    /// stream take their share of `budget`; requests from targets are counted in `metrics`.
    pub fn new(
        id: String,
        context: ClientContext,
        acting: Option<Arc<Acting>>,
        budget: Arc<Budget>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let (outbox, inbox) = mpsc::channel(STREAM_QUEUE);
        Arc::new(Self {
            id,
            context: Arc::new(context),
            channels: Mutex::new(HashMap::new()),
            server_requests: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            log_level: Mutex::new(None),
            next_server_request: AtomicU64::new(1),
            outbox,
            inbox: tokio::sync::Mutex::new(inbox),
            queued_bytes: AtomicUsize::new(0),
            budget,
            metrics,
            closed: CancellationToken::new(),
            streams: Arc::default(),
            acting,
            listens: ResourceListens::default(),
            found: Mutex::default(),
        })
    }

    /// A token cancelled when the session ends.
    pub fn ended(&self) -> CancellationToken {
        self.closed.clone()
    }

    /// Forgets the channel to `target` (its pump ended because the target was retired).
    pub fn forget_channel(&self, target: &Arc<Link>) {
        let mut channels = lock(&self.channels);
        if channels
            .get(target.name())
            .is_some_and(|(known, _)| Arc::ptr_eq(known, target))
        {
            channels.remove(target.name());
        }
    }

    /// Every channel opened so far.
    pub fn open_channels(&self) -> Vec<Channel> {
        lock(&self.channels)
            .values()
            .filter_map(|(_, cell)| cell.get().cloned())
            .collect()
    }

    /// Remembers the level so channels opened later get it too.
    pub fn set_log_level(&self, level: Value) {
        *lock(&self.log_level) = Some(level);
    }

    /// Gives a target's request a session-unique id and remembers where the answer goes. `None` when
    /// too many requests already wait for this client: the target is answered with an error instead.
    pub fn register_server_request(&self, channel: &Channel, mut request: Value) -> Option<Value> {
        let Some(upstream_id) = request.get("id").cloned() else {
            return Some(request);
        };
        let id = format!("mcplex-s{}", self.next_server_request.fetch_add(1, Ordering::Relaxed));
        {
            let mut pending = lock(&self.server_requests);
            if pending.len() >= MAX_PENDING_SERVER_REQUESTS {
                drop(pending);
                refuse_server_request(
                    channel,
                    upstream_id,
                    format!(
                        "the client has {MAX_PENDING_SERVER_REQUESTS} unanswered requests from targets; this one is refused"
                    ),
                );
                return None;
            }
            pending.insert(
                id.clone(),
                PendingServerRequest::Upstream {
                    channel: channel.clone(),
                    upstream_id,
                },
            );
        }
        request["id"] = json!(id);
        Some(request)
    }

    /// Carries a request a target sent outside any call to a stream the client reads: its GET stream,
    /// else one of its call streams (the answer comes back by id either way). With no stream open, the
    /// target gets an error at once instead of waiting for its timeout.
    pub fn deliver_server_request(&self, channel: &Channel, request: Value) {
        let Some(request) = self.register_server_request(channel, request) else {
            return;
        };
        match self.carry(channel, request) {
            Ok(delivery) => self.count_server_request(channel, delivery),
            Err(request) => {
                self.count_server_request(channel, Delivery::Refused);
                if let Some(pending) = request.get("id").and_then(|id| self.take_server_request(id)) {
                    pending.refuse(
                        "the client has no stream open to receive the request (no GET stream, no call in progress)"
                            .into(),
                    );
                }
            }
        }
    }

    /// Carries a target's cancellation of its own request (already given the client's id) the way the
    /// request itself went, so a client without a GET stream reads it on the call stream that brought the
    /// request. With no stream to carry it, it waits on the GET stream's queue like other notifications.
    pub fn deliver_cancellation(&self, channel: &Channel, notice: Value) {
        if let Err(notice) = self.carry(channel, notice) {
            self.push_to_stream(notice);
        }
    }

    /// Sends a message from `channel`'s target to the GET stream if the client has one open, else to a call
    /// stream, else holds it for the call stream of a call in flight whose stream has not started; gives it
    /// back when there is none of those.
    fn carry(&self, channel: &Channel, message: Value) -> Result<Delivery, Value> {
        match self.streams.route_for(channel.link()) {
            Route::GetStream => {
                self.push_to_stream(message);
                Ok(Delivery::GetStream)
            }
            Route::CallStream(stream) => {
                if let Err(mpsc::error::TrySendError::Full(chunk) | mpsc::error::TrySendError::Closed(chunk)) =
                    stream.try_send(EncodedMessage::of(&message))
                {
                    drop(chunk);
                    self.push_to_stream(message);
                }
                Ok(Delivery::CallStream)
            }
            Route::Nowhere => {
                // A call in flight whose stream has not started yet will carry it.
                let has_calls = !lock(&self.in_flight).is_empty();
                if has_calls && self.streams.park(EncodedMessage::of(&message)).is_ok() {
                    return Ok(Delivery::Parked);
                }
                Err(message)
            }
        }
    }

    /// Counts a request `channel`'s target sent to this client, by how it was delivered.
    pub fn count_server_request(&self, channel: &Channel, delivery: Delivery) {
        self.metrics.server_request(channel.link().name(), delivery);
    }

    /// Makes a request to the client for the bridge: the message to send it (with an id in this
    /// session's space) and where its answer will arrive.
    pub fn ask(
        &self,
        method: &str,
        params: Option<&Value>,
    ) -> Result<(Value, oneshot::Receiver<Value>), TooManyPending> {
        let id = format!("mcplex-s{}", self.next_server_request.fetch_add(1, Ordering::Relaxed));
        let (answer, answered) = oneshot::channel();
        {
            let mut pending = lock(&self.server_requests);
            if pending.len() >= MAX_PENDING_SERVER_REQUESTS {
                return Err(TooManyPending);
            }
            pending.insert(id.clone(), PendingServerRequest::Bridged(answer));
        }
        let mut request = json!({ "jsonrpc": "2.0", "id": id, "method": method });
        if let Some(params) = params {
            request["params"] = params.clone();
        }
        Ok((request, answered))
    }

    /// Forgets requests of the bridge whose answers nobody waits for any more.
    pub fn forget_unanswered(&self) {
        lock(&self.server_requests).retain(|_, pending| match pending {
            PendingServerRequest::Bridged(answer) => !answer.is_closed(),
            PendingServerRequest::Upstream { .. } => true,
        });
    }

    /// Takes the pending request the client is answering.
    pub fn take_server_request(&self, id: &Value) -> Option<PendingServerRequest> {
        lock(&self.server_requests).remove(id.as_str()?)
    }

    /// A target's `notifications/cancelled` of a request it sent the client, with the id the client knows
    /// it by; the request is forgotten (an answer would reach nobody). `None` when the client holds no such
    /// request from that target, so the notice has nothing to cancel and is not passed on.
    pub fn cancelled_server_request(&self, channel: &Channel, mut notice: Value) -> Option<Value> {
        let upstream = notice.get("params")?.get("requestId")?;
        let target = channel.link().name();
        let client_id = {
            let mut pending = lock(&self.server_requests);
            let client_id = pending
                .iter()
                .find(|(_, request)| match request {
                    PendingServerRequest::Upstream { channel, upstream_id } => {
                        upstream_id == upstream && channel.link().name() == target
                    }
                    PendingServerRequest::Bridged(_) => false,
                })
                .map(|(client_id, _)| client_id.clone())?;
            pending.remove(&client_id);
            client_id
        };
        notice["params"]["requestId"] = json!(client_id);
        Some(notice)
    }

    /// Records a forwarded request so a `notifications/cancelled` can follow it and its progress reach
    /// the client.
    pub fn start_call(
        &self,
        client_id: &Value,
        channel: &Channel,
        upstream_id: &Value,
        progress_token: Option<&Value>,
    ) {
        let call = InFlight {
            channel: channel.clone(),
            upstream_id: upstream_id.clone(),
            progress_token: progress_token.cloned(),
        };
        lock(&self.in_flight).insert(client_id.to_string(), call);
    }

    /// Forgets a finished request.
    pub fn end_call(&self, client_id: &Value) {
        let idle = {
            let mut in_flight = lock(&self.in_flight);
            in_flight.remove(&client_id.to_string());
            in_flight.is_empty()
        };
        if idle {
            self.settle_parked();
        }
    }

    /// Settles what waits for a call stream once no call is left to carry it: a GET stream the client opened
    /// since gets it, else requests are refused (the target hears at once) and notices dropped. A call turns
    /// into a stream when a request is parked, but one whose answer came in the same instant ends without.
    fn settle_parked(&self) {
        for chunk in self.streams.take_parked() {
            let Ok(message) = serde_json::from_slice::<Value>(&chunk.json) else {
                continue;
            };
            if self.streams.has_get_stream() {
                self.push_to_stream(message);
            } else if let Some(pending) = message.get("id").and_then(|id| self.take_server_request(id)) {
                pending.refuse("the client has no stream open to receive the request (its calls ended)".into());
            }
        }
    }

    /// The channel and upstream id of an in-flight request.
    pub fn call_of(&self, client_id: &Value) -> Option<(Channel, Value)> {
        let calls = lock(&self.in_flight);
        let call = calls.get(&client_id.to_string())?;
        Some((call.channel.clone(), call.upstream_id.clone()))
    }

    /// True when a request the client has in flight at `channel`'s target asked for progress under `token`.
    pub fn awaits_progress(&self, channel: &Channel, token: &Value) -> bool {
        let target = channel.link().name();
        lock(&self.in_flight)
            .values()
            .any(|call| call.progress_token.as_ref() == Some(token) && call.channel.link().name() == target)
    }

    /// Queues a message for the GET stream. When the queue is full (in messages or bytes) the message
    /// is dropped with a log line, and a request in it is answered with an error so the target does not
    /// wait for nothing.
    pub fn push_to_stream(&self, message: Value) {
        let json = encode(&message);
        let size = json.len();
        let mut hold = self.budget.hold();
        let fits =
            self.queued_bytes.fetch_add(size, Ordering::AcqRel) + size <= STREAM_QUEUE_BYTES && hold.grow(size).is_ok();
        if fits && self.outbox.try_send(EncodedMessage { json, hold }).is_ok() {
            return;
        }
        self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
        tracing::warn!(session = %self.id, "client GET stream queue is full; a server message was dropped");
        if let Some(pending) = message.get("id").and_then(|id| self.take_server_request(id)) {
            pending.refuse("the client is not reading its GET stream".into());
        }
    }

    /// The queue the GET stream reads; only one stream holds it at a time. Call
    /// [`ClientSession::dequeued`] for every message taken.
    pub fn stream_inbox(&self) -> &tokio::sync::Mutex<mpsc::Receiver<EncodedMessage>> {
        &self.inbox
    }

    /// Frees the queue room of a message the GET stream took.
    pub fn dequeued(&self, message: &EncodedMessage) {
        self.queued_bytes.fetch_sub(message.json.len(), Ordering::AcqRel);
    }

    /// Stops the pumps and ends this client's upstream sessions (concurrently, each within its deadline).
    pub async fn close(&self) {
        self.closed.cancel();
        let channels: Vec<Channel> = lock(&self.channels)
            .drain()
            .filter_map(|(_, (_, cell))| cell.get().cloned())
            .collect();
        futures_util::future::join_all(
            channels
                .iter()
                .filter_map(|channel| channel.legacy_session().map(|session| session.close())),
        )
        .await;
    }
}
