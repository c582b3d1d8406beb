//! Child processes under test: the gateway (`tollgate serve`) and the fixture HTTP server.
//! Both print `listening on URL` first; both are stopped (SIGTERM, then SIGKILL) on drop.

use super::{WAIT, fixture_bin, tollgate_bin};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running process that announced an HTTP URL.
pub struct Listening {
    pub child: Child,
    pub url: String,
    /// The admin API's URL, if the gateway announced one.
    pub admin: Option<String>,
    pub dir: tempfile::TempDir,
}

async fn start_listening(mut cmd: Command, dir: tempfile::TempDir) -> Listening {
    let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
    cmd.stdout(Stdio::piped()).stderr(Stdio::from(log)).stdin(Stdio::null()).kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut admin = None;
    let url = loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("process did not announce its URL in time")
            .expect("read stdout")
            .unwrap_or_else(|| panic!("process exited before listening; stderr: {}", read_log(&dir)));
        if let Some(a) = line.strip_prefix("admin listening on ") {
            admin = Some(a.to_string());
            continue;
        }
        break line.strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected line {line:?}")).to_string();
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Listening { child, url, admin, dir }
}

fn read_log(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
}

impl Listening {
    pub fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }
    pub fn stderr(&self) -> String {
        read_log(&self.dir)
    }
    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.pid());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        tokio::time::timeout(WAIT, self.child.wait()).await.expect("exit after SIGTERM").expect("wait")
    }
}

impl Listening {
    /// `tollgate serve` with `config` (TOML; `listen` is forced to a free loopback port).
    pub async fn gateway(config: &str) -> Listening {
        Listening::gateway_in(tempfile::tempdir().expect("tempdir"), config).await
    }

    /// Kills the gateway without warning (SIGKILL: no shutdown, as in a crash) and starts it
    /// again from the same directory and config.
    pub async fn crash_and_restart(mut self) -> Listening {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
        let mut cmd = Command::new(tollgate_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(self.dir.path().join("tollgate.toml"))
            .env("TOLLGATE_LOG", "debug")
            .env("TOLLGATE_LOG_FORMAT", "text");
        let old = self.dir.path().join("stderr.log");
        let _ = std::fs::rename(&old, self.dir.path().join("stderr.before-restart.log"));
        start_listening(cmd, self.dir).await
    }

    /// `tollgate serve` with extra environment variables for the gateway process.
    pub async fn gateway_with_env(config: &str, env: &[(&str, &str)]) -> Listening {
        Listening::start_gateway(tempfile::tempdir().expect("tempdir"), config, env).await
    }

    /// `tollgate serve` with `config` in `dir` (relative paths in the config resolve there).
    pub async fn gateway_in(dir: tempfile::TempDir, config: &str) -> Listening {
        Listening::start_gateway(dir, config, &[]).await
    }

    /// `tollgate serve` with `config` in `dir` and extra environment variables.
    pub async fn gateway_in_with_env(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Listening {
        Listening::start_gateway(dir, config, env).await
    }

    async fn start_gateway(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Listening {
        let path = dir.path().join("tollgate.toml");
        let config = if config.contains("[server]") {
            config.replacen("[server]", "[server]\nlisten = \"127.0.0.1:0\"", 1)
        } else {
            format!("[server]\nlisten = \"127.0.0.1:0\"\n{config}")
        };
        std::fs::write(&path, config).expect("write config");
        let mut cmd = Command::new(tollgate_bin());
        cmd.arg("serve").arg("--config").arg(&path).env("TOLLGATE_LOG", "debug").env("TOLLGATE_LOG_FORMAT", "text");
        cmd.envs(env.iter().copied());
        start_listening(cmd, dir).await
    }

    /// The fixture MCP server over Streamable HTTP.
    pub async fn fixture_http() -> Listening {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(fixture_bin());
        cmd.arg("--http").arg("127.0.0.1:0");
        start_listening(cmd, dir).await
    }
}

/// TOML for one stdio upstream.
pub fn stdio_upstream(name: &str, command: &str, args: &[&str], extra: &str) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!("[[upstream]]\nname = {name:?}\ncommand = {command:?}\nargs = [{}]\n{extra}\n", args.join(", "))
}

/// TOML for one HTTP upstream.
pub fn http_upstream(name: &str, url: &str, extra: &str) -> String {
    format!("[[upstream]]\nname = {name:?}\nurl = {url:?}\n{extra}\n")
}
