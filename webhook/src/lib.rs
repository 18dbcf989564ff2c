//! mcplex-webhook: injects the mcplex sidecar into annotated pods, online (admission webhook) or offline (`inject`).
#![forbid(unsafe_code)]

pub mod inject;
pub mod metrics;
pub mod mutate;
pub mod review;
pub mod serve_end;
pub mod server;
pub mod settings;

pub use mutate::{MutateError, Outcome, mutate};
pub use settings::Defaults;
