//! What the gateway keeps between requests, restarts and replicas, behind one trait with two
//! implementations: Redis (`redis.rs`, production, shared by replicas) and an embedded redb
//! database (`embedded.rs`, the zero-setup default).
//!
//! Invariants:
//! - nothing here holds a raw secret: arguments are stored redacted, tokens only as digests;
//! - every key of a session expires with it (TTL refreshed on activity); approvals and nonces
//!   expire on their own; pins and long-term memory never expire;
//! - operations that decide something (an approval, a nonce's first use, a rate-limit hit) are
//!   atomic in the store, so two replicas never both win.
//!
//! Redis key layout (all under `tollgate:`) is documented in ARCHITECTURE.md.

use crate::mcp::lifecycle::ClientHello;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum StoreError {
    /// The store cannot be reached or refused the operation; callers fail closed.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be decoded (written by an incompatible version, or edited).
    #[error("session store holds an unreadable value at {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

/// Milliseconds since the Unix epoch: how times are stored.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Where a session is in its life, as operators steer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    #[default]
    Active,
    /// New tool calls wait (up to a configured time) until the session is resumed.
    Paused,
    /// Ended by an operator; the id is refused from now on.
    Stopped,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Active => "active",
            SessionState::Paused => "paused",
            SessionState::Stopped => "stopped",
        }
    }
}

/// Running totals of one session; added to atomically. Bytes and tokens are the payloads a
/// model writes and reads (see `crate::cost`); cost is in micro-units of `[cost] currency`, an
/// integer so that Redis HINCRBY and redb sums stay exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub calls: u64,
    pub denied: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_micros: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.calls = self.calls.saturating_add(other.calls);
        self.denied = self.denied.saturating_add(other.denied);
        self.bytes_in = self.bytes_in.saturating_add(other.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(other.bytes_out);
        self.tokens_in = self.tokens_in.saturating_add(other.tokens_in);
        self.tokens_out = self.tokens_out.saturating_add(other.tokens_out);
        self.cost_micros = self.cost_micros.saturating_add(other.cost_micros);
    }
}

/// One downstream session as stored: enough to serve its client again after a restart or from
/// another replica (the upstream connections themselves are re-established, not stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub principal: String,
    /// What the client said in `initialize` (or its 2026-07-28 `_meta`); None until it did.
    pub client: Option<StoredClient>,
    /// Upstream name → the upstream's own session id, where it gave one.
    #[serde(default)]
    pub upstream_sessions: BTreeMap<String, String>,
    #[serde(default)]
    pub state: SessionState,
    #[serde(default)]
    pub usage: Usage,
    pub created_ms: u64,
    pub last_seen_ms: u64,
    /// Set once the session has read from a tool the policy marks as an untrusted source; from
    /// then on, calls to sinks need approval or are refused. Never cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taint: Option<Taint>,
}

/// Where a session first read untrusted data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    pub upstream: String,
    pub tool: String,
    pub at_ms: u64,
    /// The policy rule that marks the tool as an untrusted source.
    pub rule: String,
}

/// The storable form of [`ClientHello`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredClient {
    pub version: String,
    pub stateless: bool,
    pub client_info: serde_json::Value,
    pub capabilities: serde_json::Value,
}

impl From<&ClientHello> for StoredClient {
    fn from(h: &ClientHello) -> Self {
        StoredClient {
            version: h.version.clone(),
            stateless: h.stateless,
            client_info: h.client_info.clone(),
            capabilities: h.capabilities.clone(),
        }
    }
}

impl From<StoredClient> for ClientHello {
    fn from(c: StoredClient) -> Self {
        ClientHello {
            version: c.version,
            stateless: c.stateless,
            client_info: c.client_info,
            capabilities: c.capabilities,
        }
    }
}

/// One finished tool call in a session's recent history (capped list, newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallSummary {
    pub at_ms: u64,
    pub upstream: String,
    pub tool: String,
    /// allowed | denied | error | timeout | ...
    pub outcome: String,
    pub rule: Option<String>,
    pub latency_ms: u64,
    /// The call's payload sizes, estimated tokens and cost (see [`Usage`]); absent in records
    /// written before cost attribution, read as 0.
    #[serde(default)]
    pub bytes_in: u64,
    pub bytes_out: u64,
    #[serde(default)]
    pub tokens_in: u64,
    #[serde(default)]
    pub tokens_out: u64,
    #[serde(default)]
    pub cost_micros: u64,
}

/// A tool call waiting for a human.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Unguessable (128+ bits, hex).
    pub id: String,
    pub session: String,
    pub principal: String,
    pub upstream: String,
    pub tool: String,
    /// The arguments, redacted, for the person deciding.
    pub arguments: serde_json::Value,
    pub rule: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub decision: Option<ApprovalDecision>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    pub approved: bool,
    /// Who decided: `admin:<token digest prefix>`, `client-elicitation`, `timeout`, ...
    pub by: String,
    pub at_ms: u64,
    pub reason: Option<String>,
}

/// What became of an attempt to decide an approval.
#[derive(Debug, Clone, PartialEq)]
pub enum DecideOutcome {
    /// This decision was recorded.
    Decided(ApprovalRecord),
    /// Someone decided first (or it expired); the record as it stands.
    AlreadyDecided(ApprovalRecord),
    NotFound,
}

/// A rate-limit verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateVerdict {
    Allowed,
    /// Over the limit; the earliest a retry can succeed.
    Limited {
        retry_after: Duration,
    },
}

/// A GCRA limit: `burst` calls at once, refilling at one per `period / per_period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateQuota {
    pub per_period: u32,
    pub period: Duration,
    pub burst: u32,
}

impl RateQuota {
    /// Time between two calls at the sustained rate.
    pub fn emission_interval(&self) -> Duration {
        self.period / self.per_period.max(1)
    }
}

/// The state the gateway keeps, wherever it lives. All methods are safe to call concurrently
/// from many tasks and (for Redis) from many replicas.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Which implementation, for logs and `sessions show`.
    fn kind(&self) -> &'static str;

    /// Checks the store answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Makes everything written so far durable (called at shutdown; stores that are always
    /// durable need not override it).
    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }

    // ------------------------------------------------------------ sessions

    /// Creates or replaces a session record (usage is kept as stored if the record exists).
    async fn put_session(&self, record: &SessionRecord, ttl: Duration) -> StoreResult<()>;
    /// The session with its current state and usage, if it exists and has not expired.
    async fn get_session(&self, id: &str) -> StoreResult<Option<SessionRecord>>;
    /// Just the state: the hot-path read on every tool call.
    async fn session_state(&self, id: &str) -> StoreResult<Option<SessionState>>;
    /// Sets the state; false if there is no such session.
    async fn set_session_state(&self, id: &str, state: SessionState) -> StoreResult<bool>;
    /// Marks activity: sets last-seen and pushes the expiry of all the session's keys to `ttl`
    /// from now.
    async fn touch_session(&self, id: &str, ttl: Duration) -> StoreResult<()>;
    /// Adds to the session's usage atomically.
    async fn add_usage(&self, id: &str, delta: &Usage) -> StoreResult<()>;
    /// Removes the session and everything kept for it (history).
    async fn delete_session(&self, id: &str) -> StoreResult<()>;
    /// Every live session (for operators; not on a hot path).
    async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>>;

    /// Prepends `calls` (oldest first) to the session's recent calls, keeping at most `cap`: one
    /// store round trip for a whole flush, whatever its size. No calls (with `cap > 0`) change
    /// nothing; `cap == 0` removes the history.
    async fn push_history(&self, id: &str, calls: &[CallSummary], cap: usize, ttl: Duration) -> StoreResult<()>;
    /// The newest `limit` calls, newest first.
    async fn history(&self, id: &str, limit: usize) -> StoreResult<Vec<CallSummary>>;

    // ------------------------------------------------------------ approvals

    async fn put_approval(&self, approval: &ApprovalRecord) -> StoreResult<()>;
    async fn get_approval(&self, id: &str) -> StoreResult<Option<ApprovalRecord>>;
    /// Approvals not yet decided and not expired.
    async fn pending_approvals(&self) -> StoreResult<Vec<ApprovalRecord>>;
    /// Records a decision if none was recorded yet (atomic: exactly one decider wins).
    async fn decide_approval(&self, id: &str, decision: &ApprovalDecision) -> StoreResult<DecideOutcome>;

    /// True the first time `nonce` is used within `ttl`; false on any replay.
    async fn use_nonce(&self, nonce: &str, ttl: Duration) -> StoreResult<bool>;

    // ------------------------------------------------------------ pins

    /// The pinned digest of a tool's definition.
    async fn get_pin(&self, upstream: &str, tool: &str) -> StoreResult<Option<String>>;
    /// Pins a digest only if the tool has none yet; returns the pin in force afterwards.
    async fn pin_if_absent(&self, upstream: &str, tool: &str, digest: &str) -> StoreResult<String>;
    /// Sets (approves) a pin, replacing any earlier one.
    async fn set_pin(&self, upstream: &str, tool: &str, digest: &str) -> StoreResult<()>;
    /// (upstream, tool, digest), sorted.
    async fn list_pins(&self) -> StoreResult<Vec<(String, String, String)>>;

    // ------------------------------------------------------------ rate limits

    /// One call against `key` under `quota` (GCRA); shared by every replica on the store.
    async fn rate_check(&self, key: &str, quota: &RateQuota) -> StoreResult<RateVerdict>;

    // ------------------------------------------------------------ long-term memory (no TTL)

    async fn memory_put(&self, principal: &str, key: &str, value: &str) -> StoreResult<()>;
    async fn memory_get(&self, principal: &str, key: &str) -> StoreResult<Option<String>>;
    /// Keys starting with `prefix`, sorted, at most `limit`.
    async fn memory_list(&self, principal: &str, prefix: &str, limit: usize) -> StoreResult<Vec<String>>;
    /// False if the key did not exist.
    async fn memory_delete(&self, principal: &str, key: &str) -> StoreResult<bool>;
}

/// A fresh unguessable id: 128 bits from the OS CSPRNG, hex.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    crate::hex::encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_before_cost_attribution_still_read() {
        let usage: Usage =
            serde_json::from_str(r#"{"calls":3,"denied":1,"bytes_in":1,"bytes_out":2,"tokens_in":1,"tokens_out":1}"#)
                .unwrap();
        assert_eq!((usage.calls, usage.cost_micros), (3, 0));
        let call: CallSummary = serde_json::from_str(
            r#"{"at_ms":1,"upstream":"fx","tool":"fx__echo","outcome":"ok","rule":null,"latency_ms":2,"bytes_out":40}"#,
        )
        .unwrap();
        assert_eq!((call.bytes_out, call.tokens_out, call.cost_micros), (40, 0, 0));
    }
}
