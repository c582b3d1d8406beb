//! A scripted MCP client over Streamable HTTP: raw requests, session header, JSON or SSE replies.

use super::WAIT;
use futures::StreamExt;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tollgate::transport::sse::SseParser;

pub struct HttpClient {
    pub url: String,
    pub http: reqwest::Client,
    pub session: Option<String>,
    pub protocol: Option<String>,
    /// Sent as `Authorization` on every request (`Bearer …`), when set.
    pub authorization: Option<String>,
    next_id: u64,
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub content_type: String,
    /// Every JSON-RPC message in the body (one for JSON, several for SSE).
    pub messages: Vec<Value>,
}

impl Reply {
    /// The last message: the response to the request.
    pub fn response(&self) -> &Value {
        self.messages.last().unwrap_or_else(|| panic!("empty reply, status {}", self.status))
    }
}

impl HttpClient {
    pub fn new(url: &str) -> HttpClient {
        HttpClient {
            url: url.to_string(),
            http: crate::support::http(),
            session: None,
            protocol: None,
            authorization: None,
            next_id: 1,
        }
    }

    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// A POST of `body` (any bytes, UTF-8 or not) with this client's session, protocol and
    /// credentials, plus `headers`.
    pub fn request_builder(&self, body: impl Into<reqwest::Body>, headers: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut b = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        if let Some(s) = &self.session {
            b = b.header("mcp-session-id", s);
        }
        if let Some(p) = &self.protocol {
            b = b.header("mcp-protocol-version", p);
        }
        if let Some(a) = &self.authorization {
            b = b.header("authorization", a);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b
    }

    /// POSTs raw text and reads the whole reply.
    pub async fn post_raw(&self, body: String, headers: &[(&str, &str)]) -> Reply {
        let resp = tokio::time::timeout(WAIT, self.request_builder(body, headers).send())
            .await
            .expect("reply in time")
            .expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let text = tokio::time::timeout(WAIT, resp.text()).await.expect("body in time").expect("body");
        let messages = if content_type.starts_with("text/event-stream") {
            SseParser::new(usize::MAX)
                .feed(text.as_bytes())
                .iter()
                .filter_map(|d| serde_json::from_str(d).ok())
                .collect()
        } else if text.trim().is_empty() {
            Vec::new()
        } else {
            vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON body {text:?}: {e}"))]
        };
        Reply { status, headers, content_type, messages }
    }

    pub async fn post(&self, msg: &Value, headers: &[(&str, &str)]) -> Reply {
        self.post_raw(msg.to_string(), headers).await
    }

    /// POSTs and returns messages as they stream in (for requests that need the client's answer).
    pub async fn post_streaming(&self, msg: &Value) -> mpsc::UnboundedReceiver<Value> {
        let resp = self.request_builder(msg.to_string(), &[]).send().await.expect("send");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut parser = SseParser::new(usize::MAX);
            let is_sse = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .starts_with("text/event-stream");
            let mut body = resp.bytes_stream();
            let mut plain = Vec::new();
            while let Some(Ok(chunk)) = body.next().await {
                if is_sse {
                    for data in parser.feed(&chunk) {
                        if let Ok(v) = serde_json::from_str(&data) {
                            let _ = tx.send(v);
                        }
                    }
                } else {
                    plain.extend_from_slice(&chunk);
                }
            }
            if let Ok(v) = serde_json::from_slice(&plain) {
                let _ = tx.send(v);
            }
        });
        rx
    }

    /// 2025-11-25 handshake; keeps the session id.
    pub async fn initialize(&mut self, capabilities: Value) -> Reply {
        let id = self.next_id();
        let reply = self
            .post(
                &json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":super::initialize_params(capabilities)}),
                &[],
            )
            .await;
        assert_eq!(reply.status, 200, "initialize failed: {:?}", reply.messages);
        self.session = reply.headers.get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        assert!(self.session.is_some(), "initialize reply has no Mcp-Session-Id");
        self.protocol = Some("2025-11-25".into());
        let r = self.post(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}), &[]).await;
        assert_eq!(r.status, 202);
        reply
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Reply {
        let id = self.next_id();
        self.post(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}), &[]).await
    }

    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        let reply = self.request("tools/call", json!({"name": name, "arguments": arguments})).await;
        reply.response().clone()
    }

    /// A 2026-07-28 request: `_meta` in the body, mirrored headers.
    pub async fn stateless_request(&mut self, method: &str, mut params: Value) -> Reply {
        let id = self.next_id();
        params["_meta"] = super::stateless_meta();
        let name = params.get("name").or_else(|| params.get("uri")).and_then(|n| n.as_str()).map(str::to_string);
        let mut headers = vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", method)];
        if let Some(n) = name.as_deref() {
            headers.push(("mcp-name", n));
        }
        self.post(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}), &headers).await
    }
}
