//! Waiting in tests: every wait is for a condition, with one deadline for all, so a slow machine makes a
//! test slower, never wrong. Nothing here sleeps for a fixed time and then assumes something happened.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How long a condition may take before the test fails. Long on purpose: a passing test never waits this
/// long, and a loaded 2-core machine must not fail a test that is right.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(20);

/// Checks `probe` until it gives a value, and returns it; fails the test, naming `what` it waited for,
/// once [`PATIENCE`] has passed.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a condition that is true or false.
pub async fn until<F, Fut>(what: &str, mut holds: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(what, || {
        let check = holds();
        async move { check.await.then_some(()) }
    })
    .await
}

/// Waits until something accepts connections at `addr` (a server started as a process of its own).
pub async fn until_listening(what: &str, addr: &str) {
    until(&format!("{what} listens at {addr}"), || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await
}

/// Awaits `future`, failing the test, naming `what` it waited for, if it takes longer than [`PATIENCE`].
/// Tests that something does not wait on a hung peer give that peer a deadline far beyond [`PATIENCE`], so
/// only the condition decides, never the machine's speed.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("not within {PATIENCE:?}: {what}"),
    }
}

/// Checks that `holds` stays true for all of `window`: the one way a test says that something does not
/// happen. The window is chosen longer than the period of whatever would do it (a reconnect's first
/// backoff, a refresh interval), so a faulty sidecar is caught while it runs at its normal pace.
pub async fn holds_for<F, Fut>(what: &str, window: Duration, mut holds: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + window;
    loop {
        assert!(holds().await, "no longer true: {what}");
        if Instant::now() >= end {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}
