//! Subcommands besides running the gateway: offline policy and pin tools, offline readers of
//! the audit log (`usage`, `audit explain`, `sessions replay`), and clients of a running
//! gateway's admin API.

pub mod admin_client;
pub mod explain;
pub mod pins;
pub mod policy;
pub mod replay;
pub mod usage;
