//! The HTTP/TLS client plumbing that `upstream/` (targets), `identity/` (authorization servers) and
//! `embeddings` (tool search's endpoint) use, and the error-chain helpers they report with: a leaf that
//! imports nothing of mcplex but the config schema's TLS settings and the body reader of `budget`.

/// Reading an error's causes.
pub mod chain;
/// The pooled HTTP(S) client.
pub mod client;
/// One bounded exchange that reads a whole answer.
pub mod exchange;
/// rustls client configs and the crypto provider.
pub mod tls;

pub use chain::{error_chain, is_tls_failure};
pub use client::{CONNECTION_BUFFER, Connector, HttpClient, build_client, build_connector, pooled};
