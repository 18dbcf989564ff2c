//! One budget for the bytes of messages mcplex holds at once (request bodies, targets' answers, SSE
//! events), shared by every client and target. Holding a message takes part of the budget until the
//! message is written out or dropped; when the budget is spent, the request that needed more gets a
//! clear error instead of the pod getting an OOM kill. With the budget bounded, so is the sidecar's
//! memory (BENCHMARKS.md and the README show the sizing).

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default budget: room for one answer at the largest message size mcplex reads (16 MiB, counted
/// twice: as it came in and as it goes out) plus ordinary traffic.
pub const DEFAULT_BUDGET_BYTES: usize = 48 * 1024 * 1024;

/// Permits are kibibytes so that the budget fits a semaphore's count.
const UNIT: usize = 1024;

/// The shared budget.
#[derive(Debug)]
pub struct Budget {
    permits: Arc<Semaphore>,
    limit_bytes: usize,
}

/// The budget was spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "mcplex already holds {} MiB of messages in flight, its limit; retry once calls in progress finish",
    limit_bytes / (1024 * 1024)
)]
pub struct OverBudget {
    /// The budget in bytes.
    pub limit_bytes: usize,
}

impl Budget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Arc<Self> {
        let units = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(units)),
            limit_bytes: bytes,
        })
    }

    /// An empty hold on this budget, to grow as a message arrives.
    pub fn hold(self: &Arc<Self>) -> Hold {
        Hold {
            budget: Some(self.clone()),
            permit: None,
            bytes: 0,
        }
    }

    /// Bytes held now (rounded up to KiB).
    pub fn held_bytes(&self) -> usize {
        (self.limit_bytes.div_ceil(UNIT) - self.permits.available_permits()) * UNIT
    }
}

/// Part of the budget held for one message; returned when dropped.
#[derive(Debug, Default)]
pub struct Hold {
    budget: Option<Arc<Budget>>,
    permit: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Hold {
    /// A hold on no budget (for messages mcplex writes itself, which are small).
    pub fn none() -> Self {
        Self::default()
    }

    /// Takes `more` bytes of the budget, or fails without waiting.
    pub fn grow(&mut self, more: usize) -> Result<(), OverBudget> {
        let Some(budget) = &self.budget else { return Ok(()) };
        let held_units = self.bytes.div_ceil(UNIT);
        let wanted_units = (self.bytes + more).div_ceil(UNIT);
        let extra = u32::try_from(wanted_units - held_units).map_err(|_| OverBudget {
            limit_bytes: budget.limit_bytes,
        })?;
        if extra > 0 {
            let permit = budget
                .permits
                .clone()
                .try_acquire_many_owned(extra)
                .map_err(|_| OverBudget {
                    limit_bytes: budget.limit_bytes,
                })?;
            match &mut self.permit {
                Some(held) => held.merge(permit),
                None => self.permit = Some(permit),
            }
        }
        self.bytes += more;
        Ok(())
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Moves everything `other` holds into this hold.
    pub fn merge(&mut self, mut other: Hold) {
        if let Some(permit) = other.permit.take() {
            match &mut self.permit {
                Some(held) => held.merge(permit),
                None => self.permit = Some(permit),
            }
        }
        self.bytes += other.bytes;
        if self.budget.is_none() {
            self.budget = other.budget.take();
        }
    }
}

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The body is longer than the limit.
    #[error("the body is larger than the {limit} byte limit")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Holding the body would exceed the message budget.
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
    /// The connection failed while the body was read.
    #[error("the body could not be read: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Reads a whole body of at most `limit` bytes, growing `hold` by `factor` times every byte read (2 for
/// messages that will be copied once more on their way out).
pub async fn read_body<B>(mut body: B, limit: usize, hold: &mut Hold, factor: usize) -> Result<Bytes, ReadError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut first: Option<Bytes> = None;
    // Sized once from Content-Length when the peer sent one: growing by doubling would hold the old and
    // the new buffer at once.
    let expected = body.size_hint().exact().and_then(|n| usize::try_from(n).ok());
    if expected.is_some_and(|n| n > limit) {
        return Err(ReadError::TooLarge { limit });
    }
    let mut rest = BytesMut::new();
    let mut length = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Body(e.into()))?;
        let Ok(data) = frame.into_data() else { continue };
        length += data.len();
        if length > limit {
            return Err(ReadError::TooLarge { limit });
        }
        hold.grow(factor * data.len())?;
        // The usual single-frame body is kept as it came, without a copy.
        match first.take() {
            None if rest.is_empty() => first = Some(data),
            None => rest.extend_from_slice(&data),
            Some(earlier) => {
                rest.reserve(expected.unwrap_or(0).max(earlier.len() + data.len()));
                rest.extend_from_slice(&earlier);
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| rest.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_take_and_return_the_budget() {
        let budget = Budget::new(10 * 1024);
        let mut first = budget.hold();
        first.grow(6000).unwrap();
        assert_eq!(budget.held_bytes(), 6 * 1024);
        let mut second = budget.hold();
        assert_eq!(second.grow(5000), Err(OverBudget { limit_bytes: 10 * 1024 }));
        second.grow(4000).unwrap();
        assert_eq!(budget.held_bytes(), 10 * 1024);
        drop(first);
        assert_eq!(budget.held_bytes(), 4 * 1024);
        let mut third = budget.hold();
        third.grow(10).unwrap();
        second.merge(third);
        assert_eq!(second.bytes(), 4010);
        drop(second);
        assert_eq!(budget.held_bytes(), 0);
        assert!(Hold::none().grow(usize::MAX / 2).is_ok());
        assert!(OverBudget { limit_bytes: 48 << 20 }.to_string().contains("48 MiB"));
    }
}
