//! A scriptable Streamable HTTP MCP upstream that records every message it receives, so a test
//! can assert exactly what reached the upstream — or that nothing did — and make the upstream
//! misbehave on cue (hang, answer with an error, send bytes that are not JSON-RPC).
//!
//! It speaks 2025-11-25 only: `server/discover` gets -32601, so the gateway falls back to
//! `initialize`. Everything else a test does not script gets -32601 too.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// What the upstream does with one request.
pub enum Reply {
    /// `{"result": value}` with the request's id.
    Result(Value),
    /// `{"error": {"code", "message"}}` with the request's id.
    Error(i64, String),
    /// This exact body, as `application/json` (not checked; may be anything).
    Raw(String),
    /// Never answers (the connection stays open until the gateway gives up).
    Hang,
    /// Waits until the test opens the gate (`Notify::notify_one`), then replies as given.
    After(Arc<tokio::sync::Notify>, Box<Reply>),
    /// `307 Temporary Redirect` to this URL.
    Redirect(String),
    /// An SSE stream of `notifications/progress` for the request, one every 20 ms, forever:
    /// progress but never a reply.
    ProgressForever,
}

/// Decides the reply to every request other than `initialize` and `tools/list`.
pub type Script = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

/// One POST as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    /// The body parsed as JSON, or `Value::String` of the raw text when it is not JSON.
    pub body: Value,
}

impl Received {
    pub fn method(&self) -> Option<&str> {
        self.body.get("method").and_then(Value::as_str)
    }
}

struct Upstream {
    tools: Mutex<Vec<Value>>,
    script: Script,
    received: Mutex<Vec<Received>>,
}

pub struct RecordingUpstream {
    /// The endpoint to configure as the upstream's `url`.
    pub url: String,
    upstream: Arc<Upstream>,
}

/// A tool definition with an open object schema, annotated read-only.
pub fn read_only_tool(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object"},
        "annotations": {"readOnlyHint": true}
    })
}

/// A `tools/call` result with one text block.
pub fn text_result(text: &str) -> Reply {
    Reply::Result(json!({"content": [{"type": "text", "text": text}]}))
}

impl RecordingUpstream {
    /// Lists `tools`; answers every other request with `script`.
    pub async fn start(
        tools: Vec<Value>,
        script: impl Fn(&Value) -> Reply + Send + Sync + 'static,
    ) -> RecordingUpstream {
        let upstream =
            Arc::new(Upstream { tools: Mutex::new(tools), script: Arc::new(script), received: Mutex::new(Vec::new()) });
        // No body limit: tests send what the gateway lets through, however large.
        let app =
            Router::new().route("/mcp", post(handle)).layer(DefaultBodyLimit::disable()).with_state(upstream.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind recording upstream");
        let url = format!("http://{}/mcp", listener.local_addr().expect("local addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        RecordingUpstream { url, upstream }
    }

    /// Lists `tools` from now on, without telling anyone (no `list_changed`): a silent change.
    pub fn set_tools(&self, tools: Vec<Value>) {
        *self.upstream.tools.lock().unwrap() = tools;
    }

    /// Every POST received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.upstream.received.lock().unwrap().clone()
    }

    /// The `tools/call` requests received, in order.
    pub fn calls(&self) -> Vec<Value> {
        self.received().into_iter().filter(|r| r.method() == Some("tools/call")).map(|r| r.body).collect()
    }
}

async fn handle(State(upstream): State<Arc<Upstream>>, headers: HeaderMap, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    upstream.received.lock().unwrap().push(Received { headers, body: parsed.clone() });

    let Some(method) = parsed.get("method").and_then(Value::as_str) else {
        return StatusCode::ACCEPTED.into_response(); // a response from the gateway
    };
    let Some(id) = parsed.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response(); // a notification
    };
    let mut reply = match method {
        "initialize" => Reply::Result(json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": {"name": "recording-upstream", "version": "0.1.0"}
        })),
        "tools/list" => Reply::Result(json!({"tools": *upstream.tools.lock().unwrap()})),
        "server/discover" => Reply::Error(-32601, "Method not found".into()),
        _ => (upstream.script)(&parsed),
    };
    while let Reply::After(gate, then) = reply {
        gate.notified().await;
        reply = *then;
    }
    if let Reply::ProgressForever = reply {
        return progress_forever(&parsed);
    }
    let body = match reply {
        Reply::Result(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
        Reply::Error(code, message) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
        }
        Reply::Raw(raw) => raw,
        Reply::Redirect(to) => return (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response(),
        Reply::Hang => std::future::pending().await,
        Reply::After(..) => unreachable!("waited for above"),
        Reply::ProgressForever => unreachable!("answered above"),
    };
    ([(header::CONTENT_TYPE, "application/json"), (header::HeaderName::from_static("mcp-session-id"), "rec-1")], body)
        .into_response()
}

/// The endless progress stream of [`Reply::ProgressForever`], on the request's progress token.
fn progress_forever(request: &Value) -> Response {
    let token = request.pointer("/params/_meta/progressToken").cloned().unwrap_or(json!("recording"));
    let events = futures::stream::unfold(0u64, move |n| {
        let token = token.clone();
        async move {
            // The hostile upstream's own pace, not a test synchronisation.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let note = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": n}});
            Some((Ok::<_, std::convert::Infallible>(format!("data: {note}\n\n")), n + 1))
        }
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream"), (header::HeaderName::from_static("mcp-session-id"), "rec-1")],
        axum::body::Body::from_stream(events),
    )
        .into_response()
}
