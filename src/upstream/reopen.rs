//! When, and from where, mcplex reopens an upstream stream that ended or failed. Every stream it keeps open
//! follows these rules: a call's POST stream resumed before its response (SEP-1699), a client session's GET
//! stream, the GET stream of a session opened for one call, and a `subscriptions/listen`.
//!
//! - A stream whose events carried ids is reopened with `Last-Event-ID` from the last one, so what the target
//!   sent meanwhile is replayed, after the `retry` the target asked for (SSE: it holds for every later
//!   reconnection), never sooner than [`MIN_RESUME_WAIT`].
//! - Otherwise the wait starts at [`FIRST_BACKOFF`] and doubles with each attempt up to the longest wait; a
//!   stream that stayed open for [`STEADY`] was healthy, so the next failure starts from the first wait again.
//! - A stream may be given a most number of reopenings; past it, it is not reopened.

use std::time::Duration;
use tokio::time::Instant;

/// The first wait before reopening a stream that cannot resume; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait before reopening a stream.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The least wait before resuming, whatever `retry` said, so a target asking for none gets no busy loop.
pub const MIN_RESUME_WAIT: Duration = Duration::from_millis(50);
/// A stream that stayed open this long was steady: its next reopening starts from [`FIRST_BACKOFF`].
pub const STEADY: Duration = Duration::from_secs(5);

/// The reopening state of one stream.
#[derive(Debug)]
pub struct Reopen {
    backoff: Duration,
    resume_from: Option<String>,
    retry: Option<Duration>,
    opened_at: Option<Instant>,
    attempts: u32,
    limit: Option<u32>,
    longest_wait: Duration,
}

impl Reopen {
    /// A stream reopened for as long as its owner wants it.
    pub fn unlimited() -> Self {
        Self {
            backoff: FIRST_BACKOFF,
            resume_from: None,
            retry: None,
            opened_at: None,
            attempts: 0,
            limit: None,
            longest_wait: MAX_BACKOFF,
        }
    }

    /// A stream reopened `limit` times at most.
    pub fn at_most(limit: u32) -> Self {
        Self {
            limit: Some(limit),
            ..Self::unlimited()
        }
    }

    /// Waits no longer than `longest` (a call's deadline, say), whatever the target asked for.
    pub fn waiting_at_most(mut self, longest: Duration) -> Self {
        self.longest_wait = longest.max(MIN_RESUME_WAIT);
        self
    }

    /// The stream is open now.
    pub fn opened(&mut self) {
        self.opened_at = Some(Instant::now());
    }

    /// The stream ended or broke. `last_event_id` is the id of its last event that had one (`None` keeps the
    /// position an earlier stream reached: a replay that brought nothing new leaves it where it was), and
    /// `retry` the wait the target asked for, if it said.
    pub fn ended(&mut self, last_event_id: Option<&str>, retry: Option<Duration>) {
        if let Some(id) = last_event_id {
            self.resume_from = Some(id.to_owned());
        }
        self.retry = retry.or(self.retry);
        if self.opened_at.take().is_some_and(|at| at.elapsed() >= STEADY) {
            self.backoff = FIRST_BACKOFF;
        }
    }

    /// The target would not resume from the kept position (it may have dropped its events): the next
    /// opening starts afresh. True when there was a position to forget.
    pub fn start_afresh(&mut self) -> bool {
        self.resume_from.take().is_some()
    }

    /// The `Last-Event-ID` to reopen with.
    pub fn resume_from(&self) -> Option<&str> {
        self.resume_from.as_deref()
    }

    /// How many times the stream was reopened so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before the next reopening, counted as an attempt; `None` once the stream was reopened as
    /// often as it may be.
    pub fn next_wait(&mut self) -> Option<Duration> {
        if self.limit.is_some_and(|limit| self.attempts >= limit) {
            return None;
        }
        self.attempts += 1;
        let wait = if self.resume_from.is_some() || self.retry.is_some() {
            self.retry.unwrap_or(MIN_RESUME_WAIT)
        } else {
            self.backoff
        };
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Some(wait.clamp(MIN_RESUME_WAIT, self.longest_wait))
    }

    /// Sleeps for [`Reopen::next_wait`]; false, at once, when the stream may not be reopened again.
    pub async fn pause(&mut self) -> bool {
        match self.next_wait() {
            Some(wait) => {
                tokio::time::sleep(wait).await;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How long `pause` slept, on the paused clock.
    async fn paused_for(reopen: &mut Reopen) -> Option<Duration> {
        let start = Instant::now();
        reopen.pause().await.then(|| start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_cannot_resume_backs_off_doubling_up_to_the_longest_wait() {
        let mut reopen = Reopen::unlimited();
        let mut waits = Vec::new();
        for _ in 0..10 {
            reopen.ended(None, None);
            waits.push(paused_for(&mut reopen).await.unwrap());
        }
        let millis: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_starts_its_backoff_over_but_a_flapping_one_does_not() {
        let mut reopen = Reopen::unlimited();
        for _ in 0..3 {
            reopen.ended(None, None);
            reopen.pause().await;
        }
        // Open for less than STEADY: the backoff keeps growing.
        reopen.opened();
        tokio::time::advance(STEADY / 2).await;
        reopen.ended(None, None);
        assert_eq!(paused_for(&mut reopen).await, Some(Duration::from_secs(2)));
        // Open for STEADY: the next failure waits the first backoff again.
        reopen.opened();
        tokio::time::advance(STEADY).await;
        reopen.ended(None, None);
        assert_eq!(paused_for(&mut reopen).await, Some(FIRST_BACKOFF));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_with_event_ids_resumes_from_the_last_after_the_targets_retry() {
        let mut reopen = Reopen::unlimited();
        reopen.ended(Some("e-1"), None);
        assert_eq!(reopen.resume_from(), Some("e-1"));
        assert_eq!(paused_for(&mut reopen).await, Some(MIN_RESUME_WAIT));
        // `retry` holds for later reconnections too; a replay with no new id keeps the position.
        reopen.ended(Some("e-2"), Some(Duration::from_millis(700)));
        reopen.ended(None, None);
        assert_eq!(reopen.resume_from(), Some("e-2"));
        assert_eq!(paused_for(&mut reopen).await, Some(Duration::from_millis(700)));
        // A target asking for no wait at all still gets the least one; one asking for hours, the longest.
        reopen.ended(None, Some(Duration::ZERO));
        assert_eq!(paused_for(&mut reopen).await, Some(MIN_RESUME_WAIT));
        reopen.ended(None, Some(Duration::from_secs(3600)));
        assert_eq!(paused_for(&mut reopen).await, Some(MAX_BACKOFF));
        assert!(reopen.start_afresh());
        assert_eq!(reopen.resume_from(), None);
        assert!(!reopen.start_afresh());
    }

    #[tokio::test(start_paused = true)]
    async fn a_limited_stream_stops_after_its_last_reopening_without_waiting() {
        let mut reopen = Reopen::at_most(3).waiting_at_most(Duration::from_millis(100));
        reopen.ended(Some("e"), Some(Duration::from_secs(10)));
        for _ in 0..3 {
            assert_eq!(paused_for(&mut reopen).await, Some(Duration::from_millis(100)));
        }
        assert_eq!(reopen.attempts(), 3);
        let start = Instant::now();
        assert!(!reopen.pause().await);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
