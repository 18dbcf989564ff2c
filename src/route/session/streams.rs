//! Which streams a session-era client is reading right now: its GET stream, and the SSE streams of its
//! calls in flight. A request a target sends on its own GET stream, tied to no call, must reach the
//! client on one of them (TypeScript SDK servers send sampling and elicitation that way).

use crate::route::session::EncodedMessage;
use crate::sync::lock;
use crate::upstream::Link;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc};

/// Requests parked for a call stream that has not started yet; more are refused.
pub const MAX_PARKED: usize = 16;

/// The streams of one client.
#[derive(Default)]
pub struct ClientStreams {
    calls: Mutex<Vec<CallStream>>,
    next_call: AtomicU64,
    get_streams: AtomicUsize,
    parked: Mutex<Vec<EncodedMessage>>,
    /// Woken when a request is parked.
    parked_signal: Notify,
}

struct CallStream {
    id: u64,
    target: Arc<Link>,
    sender: mpsc::Sender<EncodedMessage>,
}

/// Where a message for the client can go now.
pub enum Route {
    /// The client's GET stream is open: queue it there.
    GetStream,
    /// No GET stream, but this call stream is being read.
    CallStream(mpsc::Sender<EncodedMessage>),
    /// Nothing the client reads now.
    Nowhere,
}

impl ClientStreams {
    /// Records a call stream to `target` while the guard lives; requests parked for a stream go out on it.
    pub fn open_call(self: &Arc<Self>, target: &Arc<Link>, sender: &mpsc::Sender<EncodedMessage>) -> CallGuard {
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        lock(&self.calls).push(CallStream {
            id,
            target: target.clone(),
            sender: sender.clone(),
        });
        for chunk in lock(&self.parked).drain(..) {
            let _ = sender.try_send(chunk);
        }
        CallGuard {
            streams: self.clone(),
            id,
        }
    }

    /// Records an open GET stream while the guard lives.
    pub fn open_get(self: &Arc<Self>) -> GetGuard {
        self.get_streams.fetch_add(1, Ordering::AcqRel);
        GetGuard(self.clone())
    }

    /// True while the client reads a GET stream.
    pub fn has_get_stream(&self) -> bool {
        self.get_streams.load(Ordering::Acquire) > 0
    }

    /// Where a message from `target` should go: the GET stream if one is open, else a call stream to the
    /// same target, else any call stream of the client.
    pub fn route_for(&self, target: &Arc<Link>) -> Route {
        if self.has_get_stream() {
            return Route::GetStream;
        }
        let calls = lock(&self.calls);
        let open = |c: &&CallStream| !c.sender.is_closed();
        calls
            .iter()
            .filter(open)
            .find(|c| Arc::ptr_eq(&c.target, target))
            .or_else(|| calls.iter().find(open))
            .map_or(Route::Nowhere, |c| Route::CallStream(c.sender.clone()))
    }
}

impl ClientStreams {
    /// Keeps a request until a call stream opens (a call is in flight but its stream has not started);
    /// gives it back when [`MAX_PARKED`] already wait.
    pub fn park(&self, chunk: EncodedMessage) -> Result<(), EncodedMessage> {
        let mut parked = lock(&self.parked);
        if parked.len() >= MAX_PARKED {
            return Err(chunk);
        }
        parked.push(chunk);
        drop(parked);
        self.parked_signal.notify_waiters();
        Ok(())
    }

    /// Takes what is parked (the session's last call ended before a stream could carry it).
    pub fn take_parked(&self) -> Vec<EncodedMessage> {
        std::mem::take(&mut *lock(&self.parked))
    }

    /// Resolves once a request is parked for a call stream (at once if one already is).
    pub async fn parked(&self) {
        loop {
            let signal = self.parked_signal.notified();
            tokio::pin!(signal);
            // Registered before the check, so a request parked in between still wakes us.
            signal.as_mut().enable();
            if !lock(&self.parked).is_empty() {
                return;
            }
            signal.await;
        }
    }
}

/// Unregisters a call stream when dropped.
pub struct CallGuard {
    streams: Arc<ClientStreams>,
    id: u64,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        lock(&self.streams.calls).retain(|c| c.id != self.id);
    }
}

/// Marks the GET stream closed when dropped.
pub struct GetGuard(Arc<ClientStreams>);

impl Drop for GetGuard {
    fn drop(&mut self) {
        self.0.get_streams.fetch_sub(1, Ordering::AcqRel);
    }
}
