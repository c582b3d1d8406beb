//! What the gateway adds over calling the same upstream directly, measured end to end with the
//! real release binaries: HTTP and stdio latency (p50/p99) and throughput, the cost of the full
//! policy stack (policy + audit) over the bare proxy, redaction speed, and idle memory.
//!
//! `cargo bench --bench overhead` runs the full measurement (a few seconds per row);
//! `cargo test` runs this file in smoke mode (a few hundred calls, no numbers to keep).
//! The load generator is this program: unique JSON-RPC ids, keep-alive HTTP, loopback only.

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tollgate::policy::redaction::{RedactionConfig, Redactor};

struct Plan {
    full: bool,
    paced_secs: u64,
    rate: u64,
    burst_secs: u64,
    concurrency: usize,
    sequential: usize,
}

impl Plan {
    fn new(full: bool) -> Plan {
        if full {
            Plan { full, paced_secs: 5, rate: 1000, burst_secs: 5, concurrency: 48, sequential: 5000 }
        } else {
            Plan { full, paced_secs: 1, rate: 200, burst_secs: 1, concurrency: 8, sequential: 200 }
        }
    }
}

// ------------------------------------------------------------------ a minimal HTTP upstream

/// A 2025-11-25 MCP server that answers tools/call at once with JSON (no SSE).
async fn mini_upstream() -> String {
    async fn handle(body: Bytes) -> Response {
        let msg: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        };
        let id = msg.get("id").cloned();
        let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
        let reply = |result: Value| {
            ([("content-type", "application/json")], json!({"jsonrpc":"2.0","id":id,"result":result}).to_string())
                .into_response()
        };
        match method {
            "initialize" => {
                let mut r = reply(
                    json!({"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"bench-upstream","version":"0"}}),
                );
                r.headers_mut().insert("mcp-session-id", "bench-session".parse().unwrap());
                r
            }
            "server/discover" => (
                StatusCode::NOT_FOUND,
                json!({"jsonrpc":"2.0","id":id,"error":{"code":-32601,"message":"Method not found"}}).to_string(),
            )
                .into_response(),
            "tools/list" => reply(
                json!({"tools":[{"name":"echo","description":"echo","inputSchema":{"type":"object","properties":{"message":{"type":"string"}},"required":["message"]},"annotations":{"readOnlyHint":true}}]}),
            ),
            "tools/call" => reply(json!({"content":[{"type":"text","text":"ok"}]})),
            _ if id.is_none() => StatusCode::ACCEPTED.into_response(),
            _ => reply(json!({})),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/mcp", post(handle));
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|t| {
        let _ = t.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/mcp")
}

// ------------------------------------------------------------------ gateway processes

struct Gateway {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

async fn gateway(config: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.toml");
    std::fs::write(&path, format!("[server]\nlisten = \"127.0.0.1:0\"\n{config}")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("TOLLGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().expect("gateway announced its URL");
    let url = line.strip_prefix("listening on ").unwrap().to_string();
    Gateway { child, url, _dir: dir }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

// ------------------------------------------------------------------ HTTP clients

#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
    tool: String,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

async fn connect(url: &str, tool: &str) -> Target {
    let http = reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(256).build().unwrap();
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}});
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    let session = resp.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_string());
    let _ = resp.bytes().await;
    let t = Target { http, url: url.into(), session, tool: tool.into() };
    t.post(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await;
    t
}

impl Target {
    async fn post(&self, msg: Value) -> (u16, Bytes) {
        let mut b = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(s) = &self.session {
            b = b.header("mcp-session-id", s);
        }
        let resp = b.body(msg.to_string()).send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.unwrap_or_default())
    }

    /// One tools/call; `true` if it came back 200 with a result.
    async fn call(&self) -> bool {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let msg = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":self.tool,"arguments":{"message":"x"}}});
        let (status, body) = self.post(msg).await;
        status == 200 && memchr(b"\"result\"", &body)
    }
}

fn memchr(needle: &[u8], hay: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

struct Latency {
    p50: Duration,
    p99: Duration,
    count: usize,
    failures: usize,
}

fn percentiles(mut samples: Vec<Duration>, failures: usize) -> Latency {
    samples.sort();
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Latency { p50: at(0.50), p99: at(0.99), count: samples.len(), failures }
}

/// Open-loop pacing: `rate` calls per second for `secs`, spread over several connections.
async fn paced(target: &Target, rate: u64, secs: u64) -> Latency {
    let workers = 8u64;
    let per_worker = Duration::from_nanos(1_000_000_000 * workers / rate);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let t = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + per_worker * w as u32 / workers as u32,
                per_worker,
            );
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let (mut samples, mut failures) = (Vec::new(), 0);
            while Instant::now() < deadline {
                tick.tick().await;
                let start = Instant::now();
                if t.call().await { samples.push(start.elapsed()) } else { failures += 1 }
            }
            (samples, failures)
        }));
    }
    let (mut all, mut failures) = (Vec::new(), 0);
    for t in tasks {
        let (s, f) = t.await.unwrap();
        all.extend(s);
        failures += f;
    }
    percentiles(all, failures)
}

/// Closed loop with `concurrency` calls in flight; calls per second that succeeded.
async fn throughput(target: &Target, concurrency: usize, secs: u64) -> (f64, usize) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let t = target.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut bad) = (0usize, 0usize);
            while Instant::now() < deadline {
                if t.call().await { ok += 1 } else { bad += 1 }
            }
            (ok, bad)
        }));
    }
    let (mut ok, mut bad) = (0, 0);
    for t in tasks {
        let (o, b) = t.await.unwrap();
        ok += o;
        bad += b;
    }
    (ok as f64 / start.elapsed().as_secs_f64(), bad)
}

// ------------------------------------------------------------------ stdio

struct StdioPeer {
    _child: Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

async fn stdio_peer(program: &str, args: &[&str]) -> StdioPeer {
    let mut child = Command::new(program)
        .args(args)
        .env("TOLLGATE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut peer = StdioPeer {
        stdin: child.stdin.take().unwrap(),
        stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
        _child: child,
    };
    peer.send(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}})).await;
    peer.stdout.next_line().await.unwrap();
    peer.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await;
    peer
}

impl StdioPeer {
    async fn send(&mut self, msg: &Value) {
        let mut line = msg.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
    }
    fn call_msg() -> Value {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"raw_echo","arguments":{"n":1}}})
    }
    async fn sequential(&mut self, n: usize) -> Latency {
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            self.send(&Self::call_msg()).await;
            self.stdin.flush().await.unwrap();
            self.stdout.next_line().await.unwrap().expect("reply");
            samples.push(start.elapsed());
        }
        percentiles(samples, 0)
    }
    /// Keeps `window` calls in flight; calls per second.
    async fn pipelined(&mut self, n: usize, window: usize) -> f64 {
        let start = Instant::now();
        let (mut sent, mut got) = (0, 0);
        while got < n {
            while sent < n && sent - got < window {
                self.send(&Self::call_msg()).await;
                sent += 1;
            }
            self.stdin.flush().await.unwrap();
            self.stdout.next_line().await.unwrap().expect("reply");
            got += 1;
        }
        n as f64 / start.elapsed().as_secs_f64()
    }
}

// ------------------------------------------------------------------ report

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn redaction_rows(full: bool) -> Vec<String> {
    let redactor = Redactor::new(&RedactionConfig::default()).unwrap();
    let mut clean = String::new();
    while clean.len() < 1 << 20 {
        clean.push_str(
            "The quick brown fox jumps over the lazy dog; result 42 at /srv/data/file.txt, id 123e4567-e89b-12d3.\n",
        );
    }
    let result = json!({"content":[{"type":"text","text": clean[..1800].to_string() + " token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"}],"structuredContent":{"rows":[1,2,3],"note":"AKIAIOSFODNN7EXAMPLE"}});
    let rounds = if full { 2000 } else { 20 };
    let start = Instant::now();
    for _ in 0..rounds {
        let mut v = result.clone();
        redactor.redact_json(&mut v);
    }
    let small = (result.to_string().len() * rounds) as f64 / start.elapsed().as_secs_f64() / 1e6;
    let rounds = if full { 20 } else { 1 };
    let start = Instant::now();
    for _ in 0..rounds {
        let _ = redactor.redact_str(&clean);
    }
    let big = (clean.len() * rounds) as f64 / start.elapsed().as_secs_f64() / 1e6;
    vec![
        format!("| redaction, ~2 KB tool results with secrets (default rules) | {small:.0} MB/s |"),
        format!("| redaction, 1 MB clean text (default rules) | {big:.0} MB/s |"),
    ]
}

async fn run(plan: Plan) {
    let mut rows: Vec<String> = Vec::new();
    let upstream = mini_upstream().await;

    // HTTP: direct, through the bare gateway, through the full stack (policy + audit).
    let direct = connect(&upstream, "echo").await;
    let bare = gateway(&format!("[[upstream]]\nname = \"b\"\nurl = {upstream:?}\n")).await;
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("p.toml"),
        "[[upstream]]\nname = \"b\"\nallow = [\"echo\"]\n[[upstream.tool]]\nname = \"echo\"\ntimeout_ms = 5000\n",
    )
    .unwrap();
    let audit = policies.path().join("audit.jsonl");
    let full_stack = gateway(&format!(
        "[[upstream]]\nname = \"b\"\nurl = {upstream:?}\n[policy]\ndir = {:?}\n[audit]\nfile = {:?}\n",
        policies.path(),
        audit
    ))
    .await;
    let idle_rss = rss_kb(bare.child.id().unwrap());
    let via_bare = connect(&bare.url, "b__echo").await;
    let via_full = connect(&full_stack.url, "b__echo").await;
    let session_rss = rss_kb(bare.child.id().unwrap());
    for t in [&direct, &via_bare, &via_full] {
        for _ in 0..50 {
            assert!(t.call().await, "warm-up call failed against {}", t.url);
        }
    }
    let d = paced(&direct, plan.rate, plan.paced_secs).await;
    let b = paced(&via_bare, plan.rate, plan.paced_secs).await;
    let f = paced(&via_full, plan.rate, plan.paced_secs).await;
    for (name, l) in
        [("direct to upstream", &d), ("through gateway (bare)", &b), ("through gateway (policy + audit)", &f)]
    {
        assert_eq!(l.failures, 0, "{name}: failed calls");
        rows.push(format!(
            "| HTTP tools/call at {} calls/s, {name} | p50 {:.0} µs, p99 {:.0} µs ({} calls) |",
            plan.rate,
            us(l.p50),
            us(l.p99),
            l.count
        ));
    }
    rows.push(format!(
        "| **HTTP added by the gateway** (bare − direct) | **p50 {:+.0} µs, p99 {:+.0} µs** |",
        us(b.p50) - us(d.p50),
        us(b.p99) - us(d.p99)
    ));
    rows.push(format!(
        "| **full policy stack added** (policy + audit − bare) | **p50 {:+.0} µs, p99 {:+.0} µs** |",
        us(f.p50) - us(b.p50),
        us(f.p99) - us(b.p99)
    ));
    for (name, t) in [
        ("direct to upstream", &direct),
        ("through gateway (bare)", &via_bare),
        ("through gateway (policy + audit)", &via_full),
    ] {
        let (rate, bad) = throughput(t, plan.concurrency, plan.burst_secs).await;
        assert_eq!(bad, 0, "{name}: failed calls under load");
        rows.push(format!("| HTTP throughput, {} in flight, {name} | {rate:.0} calls/s |", plan.concurrency));
    }
    rows.push(format!(
        "| gateway RSS idle / with one idle session | {:.1} MB / {:.1} MB |",
        idle_rss as f64 / 1024.0,
        session_rss as f64 / 1024.0
    ));

    // stdio: the raw fixture directly vs wrapped by `tollgate stdio`.
    let fixture = env!("CARGO_BIN_EXE_tollgate-fixture");
    let mut raw = stdio_peer(fixture, &["--raw"]).await;
    let mut wrapped = stdio_peer(env!("CARGO_BIN_EXE_tollgate"), &["stdio", "--", fixture, "--raw"]).await;
    let rd = raw.sequential(plan.sequential).await;
    let wd = wrapped.sequential(plan.sequential).await;
    rows.push(format!("| stdio tools/call sequential, direct | p50 {:.0} µs, p99 {:.0} µs |", us(rd.p50), us(rd.p99)));
    rows.push(format!(
        "| stdio tools/call sequential, through `tollgate stdio` | p50 {:.0} µs, p99 {:.0} µs |",
        us(wd.p50),
        us(wd.p99)
    ));
    let n = plan.sequential * 4;
    rows.push(format!("| stdio pipelined (64 in flight), direct | {:.0} calls/s |", raw.pipelined(n, 64).await));
    rows.push(format!(
        "| stdio pipelined (64 in flight), through `tollgate stdio` | {:.0} calls/s |",
        wrapped.pipelined(n, 64).await
    ));

    rows.extend(redaction_rows(plan.full));
    println!("| measurement | result |\n|---|---|");
    for r in rows {
        println!("{r}");
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(Plan::new(full)));
}
