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

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::bins::Bins;
use common::client::{Endpoint, contains, is_result_for, next_id};
use common::cpu::{Meters, Usage};
use common::load::{Latency, Load, Outcome, Throughput, latency, percentiles, throughput};
use common::process::{Gateway, children, rss_kib};
use common::report::{
    Failures, Noise, Table, added, lat, machine, mib, per_call, report_latency, report_throughput, us,
};
use common::upstream::mini_upstream;
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How much work each row does.
struct Plan {
    /// The HTTP rows.
    http: Load,
    /// stdio rows.
    sequential: usize,
    pipelined: usize,
    window: usize,
}

impl Plan {
    fn new(full: bool) -> Plan {
        if full {
            Plan {
                http: Load { full, rate: 1000, paced_secs: 5, smoke_calls: 0, concurrency: 48, burst_secs: 5 },
                sequential: 10_000,
                pipelined: 50_000,
                window: 64,
            }
        } else {
            Plan {
                http: Load { full, rate: 0, paced_secs: 0, smoke_calls: 300, concurrency: 8, burst_secs: 0 },
                sequential: 300,
                pipelined: 600,
                window: 64,
            }
        }
    }
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

impl Gateway {
    /// This program as a minimal pass-through proxy in front of `upstream` (see [`proxy`]).
    async fn proxy(upstream: &str) -> Gateway {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(["--proxy", upstream]);
        Gateway::spawn(cmd, tempfile::tempdir().expect("tempdir")).await
    }
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

// ------------------------------------------------------------------ the run

async fn run(plan: &Plan, bins: &Bins) -> Result<(), Failures> {
    let mut fail = Failures::default();
    let mut noise = Noise::default();
    let mut table = Table(Vec::new());
    let mode = if plan.http.full {
        format!(
            "paced {} calls/s for {} s; throughput {} in flight for {} s",
            plan.http.rate, plan.http.paced_secs, plan.http.concurrency, plan.http.burst_secs
        )
    } else {
        format!("smoke run: {} calls per row, no pacing", plan.http.smoke_calls)
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
    // The audit log beside the policy directory, as in config.example.toml, not inside it.
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let full_stack = Gateway::start(
        &bins.tollgate,
        &format!(
            "{upstream_toml}[policy]\ndir = {:?}\n[audit]\nfile = {:?}\n",
            policies.path(),
            audit_dir.path().join("audit.jsonl")
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
        let w = throughput(ep, 8, 0, if plan.http.full { 2000 } else { 50 }, None, &[]).await;
        fail.check(&format!("warm-up {}", ep.url), &w.outcome);
        if let Err(e) = ep.prefill(plan.http.concurrency).await {
            fail.0.push(format!("opening connections to {}: {e}", ep.url));
        }
    }
    if !fail.0.is_empty() {
        return Err(fail);
    }

    let what = if plan.http.full {
        format!("HTTP `tools/call` latency, open loop at {} calls/s for {} s", plan.http.rate, plan.http.paced_secs)
    } else {
        format!("HTTP `tools/call` latency, {} sequential calls", plan.http.smoke_calls)
    };
    let d = latency(&direct, &plan.http, None, &[]).await;
    report_latency(&mut fail, &mut noise, &what, "direct", &d);
    let mut via_latency = Vec::new();
    for (name, ep, pid) in fronts {
        let l = latency(ep, &plan.http, Some(pid), &[]).await;
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

    let (secs, calls) = (plan.http.burst_secs, plan.http.smoke_calls);
    let what = format!("HTTP `tools/call` throughput, {} in flight (HTTP 200 + result only)", plan.http.concurrency);
    let td = throughput(&direct, plan.http.concurrency, secs, calls, None, &[]).await;
    report_throughput(&mut fail, &mut noise, &what, "direct", &td);
    let mut via_throughput = Vec::new();
    for (name, ep, pid) in fronts {
        let t = throughput(ep, plan.http.concurrency, secs, calls, Some(pid), &[]).await;
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
        let w = p.sequential(if plan.http.full { 1000 } else { 20 }).await;
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
    if plan.http.full && !noise.0.is_empty() {
        println!("\nOther processes were busy during some rows; those numbers are less reliable:");
        for n in &noise.0 {
            println!("- {n}");
        }
    }

    if plan.http.full {
        let met = |ok: bool| if ok { "met" } else { "MISSED" };
        let (p50, p99) = (us(b.p50) - us(d.p50), us(b.p99) - us(d.p99));
        let peak = tb.rate;
        let idle = mib(rss_start.max(rss_session));
        println!("\nTargets:");
        println!("- added p50 < 150 µs at {} calls/s over HTTP: {:+.0} µs, {}", plan.http.rate, p50, met(p50 < 150.0));
        println!("- added p99 < 1 ms at {} calls/s over HTTP: {:+.0} µs, {}", plan.http.rate, p99, met(p99 < 1000.0));
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
    let plan = Plan::new(full);
    let limit = Duration::from_secs(if full { 600 } else { 120 });
    common::bins::run_bench("overhead", full, limit, async |bins| run(&plan, &bins).await);
}
