//! Forwards one client request to a target and carries the answer back: one message as one message,
//! a stream as a stream, with ids mapped both ways and progress extending the deadline.

mod forward;
mod parking;
mod send;
mod stream;

pub use forward::{EraBridge, Forward, Parking};
pub use send::forward;
pub use stream::resume;
