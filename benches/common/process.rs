//! Child processes under test (gateways), their memory and their children.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A child process serving HTTP on a free loopback port: `tollgate serve`, a reference proxy or
/// another gateway.
pub struct Gateway {
    pub child: Child,
    pub pid: u32,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// `tollgate serve` with `config` (TOML after `[server] listen = "127.0.0.1:0"`).
    pub async fn start(bin: &Path, config: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bench.toml");
        std::fs::write(&path, format!("[server]\nlisten = \"127.0.0.1:0\"\n{config}")).expect("write config");
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--config"]).arg(&path).env("TOLLGATE_LOG", "warn");
        Gateway::spawn(cmd, dir).await
    }

    /// Starts a process that prints `listening on URL` as its first line.
    pub async fn spawn(mut cmd: Command, dir: tempfile::TempDir) -> Gateway {
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

    /// Starts a process that serves `url` but does not announce it: ready once its port accepts
    /// a connection (within `within`). Its stdout and stderr go to its log.
    pub async fn spawn_serving(mut cmd: Command, dir: tempfile::TempDir, url: &str, within: Duration) -> Gateway {
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
        let bin = cmd.as_std().get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        let pid = child.id().expect("gateway pid");
        let addr = url.strip_prefix("http://").and_then(|r| r.split('/').next()).expect("an http:// URL");
        let deadline = Instant::now() + within;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            let log = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{bin} exited ({status}) before serving {url}; its output:\n{}", log());
            }
            assert!(Instant::now() < deadline, "{bin} did not serve {url} within {within:?}; its output:\n{}", log());
            // Polling a port is the only readiness signal such a process gives.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Gateway { child, pid, url: url.to_string(), dir }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// SIGTERM and wait (the gateway ends its upstream sessions); SIGKILL after 5 s.
    pub async fn stop(mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// `(VmRSS, VmHWM)` in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
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

/// The child processes of `pid` (`/proc/PID/task/*/children`).
pub fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

/// A loopback port free right now, for a process that must be told where to listen.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
