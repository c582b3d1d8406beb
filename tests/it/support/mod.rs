//! Test support: start the real binaries, find the npm/Python peers, and talk raw MCP.

pub mod deps;
pub mod http_client;
pub mod operated;
pub mod otlp;
pub mod process;
pub mod raw_http;
pub mod recording;
pub mod redis;
pub mod scrape;
pub mod stdio_client;

pub use deps::*;
pub use http_client::HttpClient;
pub use operated::{ADMIN_TOKEN, audit_records, eventually, operated_gateway, tollgate, tollgate_json};
pub use process::{Listening, http_upstream, stdio_upstream};
pub use scrape::{sample, scrape};
pub use stdio_client::StdioClient;

use std::time::Duration;

/// How long any single expected message may take before a test fails (not a sleep: a bound).
pub const WAIT: Duration = Duration::from_secs(30);

/// An HTTP client for a test: the gateway's own builder, which installs the rustls provider
/// reqwest needs (it is built without one) and follows no redirects.
pub fn http() -> reqwest::Client {
    tollgate::transport::client_tls::builder().build().expect("reqwest client")
}

pub fn tollgate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tollgate")
}

pub fn fixture_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tollgate-fixture")
}

/// `_meta` a 2026-07-28 client puts on every request.
pub fn stateless_meta() -> serde_json::Value {
    serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "it", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

pub fn initialize_params(capabilities: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "protocolVersion": "2025-11-25",
        "capabilities": capabilities,
        "clientInfo": {"name": "it", "version": "0"}
    })
}

/// Text of the first content item of a tools/call result.
pub fn first_text(result: &serde_json::Value) -> String {
    result["content"][0]["text"].as_str().unwrap_or_default().to_string()
}
