//! What the suites share: upstreams and sidecars to start, clients, a scripted misbehaving target, the
//! third-party Node fixtures, and waiting for a condition with one deadline.

pub mod common;
pub mod embedder;
pub mod node;
pub mod pki;
pub mod rogue;
pub mod wait;
