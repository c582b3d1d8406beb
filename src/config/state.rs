//! Config sections for what outlives a request: the state store, session lifecycle, human
//! approvals and the admin listener.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// redb in one local file (or in memory without `file`): zero setup, one gateway process.
    #[default]
    Embedded,
    /// Redis (or Redis Cluster): shared by every replica.
    Redis,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default)]
    pub backend: StoreBackend,
    /// Embedded: the database file (relative to the config file). Without one, state lives in
    /// memory and is lost when the process exits.
    pub file: Option<PathBuf>,
    /// Redis: `redis://host:port/db`, or `redis+cluster://host1:port1,host2:port2` for a cluster.
    pub url: Option<String>,
}

impl StoreConfig {
    pub fn resolved_file(&self, base: &Path) -> Option<PathBuf> {
        self.file.as_ref().map(|d| if d.is_absolute() { d.clone() } else { base.join(d) })
    }

    pub fn validate(&self) -> Result<(), String> {
        match self.backend {
            StoreBackend::Redis => match &self.url {
                None => Err("store.url: backend = \"redis\" needs url = \"redis://127.0.0.1:6379/\"".into()),
                Some(u) if !(u.starts_with("redis://") || u.starts_with("redis+cluster://")) => Err(format!(
                    "store.url = {u:?}: use redis://host:port/db or redis+cluster://host1:port1,host2:port2"
                )),
                Some(_) if self.file.is_some() => Err("store.file: only applies to backend = \"embedded\"".into()),
                Some(_) => Ok(()),
            },
            StoreBackend::Embedded if self.url.is_some() => {
                Err("store.url: only applies to backend = \"redis\" (set backend = \"redis\")".into())
            }
            StoreBackend::Embedded => Ok(()),
        }
    }
}

/// Session lifecycle beyond the idle timeout in `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// How long a tool call on a paused session waits for `resume` before it fails.
    #[serde(default = "default_pause_wait")]
    pub pause_max_wait_secs: u64,
    /// Recent calls kept per session (for `tollgate sessions show`).
    #[serde(default = "default_history")]
    pub history_len: usize,
}

fn default_pause_wait() -> u64 {
    300
}
fn default_history() -> usize {
    50
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig { pause_max_wait_secs: default_pause_wait(), history_len: default_history() }
    }
}

impl SessionsConfig {
    pub fn pause_max_wait(&self) -> Duration {
        Duration::from_secs(self.pause_max_wait_secs)
    }
}

/// Calls that policy marks as needing a human.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// No answer within this long means denied.
    #[serde(default = "default_approval_timeout")]
    pub timeout_secs: u64,
    /// Also ask the person at the client (elicitation, or `input_required` for 2026-07-28
    /// clients) when the client supports it; the admin API and CLI can always answer.
    #[serde(default = "default_true")]
    pub ask_client: bool,
    /// Secret reference (`env:NAME`, `file:PATH`) for signing the `requestState` of approvals
    /// asked through 2026-07-28 `input_required` results. Replicas behind one load balancer
    /// must share it; without it each process signs with a random key of its own.
    pub state_key: Option<String>,
}

fn default_approval_timeout() -> u64 {
    300
}
fn default_true() -> bool {
    true
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig { timeout_secs: default_approval_timeout(), ask_client: true, state_key: None }
    }
}

impl ApprovalsConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.timeout_secs == 0 {
            return Err("approvals.timeout_secs: must be at least 1".into());
        }
        match &self.state_key {
            Some(r) => crate::secrets::check_reference(r).map_err(|e| format!("approvals.state_key: {e}")),
            None => Ok(()),
        }
    }
}

/// The admin HTTP API (sessions, approvals, health): a separate listener, loopback by default,
/// every request needs the token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// A secret reference: `env:NAME` or `file:PATH`; never the token itself.
    pub token: String,
}

fn default_admin_listen() -> SocketAddr {
    "127.0.0.1:8081".parse().expect("valid")
}

impl AdminConfig {
    pub fn validate(&self) -> Result<(), String> {
        crate::secrets::check_reference(&self.token).map_err(|e| format!("admin.token: {e}"))
    }
}
