//! The client side: newline-delimited stdio and Streamable HTTP.

pub mod http;
pub mod listener;
pub mod stdio;
pub mod tls;
