//! Session-era client sessions: ids, idle expiry and a cap on how many may be open.

use crate::route::ClientSession;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sessions open at once by default; `initialize` beyond it is refused with a clear error.
pub const DEFAULT_MAX_SESSIONS: usize = 1024;

/// One client session: the router's state for it plus when it was last used.
pub struct Session {
    /// The router's state for this client.
    pub route: Arc<ClientSession>,
    last_used: Mutex<Instant>,
}

impl Session {
    /// The `Mcp-Session-Id`.
    pub fn id(&self) -> &str {
        &self.route.id
    }

    /// Marks the session as used now (idle sessions are ended).
    pub fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        lock(&self.last_used).elapsed()
    }
}

/// The store is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "mcplex already has {0} client sessions open (its limit); end unused sessions with DELETE or wait for idle ones to expire"
)]
pub struct SessionLimit(pub usize);

/// All sessions by id.
pub struct SessionStore {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    limit: usize,
}

impl SessionStore {
    /// An empty store that holds at most `limit` sessions.
    pub fn new(limit: usize) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            limit: limit.max(1),
        }
    }

    /// Adds a session, unless the store is full.
    pub fn insert(&self, route: Arc<ClientSession>) -> Result<Arc<Session>, SessionLimit> {
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= self.limit {
            return Err(SessionLimit(self.limit));
        }
        let session = Arc::new(Session {
            route,
            last_used: Mutex::new(Instant::now()),
        });
        sessions.insert(session.id().to_owned(), session.clone());
        Ok(session)
    }

    /// Finds a session.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.sessions).get(id).cloned()
    }

    /// Removes a session.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.sessions).remove(id)
    }

    /// Removes every session, returning them so they can be closed.
    pub fn drain(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).drain().map(|(_, s)| s).collect()
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
    pub fn expire(&self, idle: Duration) -> Vec<Arc<Session>> {
        let mut sessions = lock(&self.sessions);
        let expired: Vec<String> = sessions
            .iter()
            .filter(|(_, s)| s.idle_for() > idle)
            .map(|(id, _)| id.clone())
            .collect();
        expired.into_iter().filter_map(|id| sessions.remove(&id)).collect()
    }
}
