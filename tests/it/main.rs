//! Integration tests: the real `tollgate` binary, real MCP servers and clients, real pipes and HTTP.
//! One binary (see DESIGN §9); `support/` starts processes and speaks raw MCP.

mod support;

mod adversarial;
mod amplification;
mod auth;
mod cli;
mod conformance;
mod cost;
mod errors;
mod fidelity;
mod generations;
mod isolation;
mod memory;
mod multi_upstream;
mod policy;
mod process_leak;
mod secrets;
mod server_everything;
mod sessions;
mod store;
mod telemetry;
mod tls;
mod transcripts;
mod transport_limits;
mod transport_matrix;
mod upstream_failures;
