//! stdio upstreams: a supervised child process speaking newline-delimited JSON-RPC.
//!
//! Invariants: the child runs in its own process group, so stopping it also stops whatever it
//! spawned (`npx` → `node`); the group is killed when the wire is shut down or dropped, so no
//! child outlives its session. stderr goes to our logs, never to a client.

use super::Dispatcher;
use crate::config::UpstreamConfig;
use crate::error::Error;
use crate::jsonrpc::Frame;
use futures::StreamExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

/// Longest line accepted from a child; longer output is dropped, not buffered without bound.
pub const MAX_LINE: usize = 16 * 1024 * 1024;
const MAX_STDERR_LINE: usize = 8 * 1024;
const STOP_GRACE: Duration = Duration::from_secs(2);

pub struct StdioWire {
    upstream: String,
    tx: mpsc::UnboundedSender<String>,
    pgid: Option<Pid>,
    child: Mutex<Option<Child>>,
}

impl StdioWire {
    pub fn spawn(config: &UpstreamConfig, dispatcher: Arc<Dispatcher>) -> Result<StdioWire, Error> {
        let program = config.command.as_deref().unwrap_or_default();
        let mut cmd = Command::new(program);
        cmd.args(&config.args)
            .envs(&config.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(cwd) = &config.cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd.spawn().map_err(|e| Error::UpstreamUnavailable {
            upstream: config.name.clone(),
            reason: format!("cannot start `{program}`: {e}"),
        })?;
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
        tokio::spawn(read_stdout(config.name.clone(), stdout, dispatcher));
        tokio::spawn(log_stderr(config.name.clone(), stderr));
        Ok(StdioWire { upstream: config.name.clone(), tx, pgid, child: Mutex::new(Some(child)) })
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

async fn read_stdout(name: String, stdout: tokio::process::ChildStdout, dispatcher: Arc<Dispatcher>) {
    let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_LINE));
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) if line.trim().is_empty() => {}
            Ok(line) => match Frame::parse(line) {
                Ok(frame) => dispatcher.dispatch(frame, None),
                Err(e) => tracing::warn!(upstream = %name, error = ?e, "dropping invalid frame from upstream"),
            },
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                tracing::warn!(upstream = %name, limit = MAX_LINE, "dropping oversized line from upstream")
            }
            Err(e) => {
                tracing::warn!(upstream = %name, error = %e, "upstream stdout failed");
                break;
            }
        }
    }
    tracing::info!(upstream = %name, "upstream process closed its stdout");
    dispatcher.close("the upstream process exited".into());
}

async fn log_stderr(name: String, stderr: tokio::process::ChildStderr) {
    let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(MAX_STDERR_LINE));
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) => tracing::info!(upstream = %name, "stderr: {line}"),
            Err(LinesCodecError::MaxLineLengthExceeded) => {}
            Err(_) => break,
        }
    }
}
