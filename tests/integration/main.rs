//! Integration tests: real MCP servers and clients on loopback, the sidecar in between.

mod audit;
mod authz;
mod catalog;
mod config_live;
mod contract;
mod docs;
mod eras;
mod faults;
mod identity;
mod interactive;
mod isolation;
mod layout;
mod manifests;
mod metrics;
mod on_behalf;
mod pins;
mod process;
mod profiles;
mod reference;
mod search;
mod security;
mod server_requests;
mod support;
mod tasks;
mod tls;
mod traces;
