//! The HTTP/TLS client plumbing that both `upstream/` (targets) and `identity/` (authorization servers)
//! use, and the error-chain helpers both report with: a leaf that imports nothing of mcplex but the config
//! schema's TLS settings.

/// Reading an error's causes.
pub mod chain;
/// The pooled HTTP(S) client.
pub mod client;
/// rustls client configs and the crypto provider.
pub mod tls;

pub use chain::{error_chain, is_tls_failure};
pub use client::{CONNECTION_BUFFER, HttpClient, build_client};
