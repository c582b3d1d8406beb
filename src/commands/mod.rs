//! Subcommands besides running the gateway: offline policy and pin tools, and clients of a
//! running gateway's admin API.

pub mod admin_client;
pub mod pins;
pub mod policy;
