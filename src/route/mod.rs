//! The one place where a message's way is decided: method → target(s), fan-out and merge, id maps,
//! era adaptation, and keeping the merged lists fresh. `downstream` hands messages in and gets
//! [`Outcome`]s back; `upstream` is told what to send where.
//!
//! Its parts, each using only those listed before it:
//! - [`channel`]: one target in its era (writing a request for it, its answer for the client, the streams
//!   reopened mid-call);
//! - [`session`]: one session-era client's state (channels, id maps, streams, the targets' GET streams);
//! - [`message`]: what flows through the router and what the client gets back;
//! - [`bridge`]: what crosses between eras (input rounds, parked calls, subscriptions);
//! - [`refresh`]: the targets of the config and the merged catalog, kept fresh;
//! - [`failure`]: what a client receives when routing fails, decided in one place;
//! - [`relay`]: one client request to a target and its answer back;
//! - [`method`]: what each client message does.

mod bridge;
mod channel;
mod failure;
mod message;
mod method;
mod refresh;
mod relay;
mod session;

pub use bridge::NoRandomness;
pub use message::{Caller, Inbound, Outcome};
pub use method::{handle, initialize_result};
pub use refresh::{DEFAULT_STARTUP_DEADLINE, PinScan, Router};
pub use session::{ClientSession, EncodedMessage};

/// The era adaptation and task ids, for the crate's property tests.
#[cfg(test)]
pub(crate) mod adapt {
    pub(crate) use super::channel::{
        AdaptError, MetaFor, Outgoing, Rewrite, add_modern_meta, client_task_id, rewrite_response, strip_modern_meta,
        write_request,
    };
}
