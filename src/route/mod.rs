//! The one place where a message's way is decided: method → target(s), fan-out and merge, id maps,
//! era adaptation, and keeping the merged lists fresh. `downstream` hands messages in and gets
//! [`Outcome`]s back; `upstream` is told what to send where.

pub mod adapt;
pub mod bridge;
pub mod call;
pub mod channel;
pub mod chunk;
pub mod decide;
pub mod dispatch;
pub mod fetch;
pub mod forward;
pub mod listen;
pub mod message;
pub mod own;
pub mod park;
pub mod router;
pub mod session;
pub mod side;
pub mod slot;
pub mod streams;
pub mod subscribe;
pub mod tasks;

pub use channel::Channel;
pub use dispatch::handle;
pub use message::{Caller, Chunk, Inbound, Outcome};
pub use router::{Router, Snapshot};
pub use session::ClientSession;
pub use slot::{TargetSlot, TargetState};
