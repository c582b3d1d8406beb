//! Adversarial clients: framing, parsing, headers, identity, limits and lifecycle (sections A,
//! B and E of the case list in `SECURITY.md`). The shared pieces are here: a recording upstream
//! with an `echo` tool, raw-byte POSTs and a stdio client in front of the recording upstream.

mod calls;
mod framing;
mod identity;
mod versions;

use super::{gateway_before, gateway_before_with};
use crate::support::recording::{RecordingUpstream, Reply, read_only_tool, text_result};
use crate::support::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// A `tools/call` request for `tool` with empty arguments.
fn tool_call(id: impl Into<Value>, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id.into(), "method": "tools/call", "params": {"name": tool, "arguments": {}}})
}

/// An upstream with one read-only tool, `echo`, that answers with its arguments as text; any
/// other method is not found.
async fn echo_upstream() -> RecordingUpstream {
    RecordingUpstream::start(vec![read_only_tool("echo", "Echoes its arguments")], |request| {
        match request["method"].as_str() {
            Some("tools/call") => text_result(&request["params"]["arguments"].to_string()),
            _ => Reply::Error(-32601, "Method not found".into()),
        }
    })
    .await
}

async fn echo_gateway() -> (RecordingUpstream, Listening) {
    let upstream = echo_upstream().await;
    let gw = super::gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    (upstream, gw)
}

/// POSTs bytes as they are (not necessarily UTF-8) on the client's session; status and the
/// parsed JSON body.
async fn post_bytes(client: &HttpClient, body: Vec<u8>) -> (u16, Value) {
    let resp = tokio::time::timeout(WAIT, client.request_builder(body, &[]).send())
        .await
        .expect("reply in time")
        .expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON reply {text:?}: {e}")))
}

/// A `tollgate stdio` client in front of the recording upstream (config in `dir`).
fn stdio_before(upstream: &RecordingUpstream, dir: &tempfile::TempDir) -> StdioClient {
    let config = dir.path().join("tollgate.toml");
    let audit = "[audit]\nfile = \"audit/audit.jsonl\"\n";
    std::fs::write(&config, format!("{}{audit}", http_upstream("up", &upstream.url, ""))).unwrap();
    StdioClient::spawn(&["--config", config.to_str().unwrap()])
}
