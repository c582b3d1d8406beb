//! Integration tests: the real `tollgate` binary, real MCP servers and clients, real pipes and HTTP.
//! One binary (see DESIGN §9); `support/` starts processes and speaks raw MCP.

mod support;

mod cli;
mod conformance;
mod errors;
mod fidelity;
mod generations;
mod memory;
mod multi_upstream;
mod policy;
mod process_leak;
mod server_everything;
mod sessions;
mod store;
mod telemetry;
mod transcripts;
mod transport_matrix;
mod upstream_failures;
