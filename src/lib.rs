//! mcplex: one MCP endpoint on loopback that multiplexes many upstream MCP servers, in both protocol eras.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod audit;
pub mod budget;
pub mod catalog;
pub mod child;
pub mod clock;
pub mod config;
pub mod downstream;
pub mod embeddings;
pub mod http_front;
pub mod identity;
pub mod jwks;
pub mod metrics;
pub mod net;
pub mod parking;
pub mod policy;
pub mod protocol;
pub mod route;
pub mod serve;
pub mod server_end;
pub mod sync;
pub mod telemetry;
pub mod upstream;

#[cfg(test)]
mod properties;
