//! What sessions cost: the state-store read every tool call makes (`session_state`, the hot
//! path) and a rate-limit check, on each store (embedded in memory, embedded file, Redis on
//! loopback); and the gateway's memory per idle session. BENCHMARKS.md has the numbers.
//!
//! `cargo build --release --bins && cargo bench --bench sessions` runs the full measurement
//! (Redis from `redis-server` on PATH, started on a free port; the gateway and fixture binaries
//! from `target/release/`). Without `--bench` (as `cargo test --all-targets` runs it) it is a
//! smoke run with a few hundred operations and a few sessions.

#[allow(dead_code)]
#[path = "../tests/it/support/redis.rs"]
mod redis_server;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tollgate::session::embedded::EmbeddedStore;
use tollgate::session::redis::RedisStore;
use tollgate::session::store::{RateQuota, SessionRecord, SessionState, SessionStore, Usage, now_ms};

fn record(id: &str) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        principal: "bench".into(),
        client: None,
        upstream_sessions: Default::default(),
        state: SessionState::Active,
        usage: Usage::default(),
        created_ms: now_ms(),
        last_seen_ms: now_ms(),
        taint: None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// p50 and p99 of `n` sequential runs of `op`.
async fn time<F, Fut>(n: usize, mut op: F) -> (Duration, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    for i in 0..n.min(200) {
        op(i).await; // warm up connections and caches
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        op(i).await;
        samples.push(t.elapsed());
    }
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

async fn store_rows(name: &str, store: Arc<dyn SessionStore>, n: usize) {
    let ttl = Duration::from_secs(600);
    for i in 0..100 {
        store.put_session(&record(&format!("s{i}")), ttl).await.expect("put");
    }
    let (p50, p99) = time(n, |i| {
        let store = store.clone();
        async move {
            let state = store.session_state(&format!("s{}", i % 100)).await.expect("session_state");
            assert_eq!(state, Some(SessionState::Active));
        }
    })
    .await;
    println!("| {name} | session_state (every tool call) | {} | {} |", us(p50), us(p99));
    let quota = RateQuota { per_period: 1_000_000, period: Duration::from_secs(1), burst: 1_000_000 };
    let (p50, p99) = time(n, |i| {
        let store = store.clone();
        async move {
            store.rate_check(&format!("s:{}", i % 100), &quota).await.expect("rate_check");
        }
    })
    .await;
    println!("| {name} | rate_check (per configured limit) | {} | {} |", us(p50), us(p99));
}

/// The binaries of this bench's profile (`target/<profile>/`), or of debug in smoke mode.
fn bins(full: bool) -> Option<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe().ok()?;
    let profile = exe.parent()?.parent()?.to_path_buf();
    let mut dirs = vec![profile.clone()];
    if !full {
        dirs.push(profile.parent()?.join("debug"));
    }
    dirs.into_iter().map(|d| (d.join("tollgate"), d.join("tollgate-fixture"))).find(|(t, f)| t.is_file() && f.is_file())
}

/// Starts a process that prints `<prefix>URL` first; returns it and the URL.
async fn listening(mut cmd: Command, prefix: &str) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true).spawn().expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("announces its URL")
            .expect("read stdout")
            .expect("still running");
        if let Some(url) = line.strip_prefix(prefix) {
            break url.to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

async fn open_sessions(http: &reqwest::Client, url: &str, n: usize) {
    for _ in 0..n {
        let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}});
        let resp = http.post(url).header("accept", "application/json, text/event-stream").json(&init).send().await;
        let resp = resp.expect("initialize");
        assert!(resp.status().is_success(), "initialize: {}", resp.status());
        let id = resp.headers()["mcp-session-id"].to_str().expect("session id").to_string();
        let _ = resp.bytes().await;
        let done = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
        let resp = http.post(url).header("mcp-session-id", &id).header("mcp-protocol-version", "2025-11-25");
        resp.json(&done).send().await.expect("initialized");
    }
}

/// RSS growth of `tollgate serve` per idle initialized session (one HTTP upstream each).
async fn idle_session_memory(tollgate: &Path, fixture: &Path, n: usize) {
    let (_fixture, upstream) = listening(
        {
            let mut c = Command::new(fixture);
            c.args(["--http", "127.0.0.1:0"]);
            c
        },
        "listening on ",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bench.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[[upstream]]\nname = \"fx\"\nurl = {upstream:?}\n[policy]\nallow_writes = true\n"
    );
    std::fs::write(&config, text).expect("config");
    let mut cmd = Command::new(tollgate);
    cmd.args(["serve", "--config"]).arg(&config).env("TOLLGATE_LOG", "warn");
    let (gateway, url) = listening(cmd, "listening on ").await;
    let pid = gateway.id().expect("pid");
    let http = tollgate::transport::client_tls::builder().build().expect("reqwest client");
    open_sessions(&http, &url, 20).await; // warm: allocator arenas, pools, first-use caches
    let before = rss_kib(pid);
    open_sessions(&http, &url, n).await;
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before) as f64 * 1024.0) / n as f64;
    println!(
        "\nidle sessions: {n} initialized over HTTP, one HTTP upstream each: RSS {:.1} → {:.1} MiB, {:.1} KB per session",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        per / 1000.0
    );
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 20_000 } else { 300 };
    println!("| store | operation | p50 µs | p99 µs |\n|---|---|---|---|");
    store_rows("embedded, memory", EmbeddedStore::in_memory().expect("store"), n).await;
    let dir = tempfile::tempdir().expect("tempdir");
    store_rows("embedded, file", EmbeddedStore::open(&dir.path().join("s.redb")).expect("store"), n).await;
    let redis = redis_server::RedisServer::start();
    let store = RedisStore::connect(&redis.url()).await.expect("redis");
    store_rows("Redis, loopback", store, n).await;
    match bins(full) {
        Some((tollgate, fixture)) => idle_session_memory(&tollgate, &fixture, if full { 2000 } else { 20 }).await,
        None if full => panic!("build the binaries first: cargo build --release --bins"),
        None => println!("(idle-session memory skipped: binaries not built)"),
    }
}
