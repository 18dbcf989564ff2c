//! mcplex: one MCP endpoint on loopback that multiplexes many upstream MCP servers, in both protocol eras.
#![forbid(unsafe_code)]

pub mod catalog;
pub mod config;
pub mod jsonrpc;
pub mod mcp_headers;
pub mod sse;
pub mod upstream;
