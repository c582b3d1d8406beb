//! The embedded state store: one redb file (or memory), for a single gateway process with no
//! setup. Rate-limit counters and nonces live in process memory: with one process there is
//! nothing to share them with, and they need not survive a restart.
//!
//! Reads run inline (a redb read transaction is a few µs against cached pages: cheaper than a
//! hop to the blocking pool); writes go to the blocking pool, since a durable commit waits for
//! an fsync. Per-call bookkeeping (usage, history) commits without fsync and a background
//! flush makes it durable within [`FLUSH_EVERY`] (and at shutdown): a crash may lose the last
//! fraction of a second of counts; every call paying for an fsync would be worse.

use super::store::*;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How stale the durable copy of per-call bookkeeping may get.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("history");
const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("approvals");
const PINS: TableDefinition<&str, &str> = TableDefinition::new("pins");
const MEMORY: TableDefinition<&str, &str> = TableDefinition::new("memory");

/// A value with its expiry (redb has no TTLs of its own).
#[derive(Serialize, Deserialize)]
struct Expiring<T> {
    expires_ms: u64,
    value: T,
}

pub struct EmbeddedStore {
    db: Arc<Database>,
    /// Set by commits made without fsync; cleared by the flush that makes them durable.
    dirty: Arc<AtomicBool>,
    nonces: Mutex<HashMap<String, Instant>>,
    limiters: Mutex<HashMap<RateQuota, Arc<DefaultKeyedRateLimiter<String>>>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { key: key.to_string(), reason: e.to_string() })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records serialize")
}

/// `a\0b`: composite keys (names cannot contain NUL).
fn pair(a: &str, b: &str) -> String {
    format!("{a}\0{b}")
}

impl EmbeddedStore {
    /// Opens (or creates) the database file; refuses a file another process holds.
    pub fn open(path: &Path) -> StoreResult<Arc<EmbeddedStore>> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => unavailable(format!(
                "{} is in use by another process (the embedded store serves one gateway; use Redis for several)",
                path.display()
            )),
            other => unavailable(format!("cannot open {}: {other}", path.display())),
        })?;
        EmbeddedStore::with_db(db)
    }

    /// State for this process only.
    pub fn in_memory() -> StoreResult<Arc<EmbeddedStore>> {
        let db =
            Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).map_err(unavailable)?;
        EmbeddedStore::with_db(db)
    }

    fn with_db(db: Database) -> StoreResult<Arc<EmbeddedStore>> {
        // Create every table up front, so reads never meet a missing one.
        let txn = db.begin_write().map_err(unavailable)?;
        {
            txn.open_table(SESSIONS).map_err(unavailable)?;
            txn.open_table(HISTORY).map_err(unavailable)?;
            txn.open_table(APPROVALS).map_err(unavailable)?;
            txn.open_table(PINS).map_err(unavailable)?;
            txn.open_table(MEMORY).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        let store = Arc::new(EmbeddedStore {
            db: Arc::new(db),
            dirty: Arc::new(AtomicBool::new(false)),
            nonces: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
        });
        let (db, dirty) = (Arc::downgrade(&store.db), store.dirty.clone());
        std::thread::Builder::new()
            .name("tollgate-store-flush".into())
            .spawn(move || flush_loop(db, dirty))
            .map_err(unavailable)?;
        Ok(store)
    }

    /// Reads one value of `table` inline.
    fn read<T: DeserializeOwned>(&self, table: TableDefinition<&str, &[u8]>, key: &str) -> StoreResult<Option<T>> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let t = txn.open_table(table).map_err(unavailable)?;
        match t.get(key).map_err(unavailable)? {
            Some(v) => decode(key, v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Every (key, value) of `table` whose key starts with `prefix`.
    fn scan<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        prefix: &str,
    ) -> StoreResult<Vec<(String, T)>> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let t = txn.open_table(table).map_err(unavailable)?;
        let mut out = Vec::new();
        for entry in t.range(prefix..).map_err(unavailable)? {
            let (k, v) = entry.map_err(unavailable)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), decode(k.value(), v.value())?));
        }
        Ok(out)
    }

    /// Runs one write transaction on the blocking pool.
    async fn write<R: Send + 'static>(
        &self,
        durable: bool,
        f: impl FnOnce(&redb::WriteTransaction) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        let (db, dirty) = (self.db.clone(), self.dirty.clone());
        tokio::task::spawn_blocking(move || {
            let mut txn = db.begin_write().map_err(unavailable)?;
            if !durable {
                txn.set_durability(Durability::None).map_err(unavailable)?;
            }
            let out = f(&txn)?;
            txn.commit().map_err(unavailable)?;
            if !durable {
                dirty.store(true, Ordering::Release);
            }
            Ok(out)
        })
        .await
        .map_err(unavailable)?
    }

    fn live_session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        Ok(self.read::<Expiring<SessionRecord>>(SESSIONS, id)?.filter(|e| e.expires_ms > now_ms()).map(|e| e.value))
    }

    /// Updates a live session record in place; false if there is none.
    async fn update_session(
        &self,
        id: &str,
        durable: bool,
        f: impl FnOnce(&mut Expiring<SessionRecord>) + Send + 'static,
    ) -> StoreResult<bool> {
        let id = id.to_string();
        self.write(durable, move |txn| {
            let mut t = txn.open_table(SESSIONS).map_err(unavailable)?;
            let current: Option<Expiring<SessionRecord>> = match t.get(id.as_str()).map_err(unavailable)? {
                Some(v) => Some(decode(&id, v.value())?),
                None => None,
            };
            let Some(mut e) = current.filter(|e| e.expires_ms > now_ms()) else { return Ok(false) };
            f(&mut e);
            t.insert(id.as_str(), encode(&e).as_slice()).map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    fn limiter(&self, quota: &RateQuota) -> Arc<DefaultKeyedRateLimiter<String>> {
        let mut limiters = self.limiters.lock().expect("limiters lock");
        limiters
            .entry(*quota)
            .or_insert_with(|| {
                let interval = quota.emission_interval().max(Duration::from_nanos(1));
                let burst = NonZeroU32::new(quota.burst.max(1)).expect("at least one");
                let q = Quota::with_period(interval).expect("non-zero period").allow_burst(burst);
                Arc::new(RateLimiter::keyed(q))
            })
            .clone()
    }
}

/// A durable (empty) commit makes the earlier non-durable ones durable too.
fn durable_commit(db: &Database) -> Result<(), redb::Error> {
    db.begin_write()?.commit()?;
    Ok(())
}

/// Runs until the store is dropped.
fn flush_loop(db: Weak<Database>, dirty: Arc<AtomicBool>) {
    loop {
        std::thread::sleep(FLUSH_EVERY);
        let Some(db) = db.upgrade() else { return };
        if dirty.swap(false, Ordering::AcqRel)
            && let Err(e) = durable_commit(&db)
        {
            dirty.store(true, Ordering::Release);
            tracing::warn!(error = %e, "could not flush the embedded store");
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for EmbeddedStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.begin_read().map(|_| ()).map_err(unavailable)
    }

    async fn flush(&self) -> StoreResult<()> {
        if self.dirty.swap(false, Ordering::AcqRel) {
            let db = self.db.clone();
            tokio::task::spawn_blocking(move || durable_commit(&db))
                .await
                .map_err(unavailable)?
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn put_session(&self, record: &SessionRecord, ttl: Duration) -> StoreResult<()> {
        let id = record.id.clone();
        let mut record = record.clone();
        let expires_ms = now_ms() + ttl.as_millis() as u64;
        self.write(true, move |txn| {
            let mut t = txn.open_table(SESSIONS).map_err(unavailable)?;
            let existing: Option<Expiring<SessionRecord>> = match t.get(id.as_str()).map_err(unavailable)? {
                Some(v) => Some(decode(&id, v.value())?),
                None => None,
            };
            if let Some(e) = existing.filter(|e| e.expires_ms > now_ms()) {
                record.usage = e.value.usage;
            }
            t.insert(id.as_str(), encode(&Expiring { expires_ms, value: record }).as_slice()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn get_session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        self.live_session(id)
    }

    async fn session_state(&self, id: &str) -> StoreResult<Option<SessionState>> {
        Ok(self.live_session(id)?.map(|r| r.state))
    }

    async fn set_session_state(&self, id: &str, state: SessionState) -> StoreResult<bool> {
        self.update_session(id, true, move |e| e.value.state = state).await
    }

    async fn touch_session(&self, id: &str, ttl: Duration) -> StoreResult<()> {
        let now = now_ms();
        let expires_ms = now + ttl.as_millis() as u64;
        self.update_session(id, false, move |e| {
            e.value.last_seen_ms = now;
            e.expires_ms = expires_ms;
        })
        .await?;
        let id = id.to_string();
        self.write(false, move |txn| {
            let mut t = txn.open_table(HISTORY).map_err(unavailable)?;
            let current: Option<Expiring<Vec<CallSummary>>> = match t.get(id.as_str()).map_err(unavailable)? {
                Some(v) => Some(decode(&id, v.value())?),
                None => None,
            };
            if let Some(mut h) = current {
                h.expires_ms = expires_ms;
                t.insert(id.as_str(), encode(&h).as_slice()).map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    async fn add_usage(&self, id: &str, delta: &Usage) -> StoreResult<()> {
        let delta = *delta;
        self.update_session(id, false, move |e| e.value.usage.add(&delta)).await.map(|_| ())
    }

    async fn delete_session(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.write(true, move |txn| {
            txn.open_table(SESSIONS).map_err(unavailable)?.remove(id.as_str()).map_err(unavailable)?;
            txn.open_table(HISTORY).map_err(unavailable)?.remove(id.as_str()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
        let now = now_ms();
        let all: Vec<(String, Expiring<SessionRecord>)> = self.scan(SESSIONS, "")?;
        let (live, expired): (Vec<_>, Vec<_>) = all.into_iter().partition(|(_, e)| e.expires_ms > now);
        if !expired.is_empty() {
            // Sweep what expired, so the file does not grow without bound.
            let keys: Vec<String> = expired.into_iter().map(|(k, _)| k).collect();
            self.write(false, move |txn| {
                let mut s = txn.open_table(SESSIONS).map_err(unavailable)?;
                let mut h = txn.open_table(HISTORY).map_err(unavailable)?;
                for k in &keys {
                    s.remove(k.as_str()).map_err(unavailable)?;
                    h.remove(k.as_str()).map_err(unavailable)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(live.into_iter().map(|(_, e)| e.value).collect())
    }

    async fn push_history(&self, id: &str, call: &CallSummary, cap: usize, ttl: Duration) -> StoreResult<()> {
        let (id, call) = (id.to_string(), call.clone());
        let expires_ms = now_ms() + ttl.as_millis() as u64;
        self.write(false, move |txn| {
            let mut t = txn.open_table(HISTORY).map_err(unavailable)?;
            let mut calls: Vec<CallSummary> = match t.get(id.as_str()).map_err(unavailable)? {
                Some(v) => {
                    let e: Expiring<Vec<CallSummary>> = decode(&id, v.value())?;
                    if e.expires_ms > now_ms() { e.value } else { Vec::new() }
                }
                None => Vec::new(),
            };
            calls.insert(0, call);
            calls.truncate(cap);
            t.insert(id.as_str(), encode(&Expiring { expires_ms, value: calls }).as_slice()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn history(&self, id: &str, limit: usize) -> StoreResult<Vec<CallSummary>> {
        let mut calls = self
            .read::<Expiring<Vec<CallSummary>>>(HISTORY, id)?
            .filter(|e| e.expires_ms > now_ms())
            .map(|e| e.value)
            .unwrap_or_default();
        calls.truncate(limit);
        Ok(calls)
    }

    async fn put_approval(&self, approval: &ApprovalRecord) -> StoreResult<()> {
        let approval = approval.clone();
        self.write(true, move |txn| {
            let mut t = txn.open_table(APPROVALS).map_err(unavailable)?;
            t.insert(approval.id.as_str(), encode(&approval).as_slice()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn get_approval(&self, id: &str) -> StoreResult<Option<ApprovalRecord>> {
        self.read(APPROVALS, id)
    }

    async fn pending_approvals(&self) -> StoreResult<Vec<ApprovalRecord>> {
        let now = now_ms();
        let all: Vec<(String, ApprovalRecord)> = self.scan(APPROVALS, "")?;
        Ok(all.into_iter().map(|(_, a)| a).filter(|a| a.decision.is_none() && a.expires_ms > now).collect())
    }

    async fn decide_approval(&self, id: &str, decision: &ApprovalDecision) -> StoreResult<DecideOutcome> {
        let (id, decision) = (id.to_string(), decision.clone());
        // One write transaction at a time: the check and the update cannot interleave.
        self.write(true, move |txn| {
            let mut t = txn.open_table(APPROVALS).map_err(unavailable)?;
            let current: Option<ApprovalRecord> = match t.get(id.as_str()).map_err(unavailable)? {
                Some(v) => Some(decode(&id, v.value())?),
                None => None,
            };
            let Some(mut approval) = current else { return Ok(DecideOutcome::NotFound) };
            // A timeout may still be recorded after expiry (it is what expiry means).
            let expired = approval.expires_ms <= now_ms() && decision.by != "timeout";
            if approval.decision.is_some() || expired {
                return Ok(DecideOutcome::AlreadyDecided(approval));
            }
            approval.decision = Some(decision);
            t.insert(id.as_str(), encode(&approval).as_slice()).map_err(unavailable)?;
            Ok(DecideOutcome::Decided(approval))
        })
        .await
    }

    async fn use_nonce(&self, nonce: &str, ttl: Duration) -> StoreResult<bool> {
        let now = Instant::now();
        let mut nonces = self.nonces.lock().expect("nonces lock");
        nonces.retain(|_, until| *until > now);
        if nonces.contains_key(nonce) {
            return Ok(false);
        }
        nonces.insert(nonce.to_string(), now + ttl);
        Ok(true)
    }

    async fn get_pin(&self, upstream: &str, tool: &str) -> StoreResult<Option<String>> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let t = txn.open_table(PINS).map_err(unavailable)?;
        Ok(t.get(pair(upstream, tool).as_str()).map_err(unavailable)?.map(|v| v.value().to_string()))
    }

    async fn pin_if_absent(&self, upstream: &str, tool: &str, digest: &str) -> StoreResult<String> {
        let (key, digest) = (pair(upstream, tool), digest.to_string());
        self.write(true, move |txn| {
            let mut t = txn.open_table(PINS).map_err(unavailable)?;
            let existing = t.get(key.as_str()).map_err(unavailable)?.map(|v| v.value().to_string());
            match existing {
                Some(pinned) => Ok(pinned),
                None => {
                    t.insert(key.as_str(), digest.as_str()).map_err(unavailable)?;
                    Ok(digest)
                }
            }
        })
        .await
    }

    async fn set_pin(&self, upstream: &str, tool: &str, digest: &str) -> StoreResult<()> {
        let (key, digest) = (pair(upstream, tool), digest.to_string());
        self.write(true, move |txn| {
            txn.open_table(PINS).map_err(unavailable)?.insert(key.as_str(), digest.as_str()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn list_pins(&self) -> StoreResult<Vec<(String, String, String)>> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let t = txn.open_table(PINS).map_err(unavailable)?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(unavailable)? {
            let (k, v) = entry.map_err(unavailable)?;
            if let Some((u, tool)) = k.value().split_once('\0') {
                out.push((u.to_string(), tool.to_string(), v.value().to_string()));
            }
        }
        Ok(out)
    }

    async fn rate_check(&self, key: &str, quota: &RateQuota) -> StoreResult<RateVerdict> {
        let limiter = self.limiter(quota);
        Ok(match limiter.check_key(&key.to_string()) {
            Ok(()) => RateVerdict::Allowed,
            Err(not_until) => {
                RateVerdict::Limited { retry_after: not_until.wait_time_from(DefaultClock::default().now()) }
            }
        })
    }

    async fn memory_put(&self, principal: &str, key: &str, value: &str) -> StoreResult<()> {
        let (k, v) = (pair(principal, key), value.to_string());
        self.write(true, move |txn| {
            txn.open_table(MEMORY).map_err(unavailable)?.insert(k.as_str(), v.as_str()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn memory_get(&self, principal: &str, key: &str) -> StoreResult<Option<String>> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let t = txn.open_table(MEMORY).map_err(unavailable)?;
        Ok(t.get(pair(principal, key).as_str()).map_err(unavailable)?.map(|v| v.value().to_string()))
    }

    async fn memory_list(&self, principal: &str, prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let t = txn.open_table(MEMORY).map_err(unavailable)?;
        let start = pair(principal, prefix);
        let own = pair(principal, "");
        let mut out = Vec::new();
        for entry in t.range(start.as_str()..).map_err(unavailable)? {
            let (k, _) = entry.map_err(unavailable)?;
            let Some(key) = k.value().strip_prefix(own.as_str()) else { break };
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push(key.to_string());
        }
        Ok(out)
    }

    async fn memory_delete(&self, principal: &str, key: &str) -> StoreResult<bool> {
        let k = pair(principal, key);
        self.write(true, move |txn| {
            let mut t = txn.open_table(MEMORY).map_err(unavailable)?;
            let removed = t.remove(k.as_str()).map_err(unavailable)?.is_some();
            Ok(removed)
        })
        .await
    }
}
