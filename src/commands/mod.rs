//! Offline subcommands (no gateway running): policy checks and explanations.

pub mod pins;
pub mod policy;
