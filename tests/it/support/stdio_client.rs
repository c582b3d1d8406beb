//! A scripted MCP client over the gateway's stdin/stdout: sends exactly the bytes a test
//! chooses and sees exactly the lines the gateway writes.

use super::{WAIT, tollgate_bin};
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub struct StdioClient {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    next_id: u64,
    /// Messages that arrived while waiting for something else.
    pub seen: Vec<Value>,
    pub dir: tempfile::TempDir,
}

impl StdioClient {
    /// `tollgate stdio [args…]`, e.g. `["--", "node", "server.js", "stdio"]`.
    pub fn spawn(args: &[&str]) -> StdioClient {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log");
        let mut child = Command::new(tollgate_bin())
            .arg("stdio")
            .args(args)
            .env("TOLLGATE_LOG", "debug")
            // The tests read the text format; stderr being a file would choose JSON.
            .env("TOLLGATE_LOG_FORMAT", "text")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tollgate stdio");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        StdioClient { child, stdin, stdout, next_id: 1, seen: Vec::new(), dir }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.send_bytes(text.as_bytes()).await;
    }

    /// Writes `bytes` as they are (they need not be UTF-8), then a newline.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).await.expect("write");
        stdin.write_all(b"\n").await.expect("write");
        stdin.flush().await.expect("flush");
    }

    pub async fn send(&mut self, msg: &Value) {
        self.send_raw(&msg.to_string()).await;
    }

    /// The next line the gateway writes, as text.
    pub async fn recv_raw(&mut self) -> String {
        match tokio::time::timeout(WAIT, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => panic!("gateway closed stdout; stderr:\n{}", self.stderr()),
            Err(_) => panic!("no message within {WAIT:?}; stderr:\n{}", self.stderr()),
        }
    }

    pub async fn recv(&mut self) -> Value {
        let line = self.recv_raw().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("gateway wrote non-JSON {line:?}: {e}"))
    }

    /// Waits for the message `pred` accepts, keeping the others in `seen`.
    pub async fn recv_until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(pos) = self.seen.iter().position(&pred) {
            return self.seen.remove(pos);
        }
        loop {
            let msg = self.recv().await;
            if pred(&msg) {
                return msg;
            }
            self.seen.push(msg);
        }
    }

    /// Sends a request and returns its response (result or error object).
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        self.recv_until(|m| m.get("id") == Some(&json!(id)) && m.get("method").is_none()).await
    }

    pub async fn initialize(&mut self, capabilities: Value) -> Value {
        let reply = self.request("initialize", super::initialize_params(capabilities)).await;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        reply
    }

    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        self.request("tools/call", json!({"name": name, "arguments": arguments})).await
    }

    /// Closes stdin (what a client does to end a stdio session) and waits for exit.
    pub async fn close(&mut self) -> std::process::ExitStatus {
        self.stdin = None;
        tokio::time::timeout(WAIT, self.child.wait()).await.expect("exit after stdin closed").expect("wait")
    }
}
