//! Keeping the merged lists fresh: a slot per target that fetches its lists (every page) when asked, and
//! the router that merges what every slot holds into the snapshot each request reads.

mod drift;
mod indexed;
mod list_fetch;
mod pin_scan;
mod router;
mod target_slot;
mod vectorize;

pub use pin_scan::PinScan;
pub use router::{DEFAULT_STARTUP_DEADLINE, Router, Snapshot};
pub use target_slot::TargetSlot;
pub use vectorize::IndexedVectors;
