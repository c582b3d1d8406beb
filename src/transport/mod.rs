//! The wire: downstream (clients) and upstream (MCP servers). No policy lives here.

pub mod client_tls;
pub mod downstream;
pub mod sse;
pub mod upstream;
