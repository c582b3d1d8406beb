//! A gateway as an operator runs it (admin API, embedded store file, audit log, optional policy)
//! and the CLI an operator drives it with; shared by the lifecycle and cost tests.

use super::{Listening, WAIT, fixture_bin, stdio_upstream, tollgate_bin};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The fixture over stdio behind `tollgate serve` with an admin API, `[store] file`, an audit
/// log at `audit/audit.jsonl`, `extra` config and optional policy text (`policies/p.toml`).
pub async fn operated_gateway(extra: &str, policy: Option<&str>) -> Listening {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), ADMIN_TOKEN).unwrap();
    let mut config = stdio_upstream("fx", fixture_bin(), &[], "");
    config.push_str("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"file:admin.token\"\n");
    config.push_str("[store]\nfile = \"state/tollgate.redb\"\n[audit]\nfile = \"audit/audit.jsonl\"\n");
    if let Some(text) = policy {
        std::fs::create_dir_all(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/p.toml"), text).unwrap();
        config.push_str("[policy]\ndir = \"policies\"\n");
    }
    config.push_str(extra);
    Listening::gateway_in(dir, &config).await
}

/// Runs the `tollgate` CLI; admin commands (`sessions`, `approvals`, `pins`) get the gateway's
/// admin API and token. Returns (success, stdout, stderr).
pub async fn tollgate(gw: &Listening, args: &[&str]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(tollgate_bin());
    cmd.args(args).env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN).env_remove("TOLLGATE_CONFIG");
    if matches!(args.first(), Some(&"sessions" | &"approvals" | &"pins")) && args.get(1) != Some(&"replay") {
        cmd.arg("--admin").arg(gw.admin.as_deref().expect("admin API announced"));
    }
    let out = cmd.output().await.expect("run tollgate");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// [`tollgate`] with `--json`, parsed; fails the test if the command fails.
pub async fn tollgate_json(gw: &Listening, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, stdout, stderr) = tollgate(gw, &all).await;
    assert!(ok, "tollgate {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Polls `f` until it holds, within the test bound (a condition wait, not a sleep).
pub async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not reached within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every record of the gateway's audit log (`audit/audit.jsonl` under `dir`).
pub fn audit_records(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
