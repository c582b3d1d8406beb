//! What the gateway adds over calling the same upstream directly, measured end to end with the
//! real binaries (`tollgate`, `tollgate-fixture`); BENCHMARKS.md has the numbers and the method.
//!
//! * HTTP: a minimal in-process 2025-11-25 upstream (JSON replies, TCP_NODELAY); `tools/call`
//!   latency p50/p99 at an open-loop paced rate, then closed-loop throughput with many calls in
//!   flight: directly, through `tollgate serve`, through `tollgate serve` with a policy directory
//!   and an audit log, and through a reference pass-through proxy on the same HTTP stack with
//!   no MCP logic (this program run as `--proxy URL`), which shows what the process hop alone
//!   costs on the machine; and through `tollgate serve` with telemetry on (every call traced,
//!   spans batched over OTLP/HTTP to a receiver in this program that decodes and counts them).
//! * stdio: `tollgate-fixture --raw` directly vs wrapped by `tollgate stdio --`, with telemetry
//!   off and on; sequential round-trip latency and pipelined throughput.
//! * RSS of `tollgate serve` right after start, with one initialized idle session, after load.
//! * CPU per call of the gateway and of this program for every row (from /proc), and how busy
//!   other processes kept the machine meanwhile (rows they disturbed are listed).
//!
//! `cargo build --release --bins && cargo bench --bench overhead` runs the full measurement
//! (about a minute) with the binaries next to this executable (`target/release/`).
//! Without `--bench` in argv (that is how `cargo test --all-targets` runs a `harness = false`
//! bench) it is a smoke run: a few hundred calls per row, no pacing, the binaries of the same
//! profile (`target/debug/`); it exits 0 if every call was answered (and skips if the binaries
//! were not built, e.g. without the `fixture` feature).
//!
//! The load generator is this program: every JSON-RPC id is unique, HTTP is keep-alive with
//! TCP_NODELAY, everything is on loopback and bounded in calls and time.

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How much work each row does.
struct Plan {
    full: bool,
    /// Paced latency rows: this many calls per second for `paced_secs` (full mode); sequential
    /// calls without pacing in smoke mode.
    rate: u64,
    paced_secs: u64,
    smoke_calls: usize,
    /// Throughput rows: calls in flight, and for how long (full) or how many calls (smoke).
    concurrency: usize,
    burst_secs: u64,
    /// stdio rows.
    sequential: usize,
    pipelined: usize,
    window: usize,
}

impl Plan {
    fn new(full: bool) -> Plan {
        if full {
            Plan {
                full,
                rate: 1000,
                paced_secs: 5,
                smoke_calls: 0,
                concurrency: 48,
                burst_secs: 5,
                sequential: 10_000,
                pipelined: 50_000,
                window: 64,
            }
        } else {
            Plan {
                full,
                rate: 0,
                paced_secs: 0,
                smoke_calls: 300,
                concurrency: 8,
                burst_secs: 0,
                sequential: 300,
                pipelined: 600,
                window: 64,
            }
        }
    }
}

/// Every JSON-RPC id this program sends, over every connection, is unique.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A reply to request `id` that carries a result (the id followed by `,` or `}` so that id 12
/// does not match a reply to 123).
fn is_result_for(body: &[u8], id: u64) -> bool {
    contains(body, b"\"result\"")
        && (contains(body, format!("\"id\":{id},").as_bytes()) || contains(body, format!("\"id\":{id}}}").as_bytes()))
}

// ------------------------------------------------------------------ binaries

struct Bins {
    tollgate: PathBuf,
    fixture: PathBuf,
}

/// The binaries of the profile this bench was built in: `current_exe()` is
/// `target/<profile>/deps/overhead-<hash>`, so they are in its grandparent directory. In smoke
/// mode `target/debug/` and cargo's compiled-in paths are accepted too, so a missing release
/// build never fails `cargo test`.
fn find_bins(full: bool) -> Result<Bins, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf);
    let mut dirs: Vec<PathBuf> = profile_dir.iter().cloned().collect();
    if !full && let Some(target) = profile_dir.as_deref().and_then(Path::parent) {
        dirs.push(target.join("debug"));
    }
    for dir in &dirs {
        let (tollgate, fixture) = (dir.join("tollgate"), dir.join("tollgate-fixture"));
        if tollgate.is_file() && fixture.is_file() {
            return Ok(Bins { tollgate, fixture });
        }
    }
    if !full
        && let (Some(t), Some(f)) =
            (option_env!("CARGO_BIN_EXE_tollgate"), option_env!("CARGO_BIN_EXE_tollgate-fixture"))
        && Path::new(t).is_file()
        && Path::new(f).is_file()
    {
        return Ok(Bins { tollgate: t.into(), fixture: f.into() });
    }
    Err(format!(
        "tollgate and tollgate-fixture not found in {}; build them first:\n    \
         cargo build --release --bins && cargo bench --bench overhead",
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" or ")
    ))
}

// ------------------------------------------------------------------ a minimal HTTP upstream

/// The parts of an incoming message the upstream looks at; the id stays raw text.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
}

const TOOLS: &str = r#"{"tools":[{"name":"echo","description":"Answers ok","inputSchema":{"type":"object","properties":{"message":{"type":"string"}},"required":["message"]},"annotations":{"readOnlyHint":true}}]}"#;
const INITIALIZED: &str = r#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"bench-upstream","version":"0"}}"#;

async fn upstream_handler(body: Bytes) -> Response {
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
async fn mini_upstream() -> String {
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

// ------------------------------------------------------------------ an OTLP receiver

/// An OTLP/HTTP receiver for the telemetry rows: decodes every trace export and counts its
/// spans (so spans the gateway dropped show), accepts metrics. Returns its base URL.
async fn otlp_sink(spans: Arc<AtomicU64>) -> String {
    use axum::extract::State;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    async fn traces(State(spans): State<Arc<AtomicU64>>, body: Bytes) -> StatusCode {
        let Ok(request) = ExportTraceServiceRequest::decode(body) else { return StatusCode::BAD_REQUEST };
        let n: usize = request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
        spans.fetch_add(n as u64, Ordering::Relaxed);
        StatusCode::OK
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind OTLP receiver");
    let addr = listener.local_addr().expect("receiver address");
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(|| async { StatusCode::OK }))
        .with_state(spans);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

// ------------------------------------------------------------------ a minimal proxy

/// The floor for any gateway built on Tollgate's HTTP stack: an axum server (TCP_NODELAY) whose
/// one handler forwards the body and the session header to `upstream` with reqwest (TCP_NODELAY)
/// and returns the reply, on a default multi-thread runtime like `tollgate serve`. No MCP logic:
/// what a call costs through it is what the extra process hop alone costs on this machine.
/// Runs as `overhead --proxy URL`.
fn proxy(upstream: String) {
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::serve::ListenerExt;
    async fn forward(
        State((http, url)): State<(reqwest::Client, Arc<str>)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let mut req = http
            .post(&*url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for name in ["mcp-session-id", "mcp-protocol-version"] {
            if let Some(v) = headers.get(name) {
                req = req.header(name, v.clone());
            }
        }
        let Ok(resp) = req.body(body).send().await else { return StatusCode::BAD_GATEWAY.into_response() };
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let session = resp.headers().get("mcp-session-id").cloned();
        let body = resp.bytes().await.unwrap_or_default();
        let mut reply = (status, [("content-type", "application/json")], body).into_response();
        if let Some(s) = session {
            reply.headers_mut().insert("mcp-session-id", s);
        }
        reply
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async move {
        let http = tollgate::transport::client_tls::builder().tcp_nodelay(true).build().expect("reqwest client");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        println!("listening on http://{}/mcp", listener.local_addr().expect("proxy address"));
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = Router::new().route("/mcp", post(forward)).with_state((http, Arc::<str>::from(upstream)));
        let _ = axum::serve(listener, app).await;
    });
}

// ------------------------------------------------------------------ processes

/// A child process serving HTTP on a free loopback port: `tollgate serve` or the reference proxy.
struct Gateway {
    child: Child,
    pid: u32,
    url: String,
    dir: tempfile::TempDir,
}

impl Gateway {
    /// `tollgate serve` with `config` (TOML after `[server] listen = "127.0.0.1:0"`).
    async fn start(bin: &Path, config: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bench.toml");
        std::fs::write(&path, format!("[server]\nlisten = \"127.0.0.1:0\"\n{config}")).expect("write config");
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--config"]).arg(&path).env("TOLLGATE_LOG", "warn");
        Gateway::spawn(cmd, dir).await
    }

    /// This program as a minimal pass-through proxy in front of `upstream` (see [`proxy`]).
    async fn proxy(upstream: &str) -> Gateway {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(["--proxy", upstream]);
        Gateway::spawn(cmd, tempfile::tempdir().expect("tempdir")).await
    }

    /// Starts a process that prints `listening on URL` as its first line.
    async fn spawn(mut cmd: Command, dir: tempfile::TempDir) -> Gateway {
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
        let bin = cmd.as_std().get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        let pid = child.id().expect("gateway pid");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("gateway did not announce its URL within 30 s")
            .expect("read gateway stdout");
        let Some(url) = line.as_deref().and_then(|l| l.strip_prefix("listening on ")) else {
            let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            panic!("gateway did not start (first line {line:?}); stderr:\n{log}");
        };
        let url = url.to_string();
        // Keep draining stdout so the gateway never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Gateway { child, pid, url, dir }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// SIGTERM and wait (the gateway ends its upstream sessions); SIGKILL after 5 s.
    async fn stop(mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// `(VmRSS, VmHWM)` in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time used so far by a process (user + system, `/proc/PID/stat` fields 14 and 15) or,
/// for `"machine"`, by all CPUs together (`/proc/stat`: everything but idle and iowait, steal
/// included). Linux counts both in USER_HZ = 100 ticks per second on every architecture.
fn cpu_time(pid: &str) -> Duration {
    let ticks: u64 = if pid == "machine" {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
        let line = stat.lines().next().unwrap_or("");
        let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
        fields.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum()
    } else {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The command name (field 2) may hold spaces; the fields after it are plain.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum()
    };
    Duration::from_millis(ticks * 10)
}

/// CPU used by a process between two points.
struct CpuMeter {
    pid: String,
    start: Duration,
}

impl CpuMeter {
    fn new(pid: impl ToString) -> CpuMeter {
        let pid = pid.to_string();
        CpuMeter { start: cpu_time(&pid), pid }
    }
    fn used(&self) -> Duration {
        cpu_time(&self.pid).saturating_sub(self.start)
    }
}

/// CPU used while one measurement runs: by this program (load generator and in-process
/// upstream), by the gateway process, and by everything else on the machine (other builds and
/// tests on a shared host make a run noisy; this says how much).
struct Meters {
    wall: Instant,
    own: CpuMeter,
    gateway: Option<CpuMeter>,
    /// Other processes that are part of the measurement (a stdio upstream).
    peers: Vec<CpuMeter>,
    machine: CpuMeter,
}

#[derive(Clone, Copy, Default)]
struct Usage {
    own: Duration,
    gateway: Option<Duration>,
    /// Cores used on average by other processes during the measurement.
    others: f64,
}

impl Meters {
    fn start(gateway: Option<u32>, peers: &[u32]) -> Meters {
        Meters {
            wall: Instant::now(),
            own: CpuMeter::new("self"),
            gateway: gateway.map(CpuMeter::new),
            peers: peers.iter().map(CpuMeter::new).collect(),
            machine: CpuMeter::new("machine"),
        }
    }
    fn stop(&self) -> Usage {
        let (own, gateway) = (self.own.used(), self.gateway.as_ref().map(CpuMeter::used));
        let ours = own + gateway.unwrap_or_default() + self.peers.iter().map(CpuMeter::used).sum::<Duration>();
        let others = self.machine.used().saturating_sub(ours);
        Usage { own, gateway, others: others.as_secs_f64() / self.wall.elapsed().as_secs_f64() }
    }
}

// ------------------------------------------------------------------ HTTP client

/// One keep-alive HTTP/1.1 connection with TCP_NODELAY, used by one call at a time. Written by
/// hand like wrk's: a request is one write, a reply is read by its Content-Length, and there is
/// no pool, URL parsing or extra task per connection, so the load generator costs little of the
/// CPU the gateway needs. Only what the peers here send is understood (Content-Length bodies).
struct Conn {
    tcp: TcpStream,
    buf: Vec<u8>,
}

/// A reply: status, `Mcp-Session-Id` if present, body.
struct Reply {
    status: u16,
    session: Option<String>,
    body: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Conn { tcp, buf: Vec::with_capacity(4096) })
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<Reply, String> {
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
        let (mut length, mut session) = (None, None);
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("mcp-session-id") {
                session = Some(value.to_string());
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(format!("HTTP {status} with transfer-encoding {value} (expected a JSON reply)"));
            }
        }
        let length = length.ok_or_else(|| format!("HTTP {status} without Content-Length"))?;
        while self.buf.len() < head_len + length {
            self.fill().await?;
        }
        Ok(Reply { status, session, body: self.buf[head_len..head_len + length].to_vec() })
    }

    async fn fill(&mut self) -> Result<(), String> {
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

/// One MCP session on one endpoint, with its own idle connections.
struct Endpoint {
    addr: SocketAddr,
    url: String,
    /// Everything of a POST up to the Content-Length value.
    head: String,
    tool: String,
    idle: std::sync::Mutex<Vec<Conn>>,
}

impl Endpoint {
    /// initialize → notifications/initialized → tools/list, as a client would.
    async fn connect(url: &str, tool: &str) -> Result<Arc<Endpoint>, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| format!("not an http:// URL: {url}"))?;
        let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
        let addr: SocketAddr = host.parse().map_err(|e| format!("{host}: {e}"))?;
        let head = |session: Option<&str>| {
            let session = session.map(|s| format!("Mcp-Session-Id: {s}\r\n")).unwrap_or_default();
            format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 Accept: application/json, text/event-stream\r\nMcp-Protocol-Version: 2025-11-25\r\n{session}\
                 Content-Length: "
            )
        };
        let mut ep =
            Endpoint { addr, url: url.to_string(), head: head(None), tool: tool.to_string(), idle: Default::default() };
        let init = json!({"jsonrpc":"2.0","id":next_id(),"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"tollgate-bench","version":"0"}}});
        let r = ep.post(&init.to_string()).await?;
        if r.status != 200 || !contains(&r.body, b"\"result\"") {
            return Err(format!("initialize at {url}: HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)));
        }
        ep.head = head(r.session.as_deref());
        let r = ep.post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await?;
        if r.status != 202 {
            return Err(format!("notifications/initialized: HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)));
        }
        let id = next_id();
        let r = ep.post(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#)).await?;
        if r.status != 200 || !is_result_for(&r.body, id) || !contains(&r.body, tool.as_bytes()) {
            return Err(format!("tools/list at {url}: HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body)));
        }
        Ok(Arc::new(ep))
    }

    /// Opens connections until `n` are idle, so that no measured call pays for a connect.
    async fn prefill(&self, n: usize) -> Result<(), String> {
        while self.idle.lock().expect("idle lock").len() < n {
            let c = Conn::open(self.addr).await?;
            self.idle.lock().expect("idle lock").push(c);
        }
        Ok(())
    }

    /// POSTs one message on an idle connection (a new one if none is idle), within 10 s.
    async fn post(&self, body: &str) -> Result<Reply, String> {
        let idle = self.idle.lock().expect("idle lock").pop();
        let mut conn = match idle {
            Some(c) => c,
            None => Conn::open(self.addr).await?,
        };
        let mut request = Vec::with_capacity(self.head.len() + body.len() + 16);
        request.extend_from_slice(self.head.as_bytes());
        request.extend_from_slice(format!("{}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body.as_bytes());
        let reply = tokio::time::timeout(Duration::from_secs(10), conn.exchange(&request))
            .await
            .map_err(|_| format!("{}: no reply within 10 s", self.url))?
            .map_err(|e| format!("{}: {e}", self.url))?;
        // A connection that failed is dropped; a good one is reused.
        self.idle.lock().expect("idle lock").push(conn);
        Ok(reply)
    }

    /// One tools/call; Ok only for HTTP 200 carrying a JSON-RPC result for this id.
    async fn call(&self) -> Result<(), String> {
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

// ------------------------------------------------------------------ measurements

#[derive(Default)]
struct Outcome {
    ok: usize,
    failed: usize,
    first_error: Option<String>,
}

impl Outcome {
    fn record(&mut self, r: Result<(), String>) {
        match r {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
    fn merge(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

struct Latency {
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// Calls per second actually offered (paced) or achieved (sequential).
    rate: f64,
    outcome: Outcome,
    usage: Usage,
}

fn percentiles(mut samples: Vec<Duration>, rate: f64, outcome: Outcome) -> Latency {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).saturating_sub(1);
        samples.get(i.min(samples.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    let max = samples.last().copied().unwrap_or_default();
    Latency { p50: at(0.50), p99: at(0.99), max, rate, outcome, usage: Usage::default() }
}

/// Open loop: one call starts every `1/rate` s whether or not earlier ones have finished (each
/// in its own task on its own keep-alive connection, so a slow call never delays the next; a
/// connection is opened if all are busy). Latency is from the call's start to its reply's last
/// byte.
async fn paced(ep: &Arc<Endpoint>, rate: u64, secs: u64) -> Latency {
    let total = (rate * secs) as usize;
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total);
    let start = Instant::now();
    for _ in 0..total {
        tick.tick().await;
        let ep = ep.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = ep.call().await;
            (t.elapsed(), r)
        }));
    }
    let offered = total as f64 / start.elapsed().as_secs_f64();
    let (mut samples, mut outcome) = (Vec::with_capacity(total), Outcome::default());
    for t in tasks {
        let (d, r) = t.await.expect("call task");
        if r.is_ok() {
            samples.push(d);
        }
        outcome.record(r);
    }
    percentiles(samples, offered, outcome)
}

/// Smoke mode: `n` calls one after another.
async fn sequential_http(ep: &Arc<Endpoint>, n: usize) -> Latency {
    let (mut samples, mut outcome) = (Vec::with_capacity(n), Outcome::default());
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let r = ep.call().await;
        if r.is_ok() {
            samples.push(t.elapsed());
        }
        outcome.record(r);
    }
    percentiles(samples, n as f64 / start.elapsed().as_secs_f64(), outcome)
}

async fn latency(ep: &Arc<Endpoint>, plan: &Plan, gateway: Option<u32>) -> Latency {
    let meters = Meters::start(gateway, &[]);
    let mut l = if plan.full {
        paced(ep, plan.rate, plan.paced_secs).await
    } else {
        sequential_http(ep, plan.smoke_calls).await
    };
    l.usage = meters.stop();
    l
}

struct Throughput {
    /// Successful calls per second.
    rate: f64,
    outcome: Outcome,
    usage: Usage,
}

/// Closed loop: `concurrency` workers each send the next call as soon as the last one is
/// answered, for `secs` (full) or until `calls` have been sent (smoke).
async fn throughput(
    ep: &Arc<Endpoint>,
    concurrency: usize,
    secs: u64,
    calls: usize,
    gateway: Option<u32>,
) -> Throughput {
    let deadline = (secs > 0).then(|| Instant::now() + Duration::from_secs(secs));
    let budget = Arc::new(AtomicUsize::new(if secs > 0 { usize::MAX } else { calls }));
    let meters = Meters::start(gateway, &[]);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (ep, budget) = (ep.clone(), budget.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            while deadline.is_none_or(|d| Instant::now() < d)
                && budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1)).is_ok()
            {
                outcome.record(ep.call().await);
            }
            outcome
        }));
    }
    let mut outcome = Outcome::default();
    for t in tasks {
        outcome.merge(t.await.expect("worker"));
    }
    Throughput { rate: outcome.ok as f64 / start.elapsed().as_secs_f64(), outcome, usage: meters.stop() }
}

// ------------------------------------------------------------------ stdio

/// A newline-delimited JSON-RPC peer on a child's stdin/stdout, initialized.
struct StdioPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
    /// Whose CPU time the measurements report as the gateway's (`tollgate stdio`), and the
    /// processes that serve the calls (the fixture).
    gateway: Option<u32>,
    peers: Vec<u32>,
}

/// The child processes of `pid` (`/proc/PID/task/*/children`).
fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

fn call_line(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"raw_echo","arguments":{{"n":1}}}}}}"#
    ) + "\n"
}

impl StdioPeer {
    /// Starts `program` and initializes it; `wrapper` says it is `tollgate stdio` (whose child
    /// serves the calls) rather than the server itself.
    async fn start(program: &Path, args: &[&Path], wrapper: bool) -> Result<StdioPeer, String> {
        let mut child = Command::new(program)
            .args(args)
            .env("TOLLGATE_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", program.display()))?;
        let pid = child.id().expect("child pid");
        let mut peer = StdioPeer {
            stdin: child.stdin.take().expect("stdin"),
            stdout: BufReader::new(child.stdout.take().expect("stdout")).lines(),
            child,
            gateway: wrapper.then_some(pid),
            peers: if wrapper { Vec::new() } else { vec![pid] },
        };
        let id = next_id();
        let init = json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"tollgate-bench","version":"0"}}});
        peer.request(&format!("{init}\n"), id).await?;
        peer.write(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_string() + "\n").await?;
        let id = next_id();
        peer.request(&format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/list\"}}\n"), id).await?;
        if wrapper {
            // The upstream runs by now (it answered tools/list).
            peer.peers = children(pid);
        }
        Ok(peer)
    }

    async fn write(&mut self, line: String) -> Result<(), String> {
        self.stdin.write_all(line.as_bytes()).await.map_err(|e| format!("write: {e}"))
    }

    /// Sends one request and reads lines until its reply (skipping notifications).
    async fn request(&mut self, line: &str, id: u64) -> Result<(), String> {
        self.stdin.write_all(line.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        loop {
            let reply = self.stdout.next_line().await.map_err(|e| e.to_string())?.ok_or("the peer closed stdout")?;
            if is_result_for(reply.as_bytes(), id) {
                return Ok(());
            }
            if contains(reply.as_bytes(), b"\"error\"") {
                return Err(format!("error reply: {reply}"));
            }
        }
    }

    /// `n` calls, each sent when the last is answered.
    async fn sequential(&mut self, n: usize) -> Latency {
        let meters = Meters::start(self.gateway, &self.peers);
        let (mut samples, mut outcome) = (Vec::with_capacity(n), Outcome::default());
        let start = Instant::now();
        for _ in 0..n {
            let id = next_id();
            let line = call_line(id);
            let t = Instant::now();
            let r = self.request(&line, id).await;
            if r.is_ok() {
                samples.push(t.elapsed());
            }
            let broken = r.is_err();
            outcome.record(r);
            if broken {
                break;
            }
        }
        let mut l = percentiles(samples, n as f64 / start.elapsed().as_secs_f64(), outcome);
        l.usage = meters.stop();
        l
    }

    /// `n` calls with up to `window` in flight: the writer sends whatever the window allows in one
    /// write, the reader frees a slot per reply.
    async fn pipelined(&mut self, n: usize, window: usize) -> Throughput {
        let slots = tokio::sync::Semaphore::new(window);
        let meters = Meters::start(self.gateway, &self.peers);
        let StdioPeer { stdin, stdout, .. } = self;
        let start = Instant::now();
        let writer = async {
            let (mut sent, mut batch) = (0, Vec::new());
            while sent < n {
                slots.acquire().await.expect("semaphore").forget();
                let mut count = 1;
                while sent + count < n && slots.try_acquire().map(|p| p.forget()).is_ok() {
                    count += 1;
                }
                batch.clear();
                for _ in 0..count {
                    batch.extend_from_slice(call_line(next_id()).as_bytes());
                }
                stdin.write_all(&batch).await.map_err(|e| format!("write: {e}"))?;
                sent += count;
            }
            Ok::<(), String>(())
        };
        let reader = async {
            let (mut outcome, mut got) = (Outcome::default(), 0);
            while got < n {
                let line = match stdout.next_line().await {
                    Ok(Some(l)) => l,
                    Ok(None) => {
                        outcome.record(Err("the peer closed stdout".into()));
                        break;
                    }
                    Err(e) => {
                        outcome.record(Err(e.to_string()));
                        break;
                    }
                };
                let bytes = line.as_bytes();
                if contains(bytes, b"\"result\"") {
                    outcome.record(Ok(()));
                } else if contains(bytes, b"\"error\"") {
                    outcome.record(Err(format!("error reply: {line}")));
                } else {
                    continue; // a notification
                }
                got += 1;
                slots.add_permits(1);
            }
            outcome
        };
        let (written, mut outcome) = tokio::join!(writer, reader);
        if let Err(e) = written {
            outcome.record(Err(e));
        }
        Throughput { rate: outcome.ok as f64 / start.elapsed().as_secs_f64(), outcome, usage: meters.stop() }
    }

    /// Closes stdin (the clean way to end a stdio server) and waits; SIGKILL after 5 s.
    async fn stop(self) {
        let StdioPeer { mut child, stdin, stdout, .. } = self;
        drop(stdin);
        drop(stdout);
        if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
}

// ------------------------------------------------------------------ report

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Failed calls anywhere make the whole run fail; the first error of each row is kept.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, row: &str, outcome: &Outcome) {
        if outcome.failed > 0 || outcome.ok == 0 {
            self.0.push(format!(
                "{row}: {} of {} calls failed; first error: {}",
                outcome.failed,
                outcome.ok + outcome.failed,
                outcome.first_error.as_deref().unwrap_or("no successful call")
            ));
        }
    }
}

struct Table(Vec<[String; 4]>);

impl Table {
    fn row(
        &mut self,
        what: impl Into<String>,
        direct: impl Into<String>,
        via: impl Into<String>,
        added: impl Into<String>,
    ) {
        self.0.push([what.into(), direct.into(), via.into(), added.into()]);
    }
    fn print(&self) {
        println!("| measurement | direct | through the gateway | gateway adds (gateway CPU per call) |");
        println!("|---|---:|---:|---:|");
        for r in &self.0 {
            println!("| {} | {} | {} | {} |", r[0], r[1], r[2], r[3]);
        }
    }
}

fn lat(l: &Latency) -> String {
    format!("p50 {:.0} µs · p99 {:.0} µs", us(l.p50), us(l.p99))
}

fn added(direct: &Latency, via: &Latency) -> String {
    format!("p50 {:+.0} µs · p99 {:+.0} µs", us(via.p50) - us(direct.p50), us(via.p99) - us(direct.p99))
}

/// CPU per successful call: (gateway, this program).
fn per_call(u: &Usage, o: &Outcome) -> (Option<Duration>, Duration) {
    let n = o.ok.max(1) as u32;
    (u.gateway.map(|g| g / n), u.own / n)
}

/// What a row cost in CPU, and how busy the rest of the machine was meanwhile.
fn cpu_note(u: &Usage, o: &Outcome) -> String {
    let (gateway, own) = per_call(u, o);
    let gateway = gateway.map(|g| format!("gateway {:.0} µs/call, ", us(g))).unwrap_or_default();
    format!("CPU: {gateway}bench process {:.0} µs/call, other processes {:.2} cores", us(own), u.others)
}

/// Runs during which other processes used more than a tenth of a core.
#[derive(Default)]
struct Noise(Vec<String>);

impl Noise {
    fn check(&mut self, row: &str, u: &Usage) {
        if u.others > 0.1 {
            self.0.push(format!("{row}: other processes used {:.2} cores", u.others));
        }
    }
}

/// Progress on stderr as each row finishes (the table comes at the end, on stdout).
fn report_latency(fail: &mut Failures, noise: &mut Noise, what: &str, name: &str, l: &Latency) {
    let row = format!("{what}, {name}");
    fail.check(&row, &l.outcome);
    noise.check(&row, &l.usage);
    eprintln!(
        "  {row}: {} calls at {:.0}/s, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; {}",
        l.outcome.ok,
        l.rate,
        us(l.p50),
        us(l.p99),
        us(l.max),
        cpu_note(&l.usage, &l.outcome)
    );
}

fn report_throughput(fail: &mut Failures, noise: &mut Noise, what: &str, name: &str, t: &Throughput) {
    let row = format!("{what}, {name}");
    fail.check(&row, &t.outcome);
    noise.check(&row, &t.usage);
    eprintln!("  {row}: {:.0} calls/s ({} ok); {}", t.rate, t.outcome.ok, cpu_note(&t.usage, &t.outcome));
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cpus} CPUs ({model})")
}

async fn run(plan: &Plan, bins: &Bins) -> Result<(), Failures> {
    let mut fail = Failures::default();
    let mut noise = Noise::default();
    let mut table = Table(Vec::new());
    let mode = if plan.full {
        format!(
            "paced {} calls/s for {} s; throughput {} in flight for {} s",
            plan.rate, plan.paced_secs, plan.concurrency, plan.burst_secs
        )
    } else {
        format!("smoke run: {} calls per row, no pacing", plan.smoke_calls)
    };
    eprintln!(
        "overhead: {}; {mode}; binaries in {}",
        machine(),
        bins.tollgate.parent().unwrap_or(Path::new("")).display()
    );

    // ---------------------------------------------------------------- HTTP
    let upstream = mini_upstream().await;
    let upstream_toml = format!("[[upstream]]\nname = \"b\"\nurl = {upstream:?}\n");
    let bare = Gateway::start(&bins.tollgate, &upstream_toml).await;
    // Let the runtime settle, then read the memory of a gateway that has seen no client yet.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_start, _) = rss_kib(bare.pid);

    let policies = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        policies.path().join("bench.toml"),
        "[[upstream]]\nname = \"b\"\nread_only = true\nallow = [\"echo\"]\n\n[[upstream.tool]]\nname = \"echo\"\ntimeout_ms = 5000\n",
    )
    .expect("write policy");
    let full_stack = Gateway::start(
        &bins.tollgate,
        &format!(
            "{upstream_toml}[policy]\ndir = {:?}\n[audit]\nfile = {:?}\n",
            policies.path(),
            policies.path().join("audit.jsonl")
        ),
    )
    .await;
    let exported = Arc::new(AtomicU64::new(0));
    let sink = otlp_sink(exported.clone()).await;
    let telemetry_toml = format!("[telemetry]\nendpoint = {sink:?}\nsampling_ratio = 1.0\n");
    let traced = Gateway::start(&bins.tollgate, &format!("{upstream_toml}{telemetry_toml}")).await;

    let connect = |url: String, tool: &'static str, gw: Option<&Gateway>| {
        let log = gw.map(Gateway::stderr);
        async move {
            Endpoint::connect(&url, tool)
                .await
                .unwrap_or_else(|e| panic!("cannot start a session: {e}\ngateway stderr:\n{}", log.unwrap_or_default()))
        }
    };
    let direct = connect(upstream.clone(), "echo", None).await;
    let via_bare = connect(bare.url.clone(), "b__echo", Some(&bare)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_session, _) = rss_kib(bare.pid);
    let via_full = connect(full_stack.url.clone(), "b__echo", Some(&full_stack)).await;
    let via_traced = connect(traced.url.clone(), "b__echo", Some(&traced)).await;
    let floor = Gateway::proxy(&upstream).await;
    let via_floor = connect(floor.url.clone(), "echo", Some(&floor)).await;
    // What sits between the load generator and the upstream, in table order.
    let fronts = [
        ("`tollgate serve`", &via_bare, bare.pid),
        ("`tollgate serve` with telemetry (100% sampled, OTLP/HTTP)", &via_traced, traced.pid),
        ("`tollgate serve` with policy dir + audit log", &via_full, full_stack.pid),
        ("the reference proxy (axum + reqwest pass-through, no MCP logic)", &via_floor, floor.pid),
    ];

    // Warm-up: connections, allocator, the gateway's caches.
    for ep in [&direct, &via_bare, &via_traced, &via_full, &via_floor] {
        let w = throughput(ep, 8, 0, if plan.full { 2000 } else { 50 }, None).await;
        fail.check(&format!("warm-up {}", ep.url), &w.outcome);
        if let Err(e) = ep.prefill(plan.concurrency).await {
            fail.0.push(format!("opening connections to {}: {e}", ep.url));
        }
    }
    if !fail.0.is_empty() {
        return Err(fail);
    }

    let what = if plan.full {
        format!("HTTP `tools/call` latency, open loop at {} calls/s for {} s", plan.rate, plan.paced_secs)
    } else {
        format!("HTTP `tools/call` latency, {} sequential calls", plan.smoke_calls)
    };
    let d = latency(&direct, plan, None).await;
    report_latency(&mut fail, &mut noise, &what, "direct", &d);
    let mut via_latency = Vec::new();
    for (name, ep, pid) in fronts {
        let l = latency(ep, plan, Some(pid)).await;
        report_latency(&mut fail, &mut noise, &what, name, &l);
        let cpu = per_call(&l.usage, &l.outcome).0.unwrap_or_default();
        table.row(
            format!("{what}, through {name}"),
            lat(&d),
            lat(&l),
            format!("{} ({:.0} µs)", added(&d, &l), us(cpu)),
        );
        via_latency.push(l);
    }

    let (secs, calls) = (plan.burst_secs, plan.smoke_calls);
    let what = format!("HTTP `tools/call` throughput, {} in flight (HTTP 200 + result only)", plan.concurrency);
    let td = throughput(&direct, plan.concurrency, secs, calls, None).await;
    report_throughput(&mut fail, &mut noise, &what, "direct", &td);
    let mut via_throughput = Vec::new();
    for (name, ep, pid) in fronts {
        let t = throughput(ep, plan.concurrency, secs, calls, Some(pid)).await;
        report_throughput(&mut fail, &mut noise, &what, name, &t);
        let (cpu, own) = per_call(&t.usage, &t.outcome);
        table.row(
            format!("{what}, through {name}"),
            format!("{:.0} calls/s", td.rate),
            format!("{:.0} calls/s", t.rate),
            format!("({:.0} µs; load generator + upstream {:.0} µs)", us(cpu.unwrap_or_default()), us(own)),
        );
        via_throughput.push(t);
    }
    let (rss_load, hwm) = rss_kib(bare.pid);
    table.row(
        "`tollgate serve` RSS: right after start / one idle session / after the load (peak)",
        "",
        format!("{:.1} / {:.1} / {:.1} ({:.1}) MiB", mib(rss_start), mib(rss_session), mib(rss_load), mib(hwm)),
        "",
    );
    let (b, tb) = (&via_latency[0], &via_throughput[0]);
    let (tl, tt) = (&via_latency[1], &via_throughput[1]);
    drop((direct, via_bare, via_traced, via_full, via_floor));
    bare.stop().await;
    full_stack.stop().await;
    floor.stop().await;
    // Stopping flushes what is still batched; the receiver then has every span the gateway kept.
    traced.stop().await;
    let traced_calls = (tl.outcome.ok + tt.outcome.ok) as u64;
    let http_spans = exported.swap(0, Ordering::Relaxed);

    // ---------------------------------------------------------------- stdio
    let fixture = bins.fixture.as_path();
    let raw_args = [Path::new("--raw")];
    let wrap_args = [Path::new("stdio"), Path::new("--"), fixture, Path::new("--raw")];
    let mut raw =
        StdioPeer::start(fixture, &raw_args, false).await.map_err(|e| Failures(vec![format!("fixture: {e}")]))?;
    let mut wrapped = StdioPeer::start(&bins.tollgate, &wrap_args, true)
        .await
        .map_err(|e| Failures(vec![format!("tollgate stdio: {e}")]))?;
    let traced_config = policies.path().join("traced.toml");
    std::fs::write(&traced_config, &telemetry_toml).expect("write telemetry config");
    let traced_args = [
        Path::new("stdio"),
        Path::new("--config"),
        traced_config.as_path(),
        Path::new("--"),
        fixture,
        Path::new("--raw"),
    ];
    let mut wrapped_traced = StdioPeer::start(&bins.tollgate, &traced_args, true)
        .await
        .map_err(|e| Failures(vec![format!("tollgate stdio with telemetry: {e}")]))?;
    for p in [&mut raw, &mut wrapped, &mut wrapped_traced] {
        let w = p.sequential(if plan.full { 1000 } else { 20 }).await;
        fail.check("stdio warm-up", &w.outcome);
    }
    let what = format!("stdio `tools/call` latency, {} sequential calls", plan.sequential);
    let rd = raw.sequential(plan.sequential).await;
    report_latency(&mut fail, &mut noise, &what, "direct", &rd);
    let wd = wrapped.sequential(plan.sequential).await;
    report_latency(&mut fail, &mut noise, &what, "`tollgate stdio`", &wd);
    let wtd = wrapped_traced.sequential(plan.sequential).await;
    report_latency(&mut fail, &mut noise, &what, "`tollgate stdio` with telemetry", &wtd);
    let cpu = |u: &Usage, o: &Outcome| us(per_call(u, o).0.unwrap_or_default());
    for (name, w) in [("`tollgate stdio`", &wd), ("`tollgate stdio` with telemetry (100% sampled, OTLP/HTTP)", &wtd)] {
        table.row(
            format!("{what}, through {name}"),
            lat(&rd),
            lat(w),
            format!("{} ({:.0} µs)", added(&rd, w), cpu(&w.usage, &w.outcome)),
        );
    }
    let what = format!("stdio `tools/call` throughput, {} calls pipelined, {} in flight", plan.pipelined, plan.window);
    let rp = raw.pipelined(plan.pipelined, plan.window).await;
    report_throughput(&mut fail, &mut noise, &what, "direct", &rp);
    let wp = wrapped.pipelined(plan.pipelined, plan.window).await;
    report_throughput(&mut fail, &mut noise, &what, "`tollgate stdio`", &wp);
    let wtp = wrapped_traced.pipelined(plan.pipelined, plan.window).await;
    report_throughput(&mut fail, &mut noise, &what, "`tollgate stdio` with telemetry", &wtp);
    for (name, w) in [("`tollgate stdio`", &wp), ("`tollgate stdio` with telemetry (100% sampled, OTLP/HTTP)", &wtp)] {
        table.row(
            format!("{what}, through {name}"),
            format!("{:.0} calls/s", rp.rate),
            format!("{:.0} calls/s", w.rate),
            format!("({:.0} µs)", cpu(&w.usage, &w.outcome)),
        );
    }
    raw.stop().await;
    wrapped.stop().await;
    wrapped_traced.stop().await;
    let stdio_calls = (wtd.outcome.ok + wtp.outcome.ok) as u64;
    let stdio_spans = exported.swap(0, Ordering::Relaxed);

    println!("Machine: {}", machine());
    println!("Mode: {mode}\n");
    table.print();
    // Each call is three spans (request, tool call, upstream hop); fewer means spans were dropped.
    println!(
        "\nSpans received over OTLP: HTTP {http_spans} for {traced_calls} measured calls plus warm-up; \
         stdio {stdio_spans} for {stdio_calls} measured calls plus warm-up"
    );
    // Smoke runs are too short for the CPU counters (10 ms ticks) to say anything.
    if plan.full && !noise.0.is_empty() {
        println!("\nOther processes were busy during some rows; those numbers are less reliable:");
        for n in &noise.0 {
            println!("- {n}");
        }
    }

    if plan.full {
        let met = |ok: bool| if ok { "met" } else { "MISSED" };
        let (p50, p99) = (us(b.p50) - us(d.p50), us(b.p99) - us(d.p99));
        let peak = tb.rate;
        let idle = mib(rss_start.max(rss_session));
        println!("\nTargets:");
        println!("- added p50 < 150 µs at {} calls/s over HTTP: {:+.0} µs, {}", plan.rate, p50, met(p50 < 150.0));
        println!("- added p99 < 1 ms at {} calls/s over HTTP: {:+.0} µs, {}", plan.rate, p99, met(p99 < 1000.0));
        println!("- ≥ 10,000 tools/call per second through one gateway: {peak:.0}/s, {}", met(peak >= 10_000.0));
        println!("- idle RSS < 30 MB: {idle:.1} MiB, {}", met(idle * 1.048_576 < 30.0));
        // Telemetry's share of the per-call overhead: what it adds over the same gateway without it.
        let share = |with: f64, without: f64| if without > 0.0 { (with - without) / without * 100.0 } else { 0.0 };
        let lat_share = share(us(tl.p50) - us(d.p50), p50);
        let cpu_of = |t: &Throughput| us(per_call(&t.usage, &t.outcome).0.unwrap_or_default());
        let cpu_share = share(cpu_of(tt), cpu_of(tb));
        let stdio_share = share(us(wtd.p50) - us(rd.p50), us(wd.p50) - us(rd.p50));
        println!("- telemetry adds < 20% to the added p50 over HTTP: {lat_share:+.0}%, {}", met(lat_share < 20.0));
        println!(
            "- telemetry adds < 20% to gateway CPU per call (HTTP throughput): {cpu_share:+.0}%, {}",
            met(cpu_share < 20.0)
        );
        println!("- telemetry adds < 20% to the added p50 over stdio: {stdio_share:+.0}%, {}", met(stdio_share < 20.0));
    }
    if fail.0.is_empty() { Ok(()) } else { Err(fail) }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--proxy") {
        return proxy(args.get(i + 1).cloned().expect("--proxy URL"));
    }
    let full = args.iter().any(|a| a == "--bench");
    let bins = match find_bins(full) {
        Ok(b) => b,
        // Cargo builds both binaries for this target unless their features are off; a smoke run
        // without them has nothing to check.
        Err(e) if !full => {
            eprintln!("overhead: smoke run skipped: {e}");
            return;
        }
        Err(e) => {
            eprintln!("overhead: {e}");
            std::process::exit(2);
        }
    };
    let plan = Plan::new(full);
    // Two workers: the load generator and the in-process upstream share the machine with the
    // gateway, as they would on a real 2-core host.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let limit = Duration::from_secs(if full { 600 } else { 120 });
    let result = runtime.block_on(async {
        tokio::time::timeout(limit, run(&plan, &bins))
            .await
            .unwrap_or_else(|_| Err(Failures(vec![format!("did not finish within {} s", limit.as_secs())])))
    });
    // Dropping the runtime kills any child still running (kill_on_drop).
    drop(runtime);
    if let Err(Failures(errors)) = result {
        for e in errors {
            eprintln!("overhead: FAILED: {e}");
        }
        std::process::exit(1);
    }
}
