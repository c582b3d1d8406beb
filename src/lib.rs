//! Tollgate: a security-first MCP gateway. See ARCHITECTURE.md for the map.
// `deny`, not `forbid`: exactly one function may opt out, `transport::upstream::sandbox::confine`
// (resource limits and no-new-privileges must be set between fork and exec, which needs
// `Command::pre_exec`). Everything else stays free of unsafe code; the binary root forbids it.
#![deny(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod commands;
pub mod config;
pub mod cost;
pub mod error;
pub mod gateway;
pub mod hex;
pub mod jsonrpc;
pub mod layers;
pub mod mcp;
pub mod policy;
pub mod secrets;
pub mod session;
pub mod telemetry;
pub mod transport;
