//! What the benchmarks that drive real gateway processes share: the binaries, a minimal HTTP
//! upstream, child processes, CPU accounting, the load generator's HTTP client and load shapes,
//! and the report helpers. `benches/overhead.rs` measures Tollgate against direct calls and a
//! reference proxy; `benches/compare.rs` puts it beside other MCP gateways.
//!
//! Each bench includes this module with `mod common;` and uses a different part of it, so what
//! one bench leaves unused is not dead code.
#![allow(dead_code)]

pub mod bins;
pub mod client;
pub mod cpu;
pub mod load;
pub mod process;
pub mod report;
pub mod upstream;
