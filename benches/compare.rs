//! Tollgate beside other MCP gateways: the same upstream, the same load from the same load
//! generator (`common::load`), on the same machine, with the fronts' rows interleaved (round
//! robin over several rounds) so that drift in the machine's load hits all of them alike.
//! BENCHMARKS.md has the numbers, the install commands and how to read them.
//!
//! Two upstreams, because the other gateways front different kinds:
//! * HTTP: the in-process upstream of `common::upstream` (stateful 2025-11-25, answers at once),
//!   called directly, through `tollgate serve` bare and with a policy directory + audit log, and
//!   through IBM ContextForge (`mcpgateway`: the upstream registered as a gateway, its tool put
//!   on one virtual server, clients on `/servers/<id>/mcp` with a bearer token).
//! * stdio: `tollgate-fixture --raw` (one child per session), clients over Streamable HTTP,
//!   through `tollgate serve` bare and with policy + audit, and through supergateway
//!   (`--stdio … --outputTransport streamableHttp --stateful`).
//!
//! The other gateways are not installed by the project. They are found through environment
//! variables, and a gateway whose variable is unset is left out (the output says so):
//! * `TOLLGATE_COMPARE_CONTEXTFORGE`: the `mcpgateway` script in a virtualenv with
//!   `mcp-contextforge-gateway` (its `python` next to it makes the bearer token);
//! * `TOLLGATE_COMPARE_SUPERGATEWAY`: supergateway's `dist/index.js`, run with `node` from PATH
//!   (or `TOLLGATE_NODE22` when set).
//!
//! `cargo build --release --bins && cargo bench --bench compare` is the measurement. Without
//! `--bench` (how `cargo test --all-targets` runs a `harness = false` bench) it is a smoke run:
//! a few dozen calls per front, one round, the debug binaries; it fails only if a Tollgate front
//! leaves a call unanswered, and skips when the binaries were not built.

mod common;

use common::bins::Bins;
use common::client::Endpoint;
use common::load::{Latency, Load, Outcome, Throughput, latency, throughput};
use common::process::{Gateway, children, free_port, rss_kib};
use common::report::{Failures, machine, mib, per_call, us};
use common::upstream::mini_upstream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;

const CONTEXTFORGE: &str = "TOLLGATE_COMPARE_CONTEXTFORGE";
const SUPERGATEWAY: &str = "TOLLGATE_COMPARE_SUPERGATEWAY";

/// How much work each front does per round, and how many rounds.
struct Plan {
    load: Load,
    rounds: usize,
}

impl Plan {
    /// The paced rate is one every gateway here can sustain, the same for all: a rate above a
    /// front's capacity measures its queue, not its latency, and ContextForge spends 15–30 ms of
    /// CPU per call on one Python process.
    fn new(full: bool) -> Plan {
        if full {
            Plan {
                load: Load { full, rate: 10, paced_secs: 10, smoke_calls: 0, concurrency: 16, burst_secs: 5 },
                rounds: 3,
            }
        } else {
            Plan {
                load: Load { full, rate: 0, paced_secs: 0, smoke_calls: 40, concurrency: 4, burst_secs: 0 },
                rounds: 1,
            }
        }
    }
}

/// One gateway (or none: direct) between the load generator and an upstream, and its rows.
struct Front {
    name: String,
    /// What it does per call, for reading the table.
    does: &'static str,
    ep: Arc<Endpoint>,
    /// Its process (whose CPU and memory are reported), and the processes serving its calls.
    pid: Option<u32>,
    peers: Vec<u32>,
    /// A Tollgate front: a failed call fails the run.
    ours: bool,
    latency: Vec<Latency>,
    throughput: Vec<Throughput>,
}

impl Front {
    fn new(name: &str, does: &'static str, ep: Arc<Endpoint>, gateway: Option<&Gateway>, ours: bool) -> Front {
        // A stdio upstream is the gateway's child, started by the session the endpoint opened.
        let pid = gateway.map(|g| g.pid);
        let peers = pid.map(children).unwrap_or_default();
        Front { name: name.into(), does, ep, pid, peers, ours, latency: Vec::new(), throughput: Vec::new() }
    }
}

/// `tollgate serve` in front of `upstream_toml`, bare or with a policy directory and audit log
/// (in the returned directory, which must outlive the gateway).
async fn tollgate(bins: &Bins, upstream_toml: &str, policy: Option<&str>) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = upstream_toml.to_string();
    if let Some(policy) = policy {
        // The audit log beside the policy directory (as in config.example.toml), not inside it.
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).expect("policy dir");
        std::fs::write(policies.join("bench.toml"), policy).expect("write policy");
        config.push_str(&format!(
            "[policy]\ndir = {:?}\n[audit]\nfile = {:?}\n",
            policies,
            dir.path().join("audit.jsonl")
        ));
    }
    (Gateway::start(&bins.tollgate, &config).await, dir)
}

fn policy_for(upstream: &str, tool: &str) -> String {
    format!(
        "[[upstream]]\nname = {upstream:?}\nread_only = true\nallow = [{tool:?}]\n\n\
         [[upstream.tool]]\nname = {tool:?}\ntimeout_ms = 5000\n"
    )
}

// ------------------------------------------------------------------ ContextForge

/// Bench-only secrets for a gateway that lives for one run on loopback.
const CF_JWT_SECRET: &str = "bench-only-jwt-secret-0123456789abcdef0123456789";

/// Starts ContextForge with a fresh SQLite database, registers `upstream` as a gateway, puts its
/// `echo` tool on a virtual server and opens a session there.
async fn contextforge(script: &Path, upstream: &str) -> Result<(Gateway, Arc<Endpoint>), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let db = format!("sqlite:///{}", dir.path().join("mcp.db").display());
    // Its settings are validated by every entry point, the token maker's too.
    let settings: [(&str, &str); 14] = [
        ("DATABASE_URL", &db),
        ("JWT_SECRET_KEY", CF_JWT_SECRET),
        ("AUTH_ENCRYPTION_SECRET", "bench-only-encryption-secret-0123456789abcdef"),
        ("BASIC_AUTH_PASSWORD", "bench-only-password-0123456789"),
        ("PLATFORM_ADMIN_PASSWORD", "bench-only-password-0123456789"),
        ("AUTH_REQUIRED", "false"),
        ("MCPGATEWAY_UI_ENABLED", "false"),
        ("MCPGATEWAY_ADMIN_API_ENABLED", "true"),
        ("ENVIRONMENT", "development"),
        ("DEV_MODE", "true"),
        ("LOG_LEVEL", "ERROR"),
        // The upstream is on loopback, which its SSRF guard refuses by default.
        ("SSRF_ALLOW_LOCALHOST", "true"),
        // Downstream sessions, so that it keeps one upstream session per client session as
        // Tollgate does (stateless, it opens a new upstream session for every call).
        ("USE_STATEFUL_SESSIONS", "true"),
        // Its default limit (100 MCP requests a minute per user, then a 15-minute lockout) would
        // refuse the load itself; Tollgate runs here without a rate limit too.
        ("RATE_LIMITING_ENABLED", "false"),
    ];
    let mut cmd = Command::new(script);
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()]).current_dir(dir.path()).envs(settings);
    // It migrates its database before it listens: about 40 s on a busy 2-core machine.
    let gw = Gateway::spawn_serving(cmd, dir, &base, Duration::from_secs(300)).await;
    let python = script.with_file_name("python");
    let out = Command::new(&python)
        .args(["-m", "mcpgateway.utils.create_jwt_token", "--username", "admin@example.com", "--exp", "600"])
        .args(["--secret", CF_JWT_SECRET])
        .current_dir(gw.dir.path())
        .envs(settings)
        .output()
        .await
        .map_err(|e| format!("{}: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout.lines().last().unwrap_or("").trim().to_string();
    if !out.status.success() || token.is_empty() {
        return Err(format!("create_jwt_token failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let http = tollgate::transport::client_tls::builder().build().map_err(|e| e.to_string())?;
    let api = async |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut req = http.request(method, format!("{base}{path}")).bearer_auth(&token);
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body.to_string());
        }
        let resp = req.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("{path}: HTTP {status}: {text}"));
        }
        serde_json::from_str::<serde_json::Value>(&text).map_err(|e| format!("{path}: {e}: {text}"))
    };
    let registered = serde_json::json!({"name": "bench", "url": upstream, "transport": "STREAMABLEHTTP"});
    api(reqwest::Method::POST, "/gateways", Some(registered)).await?;
    let tools = api(reqwest::Method::GET, "/tools", None).await?;
    let tool = tools
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["originalName"] == "echo" || t["name"].as_str().is_some_and(|n| n.ends_with("echo")))
        .and_then(|t| t["id"].as_str().map(str::to_string))
        .ok_or_else(|| format!("the registered upstream's echo tool is not listed: {tools}"))?;
    let server = serde_json::json!({"server": {"name": "bench", "associated_tools": [tool]}});
    let server = api(reqwest::Method::POST, "/servers", Some(server)).await?;
    let id = server["id"].as_str().ok_or_else(|| format!("no server id in {server}"))?;
    let auth = format!("Authorization: Bearer {token}\r\n");
    let ep = Endpoint::connect_with(&format!("{base}/servers/{id}/mcp"), "echo", &auth).await?;
    Ok((gw, ep))
}

// ------------------------------------------------------------------ supergateway

/// supergateway (stateful Streamable HTTP) in front of `tollgate-fixture --raw`, and a session.
async fn supergateway(index_js: &Path, fixture: &Path) -> Result<(Gateway, Arc<Endpoint>), String> {
    let node = std::env::var_os("TOLLGATE_NODE22").map(PathBuf::from).unwrap_or_else(|| "node".into());
    let port = free_port();
    let mut cmd = Command::new(node);
    cmd.arg(index_js)
        .args(["--stdio", &format!("{} --raw", fixture.display())])
        .args(["--outputTransport", "streamableHttp", "--stateful", "--port", &port.to_string()])
        .args(["--logLevel", "none"]);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let gw = Gateway::spawn_serving(cmd, tempfile::tempdir().expect("tempdir"), &url, Duration::from_secs(60)).await;
    let ep = Endpoint::connect(&url, "raw_echo").await?;
    Ok((gw, ep))
}

// ------------------------------------------------------------------ rounds and the table

/// Every front's latency row, then every front's throughput row, `rounds` times, starting each
/// round with the next front so none always runs first.
async fn measure(fronts: &mut [Front], plan: &Plan, fail: &mut Failures) {
    for front in fronts.iter() {
        let warm = throughput(&front.ep, 4, 0, if plan.load.full { 200 } else { 10 }, None, &[]).await;
        if front.ours {
            fail.check(&format!("warm-up {}", front.name), &warm.outcome);
        }
        if let Err(e) = front.ep.prefill(plan.load.concurrency).await {
            eprintln!("  {}: opening connections: {e}", front.name);
        }
    }
    let n = fronts.len();
    for round in 0..plan.rounds {
        eprintln!("round {} of {}", round + 1, plan.rounds);
        for i in 0..n {
            let f = &mut fronts[(round + i) % n];
            let l = latency(&f.ep, &plan.load, f.pid, &f.peers).await;
            eprintln!(
                "  latency {}: p50 {:.0} µs, p99 {:.0} µs ({} ok, {} failed{})",
                f.name,
                us(l.p50),
                us(l.p99),
                l.outcome.ok,
                l.outcome.failed,
                first_error(&l.outcome)
            );
            if f.ours {
                fail.check(&format!("latency, {}", f.name), &l.outcome);
            }
            f.latency.push(l);
        }
        for i in 0..n {
            let f = &mut fronts[(round + i) % n];
            let (c, secs, calls) = (plan.load.concurrency, plan.load.burst_secs, plan.load.smoke_calls);
            let t = throughput(&f.ep, c, secs, calls, f.pid, &f.peers).await;
            eprintln!(
                "  throughput {}: {:.0} calls/s ({} ok, {} failed)",
                f.name, t.rate, t.outcome.ok, t.outcome.failed
            );
            if f.ours {
                fail.check(&format!("throughput, {}", f.name), &t.outcome);
            }
            f.throughput.push(t);
        }
    }
}

fn first_error(o: &Outcome) -> String {
    o.first_error.as_deref().map(|e| format!("; first error: {e}")).unwrap_or_default()
}

/// The median and the range of `values`, formatted with `unit`.
fn spread(mut values: Vec<f64>, unit: &str) -> String {
    if values.is_empty() {
        return "–".into();
    }
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    if values.len() == 1 {
        return format!("{median:.0}{unit}");
    }
    format!("{median:.0}{unit} [{:.0}–{:.0}]", values[0], values[values.len() - 1])
}

fn print_table(title: &str, fronts: &[Front]) {
    println!("\n### {title}\n");
    println!(
        "| front | per call it does | p50 | p99 | throughput (calls/s) | gateway CPU per call, paced / saturated | RSS after load | failed calls |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for f in fronts {
        let cpu = |rows: Vec<(Option<Duration>, Duration)>| {
            spread(rows.iter().filter_map(|(g, _)| g.map(us)).collect(), " µs")
        };
        let paced = cpu(f.latency.iter().map(|l| per_call(&l.usage, &l.outcome)).collect());
        let saturated = cpu(f.throughput.iter().map(|t| per_call(&t.usage, &t.outcome)).collect());
        let rss = f.pid.map(|p| format!("{:.0} MiB", mib(rss_kib(p).0))).unwrap_or_else(|| "–".into());
        let failed: usize = f.latency.iter().map(|l| l.outcome.failed).sum::<usize>()
            + f.throughput.iter().map(|t| t.outcome.failed).sum::<usize>();
        println!(
            "| {} | {} | {} | {} | {} | {} / {} | {} | {} |",
            f.name,
            f.does,
            spread(f.latency.iter().map(|l| us(l.p50)).collect(), " µs"),
            spread(f.latency.iter().map(|l| us(l.p99)).collect(), " µs"),
            spread(f.throughput.iter().map(|t| t.rate).collect(), ""),
            paced,
            saturated,
            rss,
            failed
        );
    }
}

const BARE: &str = "routing, id mapping, the default policy stack (allowlist, read-only, schema check, redaction), session bookkeeping";
const FULL: &str = "the same with a policy file (allowlist, read-only, per-tool timeout) and an audit log (two hash-chained records per call)";

async fn run(plan: &Plan, bins: &Bins) -> Result<(), Failures> {
    let mut fail = Failures::default();
    let mode = if plan.load.full {
        format!(
            "{} rounds; latency paced at {} calls/s for {} s; throughput {} in flight for {} s",
            plan.rounds, plan.load.rate, plan.load.paced_secs, plan.load.concurrency, plan.load.burst_secs
        )
    } else {
        format!("smoke run: {} calls per row, one round", plan.load.smoke_calls)
    };
    eprintln!("compare: {}; {mode}", machine());
    let others = |var: &str| std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_file());

    // ---------------------------------------------------------------- HTTP upstream
    let upstream = mini_upstream().await;
    let upstream_toml = format!("[[upstream]]\nname = \"b\"\nurl = {upstream:?}\n");
    let (bare, bare_dir) = tollgate(bins, &upstream_toml, None).await;
    let (full, full_dir) = tollgate(bins, &upstream_toml, Some(&policy_for("b", "echo"))).await;
    let connect = async |url: &str, tool: &str, gw: Option<&Gateway>| {
        Endpoint::connect(url, tool).await.unwrap_or_else(|e| {
            panic!("cannot start a session: {e}\nstderr:\n{}", gw.map(Gateway::stderr).unwrap_or_default())
        })
    };
    let mut http = vec![
        Front::new("direct (no gateway)", "–", connect(&upstream, "echo", None).await, None, true),
        Front::new("`tollgate serve`", BARE, connect(&bare.url, "b__echo", Some(&bare)).await, Some(&bare), true),
        Front::new(
            "`tollgate serve` + policy + audit",
            FULL,
            connect(&full.url, "b__echo", Some(&full)).await,
            Some(&full),
            true,
        ),
    ];
    let mut started = vec![bare, full];
    let mut dirs = vec![bare_dir, full_dir];
    match others(CONTEXTFORGE) {
        Some(script) => match contextforge(&script, &upstream).await {
            Ok((gw, ep)) => {
                let does = "ContextForge virtual server: bearer JWT check, tool lookup in its database, call to the registered gateway, metrics/audit in SQLite";
                http.push(Front::new("ContextForge 1.0.7 (`mcpgateway`)", does, ep, Some(&gw), false));
                started.push(gw);
            }
            Err(e) => eprintln!("compare: ContextForge left out: {e}"),
        },
        None => eprintln!("compare: ContextForge left out: set {CONTEXTFORGE} to its `mcpgateway` script"),
    }
    measure(&mut http, plan, &mut fail).await;

    // ---------------------------------------------------------------- stdio upstream
    let fixture_toml =
        format!("[[upstream]]\nname = \"s\"\ncommand = {:?}\nargs = [\"--raw\"]\n", bins.fixture.display().to_string());
    let (bare, bare_dir) = tollgate(bins, &fixture_toml, None).await;
    let (full, full_dir) = tollgate(bins, &fixture_toml, Some(&policy_for("s", "raw_echo"))).await;
    let mut stdio = vec![
        Front::new("`tollgate serve`", BARE, connect(&bare.url, "s__raw_echo", Some(&bare)).await, Some(&bare), true),
        Front::new(
            "`tollgate serve` + policy + audit",
            FULL,
            connect(&full.url, "s__raw_echo", Some(&full)).await,
            Some(&full),
            true,
        ),
    ];
    started.extend([bare, full]);
    dirs.extend([bare_dir, full_dir]);
    match others(SUPERGATEWAY) {
        Some(index) => match supergateway(&index, &bins.fixture).await {
            Ok((gw, ep)) => {
                let does = "Streamable HTTP ↔ stdio bridge (MCP TypeScript SDK transports), no policy";
                stdio.push(Front::new("supergateway 4.0.0", does, ep, Some(&gw), false));
                started.push(gw);
            }
            Err(e) => eprintln!("compare: supergateway left out: {e}"),
        },
        None => eprintln!("compare: supergateway left out: set {SUPERGATEWAY} to its dist/index.js"),
    }
    measure(&mut stdio, plan, &mut fail).await;

    println!("Machine: {}", machine());
    println!("Mode: {mode}; median of the rounds [range]");
    print_table("HTTP upstream (in-process, answers at once)", &http);
    print_table("stdio upstream (`tollgate-fixture --raw`), clients over Streamable HTTP", &stdio);
    drop((http, stdio));
    for gw in started {
        gw.stop().await;
    }
    drop(dirs);
    if fail.0.is_empty() { Ok(()) } else { Err(fail) }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = Plan::new(full);
    let limit = Duration::from_secs(if full { 1800 } else { 300 });
    common::bins::run_bench("compare", full, limit, async |bins| run(&plan, &bins).await);
}
