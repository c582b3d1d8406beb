//! Tollgate: a security-first MCP gateway. See ARCHITECTURE.md for the map.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod commands;
pub mod config;
pub mod cost;
pub mod error;
pub mod gateway;
pub mod jsonrpc;
pub mod layers;
pub mod mcp;
pub mod policy;
pub mod secrets;
pub mod session;
pub mod telemetry;
pub mod transport;
