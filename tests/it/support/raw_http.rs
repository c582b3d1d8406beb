//! HTTP/1.1 spoken by hand over TCP, for clients no library would be: ones that pipeline
//! thousands of requests, never finish their headers, or stream a body forever. Plus the
//! gateway's resident memory, read from /proc.

use super::WAIT;
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};
use tokio::net::TcpStream;

/// `host:port` and path of an `http://` URL.
pub fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (addr, path) = rest.split_once('/').unwrap_or((rest, ""));
    (addr.to_string(), format!("/{path}"))
}

pub async fn connect(url: &str) -> TcpStream {
    let (addr, _) = split_url(url);
    let tcp = tokio::time::timeout(WAIT, TcpStream::connect(&addr)).await.expect("connect in time").expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    tcp
}

/// A POST of `body` to the URL's path, keep-alive, with extra header lines.
pub fn post(url: &str, body: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let (addr, path) = split_url(url);
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("non-JSON body {:?}: {e}", self.body))
    }
}

/// Reads one response with a `Content-Length` body; `None` if the connection closed first.
pub async fn read_response(reader: &mut (impl AsyncBufRead + Unpin)) -> Option<RawResponse> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = HashMap::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await.ok()?;
    Some(RawResponse { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// Waits until the peer closes the connection (EOF or reset), up to `within`; true if it did.
pub async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Resident memory of a process in KiB (`VmRSS`).
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc status")
}
