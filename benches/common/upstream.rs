//! A minimal in-process MCP upstream over HTTP, the same for every front a bench measures.

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The parts of an incoming message the upstream looks at; the id stays raw text.
#[derive(Deserialize)]
pub struct Incoming<'a> {
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub method: Option<Cow<'a, str>>,
}

pub const TOOLS: &str = r#"{"tools":[{"name":"echo","description":"Answers ok","inputSchema":{"type":"object","properties":{"message":{"type":"string"}},"required":["message"]},"annotations":{"readOnlyHint":true}}]}"#;
pub const INITIALIZED: &str = r#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"bench-upstream","version":"0"}}"#;

pub async fn upstream_handler(body: Bytes) -> Response {
    let Ok(msg) = serde_json::from_slice::<Incoming>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    // Notifications (`notifications/initialized`) and responses: accepted, no body.
    let Some(id) = msg.id else { return StatusCode::ACCEPTED.into_response() };
    let id = id.get();
    let json = |status: StatusCode, body: String| (status, [("content-type", "application/json")], body);
    let result = |r: &str| json(StatusCode::OK, format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{r}}}"#));
    let not_found = |status| {
        json(status, format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"Method not found"}}}}"#))
    };
    match msg.method.as_deref().unwrap_or("") {
        "tools/call" => result(r#"{"content":[{"type":"text","text":"ok"}]}"#).into_response(),
        "initialize" => {
            let mut r = result(INITIALIZED).into_response();
            r.headers_mut().insert("mcp-session-id", "bench-upstream-session".parse().expect("header value"));
            r
        }
        "tools/list" => result(TOOLS).into_response(),
        "ping" => result("{}").into_response(),
        // No 2026-07-28 here: the gateway falls back to initialize.
        "server/discover" => not_found(StatusCode::NOT_FOUND).into_response(),
        _ => not_found(StatusCode::OK).into_response(),
    }
}

/// A stateful 2025-11-25 MCP server answering `tools/call` at once with JSON (no SSE), on
/// loopback with TCP_NODELAY. Returns its URL.
pub async fn mini_upstream() -> String {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = Router::new().route("/mcp", post(upstream_handler));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/mcp")
}
