//! Era bridging, for what one era can do and the other cannot say the same way:
//! - a session-era client calling a 2026-07-28 target answers the target's `input_required` rounds as real
//!   requests ([`input`]);
//! - a 2026-07-28 client calling a session-era target that asks for input mid-call has the call parked and
//!   gets `input_required` ([`park`]);
//! - a session-era client's `resources/subscribe` at a 2026-07-28 target becomes a `subscriptions/listen`
//!   ([`subscribe`]).

mod input;
mod park;
mod subscribe;

pub use input::{Bridge, BridgeError, asks_for_input};
pub use park::{NoRandomness, ParkError, Parked, ParkedCalls, close_own_session, input_required};
pub use subscribe::{SubscribeError, Updates, change as change_subscription, keep_listening, open_listen};
