//! stdio upstreams: a supervised child process speaking newline-delimited JSON-RPC.
//!
//! Invariants: the child runs in its own process group, so stopping it also stops whatever it
//! spawned (`npx` → `node`); the group is killed when the wire is shut down or dropped, so no
//! child outlives its session. stderr goes to our logs, never to a client.
//!
//! The child starts confined (see `sandbox`): only allowlisted variables of the gateway's
//! environment plus its configured `env`, an explicit working directory, optional resource
//! limits, no new privileges.

use super::lines::{Line, TolerantLines};
use super::{Dispatcher, sandbox};
use crate::config::{ProcessLimits, UpstreamConfig};
use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::secrets::Scrubber;
use futures::StreamExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

/// Longest line accepted from a child; longer output is dropped, not buffered without bound.
pub const MAX_LINE: usize = 16 * 1024 * 1024;
const MAX_STDERR_LINE: usize = 8 * 1024;
const STOP_GRACE: Duration = Duration::from_secs(2);

pub struct StdioWire {
    upstream: String,
    tx: mpsc::UnboundedSender<String>,
    pgid: Option<Pid>,
    /// Shared with the stdout reader, which reads the exit status to say why the child ended.
    child: Arc<Mutex<Option<Child>>>,
}

impl StdioWire {
    pub fn spawn(config: &UpstreamConfig, dispatcher: Arc<Dispatcher>) -> Result<StdioWire, Error> {
        let program = config.command.as_deref().unwrap_or_default();
        let unavailable = |reason: String| Error::UpstreamUnavailable { upstream: config.name.clone(), reason };
        let (env, secrets) = sandbox::environment(config).map_err(unavailable)?;
        // Before the child can say anything: what it echoes of its credentials is scrubbed.
        let scrubber = Arc::new(Scrubber::new(&secrets));
        dispatcher.set_scrubber(scrubber.clone());
        // Explicit, so the child never depends on where the gateway happened to be started
        // from without the config saying so; checked here so a missing directory is not
        // reported as a missing program.
        let cwd = match &config.cwd {
            Some(dir) => dir.clone(),
            None => std::env::current_dir()
                .map_err(|e| unavailable(format!("cannot read the gateway's working directory: {e}")))?,
        };
        if !cwd.is_dir() {
            return Err(unavailable(format!("working directory {} does not exist", cwd.display())));
        }
        let mut cmd = Command::new(program);
        cmd.args(&config.args)
            .env_clear()
            .envs(env)
            .current_dir(&cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        sandbox::confine(&mut cmd, &config.limits);
        let mut child = cmd.spawn().map_err(|e| unavailable(format!("cannot start `{program}`: {e}")))?;
        let pgid = child.id().map(|id| Pid::from_raw(id as i32));
        tracing::info!(upstream = %config.name, pid = ?child.id(), program, "started stdio upstream");

        let mut stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let name = config.name.clone();
        tokio::spawn(async move {
            let mut batch = String::new();
            while let Some(first) = rx.recv().await {
                // Everything already queued goes out in one write; the child sees each message
                // as soon as it is sent, and a burst costs one syscall instead of one per line.
                batch.clear();
                batch.push_str(&first);
                batch.push('\n');
                while let Ok(more) = rx.try_recv() {
                    batch.push_str(&more);
                    batch.push('\n');
                }
                if let Err(e) = stdin.write_all(batch.as_bytes()).await {
                    tracing::debug!(upstream = %name, error = %e, "upstream stdin closed");
                    break;
                }
                if stdin.flush().await.is_err() {
                    break;
                }
            }
        });
        let child = Arc::new(Mutex::new(Some(child)));
        let exit = ExitWatch { child: child.clone(), limits: config.limits };
        tokio::spawn(read_stdout(config.name.clone(), stdout, dispatcher, exit));
        tokio::spawn(log_stderr(config.name.clone(), stderr, scrubber));
        Ok(StdioWire { upstream: config.name.clone(), tx, pgid, child })
    }

    pub async fn send(&self, text: String) -> Result<(), Error> {
        self.tx.send(text).map_err(|_| Error::UpstreamUnavailable {
            upstream: self.upstream.clone(),
            reason: "process stdin is closed".into(),
        })
    }

    pub fn send_now(&self, text: String) {
        let _ = self.tx.send(text);
    }

    /// SIGTERM to the process group, then SIGKILL after a grace period.
    pub async fn shutdown(&self) {
        let child = self.child.lock().expect("child lock").take();
        let Some(mut child) = child else { return };
        if let Some(pgid) = self.pgid {
            let _ = killpg(pgid, Signal::SIGTERM);
        }
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
            tracing::warn!(upstream = %self.upstream, "upstream ignored SIGTERM; killing");
        }
        if let Some(pgid) = self.pgid {
            // Whatever is left of the group (grandchildren included) goes now.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        let _ = child.wait().await;
    }
}

impl Drop for StdioWire {
    fn drop(&mut self) {
        if let (Some(pgid), Some(_)) = (self.pgid, self.child.lock().expect("child lock").as_ref()) {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// What the stdout reader needs to explain the child's end.
struct ExitWatch {
    child: Arc<Mutex<Option<Child>>>,
    limits: ProcessLimits,
}

impl ExitWatch {
    /// The reason upstream calls fail with once stdout closed: the exit status if the child is
    /// gone (it closes stdout as it dies), and a hint when a configured limit may be the cause.
    async fn reason(&self) -> String {
        let mut status = None;
        // A process closes stdout a moment before it can be reaped; wait a little, bounded.
        for _ in 0..50 {
            let polled = match self.child.lock().expect("child lock").as_mut() {
                Some(child) => child.try_wait().ok().flatten(),
                None => return "the gateway stopped the upstream process".into(),
            };
            if polled.is_some() {
                status = polled;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        use std::os::unix::process::ExitStatusExt;
        let Some(status) = status else { return "the upstream process closed its stdout".into() };
        let what = match (status.code(), status.signal()) {
            (Some(code), _) => format!("the upstream process exited with status {code}"),
            (None, Some(sig)) => {
                let name = Signal::try_from(sig).map(|s| s.as_str().to_string()).unwrap_or_else(|_| sig.to_string());
                format!("the upstream process was killed by {name}")
            }
            _ => "the upstream process exited".into(),
        };
        match sandbox::limit_hint(&self.limits, status.signal()) {
            Some(hint) => format!("{what}; {hint}"),
            None => what,
        }
    }
}

async fn read_stdout(name: String, stdout: tokio::process::ChildStdout, dispatcher: Arc<Dispatcher>, exit: ExitWatch) {
    let mut lines = FramedRead::new(stdout, TolerantLines::new(MAX_LINE));
    while let Some(line) = lines.next().await {
        match line {
            Ok(Line::Text(line)) if line.trim().is_empty() => {}
            Ok(Line::Text(line)) => match Frame::parse(line) {
                Ok(frame) => dispatcher.dispatch(frame, None),
                Err(e) => tracing::warn!(upstream = %name, error = ?e, "dropping invalid frame from upstream"),
            },
            Ok(Line::TooLong) => {
                tracing::warn!(upstream = %name, limit = MAX_LINE, "dropping oversized line from upstream")
            }
            Ok(Line::NotUtf8) => tracing::warn!(upstream = %name, "dropping a line from upstream that is not UTF-8"),
            Err(e) => {
                tracing::warn!(upstream = %name, error = %e, "upstream stdout failed");
                break;
            }
        }
    }
    let reason = exit.reason().await;
    tracing::info!(upstream = %name, reason, "upstream process closed its stdout");
    dispatcher.close(reason);
}

async fn log_stderr(name: String, stderr: tokio::process::ChildStderr, scrubber: Arc<Scrubber>) {
    // Read to the end whatever comes, so a chatty child never blocks or dies on its stderr.
    let mut lines = FramedRead::new(stderr, TolerantLines::new(MAX_STDERR_LINE));
    while let Some(line) = lines.next().await {
        match line {
            Ok(Line::Text(line)) => {
                let line = scrubber.scrub(&line).unwrap_or(line);
                tracing::info!(upstream = %name, "stderr: {line}")
            }
            Ok(Line::TooLong | Line::NotUtf8) => {}
            Err(_) => break,
        }
    }
}
