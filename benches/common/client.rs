//! The load generator's HTTP side: unique JSON-RPC ids, a wrk-like keep-alive connection, and an
//! initialized MCP session on one endpoint.

use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every JSON-RPC id this program sends, over every connection, is unique.
pub static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A reply to request `id` that carries a result (the id followed by `,` or `}` so that id 12
/// does not match a reply to 123; a space after the colon is allowed).
pub fn is_result_for(body: &[u8], id: u64) -> bool {
    contains(body, b"\"result\"")
        && ["\"id\":", "\"id\": "].iter().any(|key| {
            contains(body, format!("{key}{id},").as_bytes()) || contains(body, format!("{key}{id}}}").as_bytes())
        })
}

/// One keep-alive HTTP/1.1 connection with TCP_NODELAY, used by one call at a time. Written by
/// hand like wrk's: a request is one write, a reply is read by its Content-Length, and there is
/// no pool, URL parsing or extra task per connection, so the load generator costs little of the
/// CPU the gateway needs. Only what the peers here send is understood: Content-Length bodies,
/// and chunked bodies (an SSE reply stream, read until the server ends it).
pub struct Conn {
    pub tcp: TcpStream,
    pub buf: Vec<u8>,
}

/// A reply: status, `Mcp-Session-Id` if present, body.
pub struct Reply {
    pub status: u16,
    pub session: Option<String>,
    pub body: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Conn { tcp, buf: Vec::with_capacity(4096) })
    }

    pub async fn exchange(&mut self, request: &[u8]) -> Result<Reply, String> {
        self.tcp.write_all(request).await.map_err(|e| format!("write: {e}"))?;
        self.buf.clear();
        let head_len = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_len]).map_err(|_| "reply head is not UTF-8")?;
        let status = head.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line: {head}"))?;
        let (mut length, mut session, mut chunked) = (None, None, false);
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("mcp-session-id") {
                session = Some(value.to_string());
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
                if !chunked {
                    return Err(format!("HTTP {status} with transfer-encoding {value}"));
                }
            }
        }
        if chunked {
            let body = self.dechunk(head_len).await?;
            return Ok(Reply { status, session, body });
        }
        let length = length.ok_or_else(|| format!("HTTP {status} without Content-Length"))?;
        while self.buf.len() < head_len + length {
            self.fill().await?;
        }
        Ok(Reply { status, session, body: self.buf[head_len..head_len + length].to_vec() })
    }

    /// The body of a chunked reply whose head ends at `at`, read to its last chunk.
    async fn dechunk(&mut self, mut at: usize) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
                    break at + i;
                }
                self.fill().await?;
            };
            let size_text = std::str::from_utf8(&self.buf[at..line_end]).map_err(|_| "chunk size is not UTF-8")?;
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
            // The chunk, then its CRLF (for the last chunk: the CRLF that ends the body).
            while self.buf.len() < line_end + 2 + size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
            at = line_end + 2 + size + 2;
            if size == 0 {
                return Ok(body);
            }
        }
    }

    pub async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 4096];
        match self.tcp.read(&mut chunk).await {
            Ok(0) => Err("connection closed by the server".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }
}

/// The JSON-RPC message of a reply body: JSON, or the first SSE `data:` line that is a reply.
pub fn message(body: &[u8]) -> Option<serde_json::Value> {
    let text = std::str::from_utf8(body).ok()?;
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text.trim()) {
        return Some(v);
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d.trim()).ok())
        .find(|m| m.get("id").is_some())
}

/// One MCP session on one endpoint, with its own idle connections.
pub struct Endpoint {
    pub addr: SocketAddr,
    pub url: String,
    /// Everything of a POST up to the Content-Length value.
    pub head: String,
    pub tool: String,
    pub idle: std::sync::Mutex<Vec<Conn>>,
}

impl Endpoint {
    /// initialize → notifications/initialized → tools/list, as a client would.
    pub async fn connect(url: &str, tool: &str) -> Result<Arc<Endpoint>, String> {
        Endpoint::connect_with(url, tool, "").await
    }

    /// [`Endpoint::connect`] with `headers` (`Name: value\r\n` lines) on every request. The
    /// tool called is the listed one named `tool` or ending in it (gateways prefix names), and
    /// the protocol version is the one the server chose in `initialize`.
    pub async fn connect_with(url: &str, tool: &str, headers: &str) -> Result<Arc<Endpoint>, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| format!("not an http:// URL: {url}"))?;
        let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
        let addr: SocketAddr = host.parse().map_err(|e| format!("{host}: {e}"))?;
        let head = |session: Option<&str>, version: &str| {
            let session = session.map(|s| format!("Mcp-Session-Id: {s}\r\n")).unwrap_or_default();
            format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 Accept: application/json, text/event-stream\r\nMcp-Protocol-Version: {version}\r\n{session}{headers}\
                 Content-Length: "
            )
        };
        let mut ep = Endpoint {
            addr,
            url: url.to_string(),
            head: head(None, "2025-11-25"),
            tool: tool.to_string(),
            idle: Default::default(),
        };
        let init = json!({"jsonrpc":"2.0","id":next_id(),"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"tollgate-bench","version":"0"}}});
        let r = ep.post(&init.to_string()).await?;
        let version = message(&r.body).and_then(|m| m["result"]["protocolVersion"].as_str().map(str::to_string));
        let Some(version) = version.filter(|_| r.status == 200) else {
            return Err(format!("initialize at {url}: HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)));
        };
        ep.head = head(r.session.as_deref(), &version);
        let r = ep.post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await?;
        if !(200..300).contains(&r.status) {
            return Err(format!("notifications/initialized: HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)));
        }
        let id = next_id();
        let r = ep.post(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#)).await?;
        let listed = message(&r.body).filter(|_| r.status == 200 && is_result_for(&r.body, id));
        let names: Vec<String> = listed
            .iter()
            .flat_map(|m| m["result"]["tools"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect();
        let Some(name) = names.iter().find(|n| *n == tool).or_else(|| names.iter().find(|n| n.ends_with(tool))) else {
            return Err(format!(
                "tools/list at {url}: no {tool}: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        };
        ep.tool = name.clone();
        Ok(Arc::new(ep))
    }

    /// Opens connections until `n` are idle, so that no measured call pays for a connect.
    pub async fn prefill(&self, n: usize) -> Result<(), String> {
        while self.idle.lock().expect("idle lock").len() < n {
            let c = Conn::open(self.addr).await?;
            self.idle.lock().expect("idle lock").push(c);
        }
        Ok(())
    }

    /// POSTs one message on an idle connection (a new one if none is idle), within 10 s. A
    /// kept-alive connection the server has closed meanwhile (uvicorn closes them after 5 s idle)
    /// is replaced once, as HTTP clients do.
    pub async fn post(&self, body: &str) -> Result<Reply, String> {
        let idle = self.idle.lock().expect("idle lock").pop();
        let reused = idle.is_some();
        let mut conn = match idle {
            Some(c) => c,
            None => Conn::open(self.addr).await?,
        };
        let mut request = Vec::with_capacity(self.head.len() + body.len() + 16);
        request.extend_from_slice(self.head.as_bytes());
        request.extend_from_slice(format!("{}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body.as_bytes());
        let mut result = tokio::time::timeout(Duration::from_secs(10), conn.exchange(&request)).await;
        if reused && matches!(&result, Ok(Err(e)) if e.contains("closed by the server") || e.starts_with("write:")) {
            conn = Conn::open(self.addr).await?;
            result = tokio::time::timeout(Duration::from_secs(10), conn.exchange(&request)).await;
        }
        let reply = result
            .map_err(|_| format!("{}: no reply within 10 s", self.url))?
            .map_err(|e| format!("{}: {e}", self.url))?;
        // A connection that failed is dropped; a good one is reused.
        self.idle.lock().expect("idle lock").push(conn);
        Ok(reply)
    }

    /// One tools/call; Ok only for HTTP 200 carrying a JSON-RPC result for this id.
    pub async fn call(&self) -> Result<(), String> {
        let id = next_id();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{}","arguments":{{"message":"x"}}}}}}"#,
            self.tool
        );
        let r = self.post(&body).await?;
        if r.status == 200 && is_result_for(&r.body, id) {
            Ok(())
        } else {
            Err(format!("tools/call at {}: HTTP {}: {}", self.url, r.status, String::from_utf8_lossy(&r.body)))
        }
    }
}
