//! Locks that survive a poisoned mutex: a panic elsewhere must not take down every later user of the
//! same state (the data behind these locks stays consistent between statements).

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, taking the guard of a poisoned one as it is.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
