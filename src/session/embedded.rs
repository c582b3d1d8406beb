//! The embedded session store: one redb database (a file, or memory) for single-process, zero-setup runs.
//!
//! Expiry is data: every expiring value carries its `expires_ms`, reads treat a passed expiry as
//! absent, and [`EmbeddedStore::sweep`] deletes what has expired (lazily from `list_sessions`, and
//! periodically once [`EmbeddedStore::spawn_sweeper`] runs).
//!
//! Blocking: point reads run synchronously on the calling task. redb readers are MVCC snapshots
//! that never wait for the writer, and a `session_state` read measured about 1 µs in a release build
//! (10 µs in a debug one; `hot_path_timings` in `tests/it/store.rs`), far less than a hop to the
//! blocking pool costs.
//! Writes and whole-table scans go through `spawn_blocking`: a durable commit waits for fsync.
//!
//! Durability: decisions (approvals, nonces, pins, memory, creating, steering and deleting
//! sessions) commit durably before they return. Per-call bookkeeping (usage, history, touch)
//! commits without fsync, with a durable commit at least every [`RELAXED_FLUSH`] and when the
//! store is dropped, so a crash loses at most about a second of counters and history.
//!
//! Rate limits live in process memory (governor): redb locks the file to one process, so there is
//! nobody to share them with.

use super::store::{
    ApprovalDecision, ApprovalRecord, CallSummary, DecideOutcome, RateQuota, RateVerdict, SessionRecord, SessionState,
    SessionStore, StoreError, StoreResult, Usage, now_ms,
};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use redb::{
    Database, DatabaseError, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Session id → JSON [`Expiring`]`<SessionRecord>` (its `state` field is superseded by [`STATES`]).
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// Session id → (expires_ms, state code): the hot-path read, kept apart so it decodes without JSON.
const STATES: TableDefinition<&str, (u64, u8)> = TableDefinition::new("session_states");
/// Session id → JSON [`Expiring`]`<Vec<CallSummary>>`, newest first.
const HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("history");
/// Approval id → JSON [`ApprovalRecord`]; kept until `expires_ms + APPROVAL_RETENTION`.
const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("approvals");
/// Nonce → expires_ms.
const NONCES: TableDefinition<&str, u64> = TableDefinition::new("nonces");
/// (upstream, tool) → digest.
const PINS: TableDefinition<(&str, &str), &str> = TableDefinition::new("pins");
/// (principal, key) → value.
const MEMORY: TableDefinition<(&str, &str), &str> = TableDefinition::new("memory");

/// How long an approval stays readable after it expires (or was decided), so a late decider is
/// told "already decided / expired" rather than "not found". Same as the Redis store.
pub const APPROVAL_RETENTION: Duration = Duration::from_secs(3600);

/// The longest a relaxed (non-fsynced) commit stays the newest one.
pub const RELAXED_FLUSH: Duration = Duration::from_secs(1);

/// redb's page cache; the whole session database normally fits.
const CACHE_BYTES: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
struct Expiring<T> {
    expires_ms: u64,
    value: T,
}

/// Just the expiry of an [`Expiring`] value, for sweeping without decoding the rest.
#[derive(Deserialize)]
struct ExpiryOnly {
    expires_ms: u64,
}

type Limiter = DefaultKeyedRateLimiter<String>;

pub struct EmbeddedStore {
    db: Arc<Db>,
    /// The file, or "memory": for messages.
    location: String,
    /// One keyed limiter per distinct quota.
    limiters: Mutex<HashMap<RateQuota, Arc<Limiter>>>,
}

/// The database plus what its commits need to know.
struct Db {
    db: Database,
    /// Serialises commits with the bookkeeping below (redb serialises write transactions anyway).
    writes: Mutex<WriteClock>,
}

#[derive(Default)]
struct WriteClock {
    last_durable_ms: u64,
    /// A relaxed commit happened since the last durable one.
    dirty: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Commit {
    /// fsync before returning.
    Durable,
    /// No fsync unless the last durable commit is older than [`RELAXED_FLUSH`].
    Relaxed,
}

impl EmbeddedStore {
    /// Opens (or creates) the database file at `path`, creating its parent directories.
    pub fn open(path: &Path) -> Result<Arc<EmbeddedStore>, StoreError> {
        let shown = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create the directory of the session store {shown}: {e}"))
            })?;
        }
        // Checking integrity on open costs one read of the (small) file; without it a damaged file
        // may panic inside redb instead of failing to open.
        let mut builder = Database::builder();
        builder.set_cache_size(CACHE_BYTES).set_check_integrity_on_open(true);
        let db = builder.create(path).map_err(|e| open_error(&shown, e))?;
        Self::from_database(db, shown)
    }

    /// A database in memory: nothing survives the process.
    pub fn in_memory() -> Result<Arc<EmbeddedStore>, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::Unavailable(format!("cannot create the in-memory session store: {e}")))?;
        Self::from_database(db, "memory".into())
    }

    fn from_database(db: Database, location: String) -> Result<Arc<EmbeddedStore>, StoreError> {
        let db = Db { db, writes: Mutex::new(WriteClock::default()) };
        // Read transactions cannot create tables, so every table exists from the start.
        db.write(Commit::Durable, |txn| {
            txn.open_table(SESSIONS).map_err(db_err)?;
            txn.open_table(STATES).map_err(db_err)?;
            txn.open_table(HISTORY).map_err(db_err)?;
            txn.open_table(APPROVALS).map_err(db_err)?;
            txn.open_table(NONCES).map_err(db_err)?;
            txn.open_table(PINS).map_err(db_err)?;
            txn.open_table(MEMORY).map_err(db_err)?;
            Ok(())
        })
        .map_err(|e| match e {
            StoreError::Unavailable(reason) => {
                StoreError::Unavailable(format!("cannot prepare the session store {location}: {reason}"))
            }
            e => e,
        })?;
        Ok(Arc::new(EmbeddedStore { db: Arc::new(db), location, limiters: Mutex::new(HashMap::new()) }))
    }

    /// Where the data lives: a path, or "memory".
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Deletes every expired entry (and forgets idle rate-limit keys); returns how many entries went.
    pub async fn sweep(&self) -> StoreResult<usize> {
        let removed = self
            .blocking(Commit::Durable, |txn| {
                let now = now_ms();
                let mut removed = 0;
                let live_json = |v: &[u8]| serde_json::from_slice::<ExpiryOnly>(v).map_or(true, |e| e.expires_ms > now);
                txn.open_table(SESSIONS)
                    .map_err(db_err)?
                    .retain(|_, v| keep(live_json(v), &mut removed))
                    .map_err(db_err)?;
                txn.open_table(STATES)
                    .map_err(db_err)?
                    .retain(|_, (expires, _)| keep(expires > now, &mut removed))
                    .map_err(db_err)?;
                txn.open_table(HISTORY)
                    .map_err(db_err)?
                    .retain(|_, v| keep(live_json(v), &mut removed))
                    .map_err(db_err)?;
                let retention = APPROVAL_RETENTION.as_millis() as u64;
                txn.open_table(APPROVALS)
                    .map_err(db_err)?
                    .retain(|_, v| {
                        let live = serde_json::from_slice::<ApprovalExpiry>(v)
                            .map_or(true, |a| a.expires_ms.saturating_add(retention) > now);
                        keep(live, &mut removed)
                    })
                    .map_err(db_err)?;
                txn.open_table(NONCES)
                    .map_err(db_err)?
                    .retain(|_, expires| keep(expires > now, &mut removed))
                    .map_err(db_err)?;
                Ok(removed)
            })
            .await?;
        for limiter in self.limiters.lock().map_err(poisoned)?.values() {
            limiter.retain_recent();
        }
        Ok(removed)
    }

    /// Makes every commit so far durable (relaxed ones included): for shutdown.
    pub async fn flush(&self) -> StoreResult<()> {
        self.blocking(Commit::Durable, |_| Ok(())).await
    }

    /// Sweeps every `every` until the store is dropped (holds only a weak reference).
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(store) = weak.upgrade() else { return };
                if let Err(e) = store.sweep().await {
                    tracing::warn!(store = %store.location, error = %e, "session store sweep failed");
                }
            }
        })
    }

    /// Runs a write transaction on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        commit: Commit,
        f: impl FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.write(commit, f))
            .await
            .map_err(|e| StoreError::Unavailable(format!("embedded store task failed: {e}")))?
    }

    /// Runs a read transaction on the blocking pool (for scans of whole tables).
    async fn blocking_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.read(f))
            .await
            .map_err(|e| StoreError::Unavailable(format!("embedded store task failed: {e}")))?
    }

    fn limiter(&self, quota: &RateQuota) -> StoreResult<Option<Arc<Limiter>>> {
        // A zero emission interval means no limit at all; governor cannot express it.
        let Some(base) = Quota::with_period(quota.emission_interval()) else { return Ok(None) };
        let mut limiters = self.limiters.lock().map_err(poisoned)?;
        let limiter = limiters.entry(*quota).or_insert_with(|| {
            let burst = NonZeroU32::new(quota.burst).unwrap_or(NonZeroU32::MIN);
            Arc::new(Limiter::keyed(base.allow_burst(burst)))
        });
        Ok(Some(limiter.clone()))
    }
}

impl Db {
    fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> StoreResult<T>) -> StoreResult<T> {
        let txn = self.db.begin_read().map_err(db_err)?;
        f(&txn)
    }

    fn write<T>(&self, commit: Commit, f: impl FnOnce(&WriteTransaction) -> StoreResult<T>) -> StoreResult<T> {
        let mut clock = self.writes.lock().map_err(poisoned)?;
        let now = now_ms();
        let durable =
            commit == Commit::Durable || now.saturating_sub(clock.last_durable_ms) >= RELAXED_FLUSH.as_millis() as u64;
        let mut txn = self.db.begin_write().map_err(db_err)?;
        if !durable {
            txn.set_durability(Durability::None).map_err(db_err)?;
        }
        // On an error the transaction is dropped, which aborts it.
        let out = f(&txn)?;
        txn.commit().map_err(db_err)?;
        if durable {
            clock.last_durable_ms = now;
            clock.dirty = false;
        } else {
            clock.dirty = true;
        }
        Ok(out)
    }
}

impl Drop for Db {
    /// Makes the relaxed commits since the last durable one durable (an empty durable commit
    /// persists everything before it).
    fn drop(&mut self) {
        let dirty = self.writes.lock().map(|c| c.dirty).unwrap_or(true);
        if dirty && let Err(e) = self.write(Commit::Durable, |_| Ok(())) {
            tracing::warn!(error = %e, "session store: final commit failed; the last second of usage may be lost");
        }
    }
}

fn open_error(shown: &str, e: DatabaseError) -> StoreError {
    match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
            "the session store {shown} is already open in another process (the embedded store serves one \
             process; use Redis to share sessions between replicas)"
        )),
        e => StoreError::Unavailable(format!("cannot open the session store {shown}: {e}")),
    }
}

fn keep(live: bool, removed: &mut usize) -> bool {
    if !live {
        *removed += 1;
    }
    live
}

#[derive(Deserialize)]
struct ApprovalExpiry {
    expires_ms: u64,
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {}", e.into()))
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> StoreError {
    StoreError::Unavailable("embedded store: a lock was poisoned by an earlier panic".into())
}

/// The first characters of an id, for error messages (session ids are bearer credentials).
fn short(id: &str) -> String {
    match id.char_indices().nth(8) {
        Some((i, _)) => format!("{}…", &id[..i]),
        None => id.to_string(),
    }
}

fn decode<T: DeserializeOwned>(table: &str, id: &str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt { key: format!("{table}/{}", short(id)), reason: e.to_string() })
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    // Serialising our own plain structs cannot fail; a failure would be a bug, reported, not a panic.
    serde_json::to_vec(value).map_err(|e| StoreError::Unavailable(format!("embedded store: cannot encode: {e}")))
}

fn state_code(state: SessionState) -> u8 {
    match state {
        SessionState::Active => 0,
        SessionState::Paused => 1,
        SessionState::Stopped => 2,
    }
}

fn state_from_code(id: &str, code: u8) -> StoreResult<SessionState> {
    match code {
        0 => Ok(SessionState::Active),
        1 => Ok(SessionState::Paused),
        2 => Ok(SessionState::Stopped),
        other => Err(StoreError::Corrupt {
            key: format!("session_states/{}", short(id)),
            reason: format!("unknown state code {other}"),
        }),
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

/// A live session record read inside a write transaction.
fn live_session(table: &redb::Table<&str, &[u8]>, id: &str, now: u64) -> StoreResult<Option<Expiring<SessionRecord>>> {
    let Some(raw) = table.get(id).map_err(db_err)? else { return Ok(None) };
    let stored: Expiring<SessionRecord> = decode("sessions", id, raw.value())?;
    Ok((stored.expires_ms > now).then_some(stored))
}

/// Moves the expiry of a live history entry.
fn extend_history(txn: &WriteTransaction, id: &str, now: u64, expires_ms: u64) -> StoreResult<()> {
    let mut history = txn.open_table(HISTORY).map_err(db_err)?;
    let current = match history.get(id).map_err(db_err)? {
        Some(raw) => Some(decode::<Expiring<Vec<CallSummary>>>("history", id, raw.value())?),
        None => None,
    };
    if let Some(mut h) = current.filter(|h| h.expires_ms > now) {
        h.expires_ms = expires_ms;
        history.insert(id, encode(&h)?.as_slice()).map_err(db_err)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl SessionStore for EmbeddedStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.read(|_| Ok(()))
    }

    async fn flush(&self) -> StoreResult<()> {
        EmbeddedStore::flush(self).await
    }

    async fn put_session(&self, record: &SessionRecord, ttl: Duration) -> StoreResult<()> {
        let mut record = record.clone();
        let ttl = ttl_ms(ttl);
        self.blocking(Commit::Durable, move |txn| {
            let now = now_ms();
            let expires_ms = now.saturating_add(ttl);
            let id = record.id.clone();
            let mut sessions = txn.open_table(SESSIONS).map_err(db_err)?;
            // The stored usage wins over the caller's copy; an unreadable old record is replaced.
            if let Ok(Some(old)) = live_session(&sessions, &id, now) {
                record.usage = old.value.usage;
            }
            let state = record.state;
            sessions
                .insert(id.as_str(), encode(&Expiring { expires_ms, value: record })?.as_slice())
                .map_err(db_err)?;
            txn.open_table(STATES)
                .map_err(db_err)?
                .insert(id.as_str(), (expires_ms, state_code(state)))
                .map_err(db_err)?;
            extend_history(txn, &id, now, expires_ms)
        })
        .await
    }

    async fn get_session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        self.db.read(|txn| {
            let now = now_ms();
            let sessions = txn.open_table(SESSIONS).map_err(db_err)?;
            let Some(raw) = sessions.get(id).map_err(db_err)? else { return Ok(None) };
            let stored: Expiring<SessionRecord> = decode("sessions", id, raw.value())?;
            if stored.expires_ms <= now {
                return Ok(None);
            }
            let mut record = stored.value;
            if let Some(state) = txn.open_table(STATES).map_err(db_err)?.get(id).map_err(db_err)? {
                record.state = state_from_code(id, state.value().1)?;
            }
            Ok(Some(record))
        })
    }

    async fn session_state(&self, id: &str) -> StoreResult<Option<SessionState>> {
        self.db.read(|txn| {
            let states = txn.open_table(STATES).map_err(db_err)?;
            let Some(entry) = states.get(id).map_err(db_err)? else { return Ok(None) };
            let (expires_ms, code) = entry.value();
            if expires_ms <= now_ms() {
                return Ok(None);
            }
            state_from_code(id, code).map(Some)
        })
    }

    async fn set_session_state(&self, id: &str, state: SessionState) -> StoreResult<bool> {
        let id = id.to_string();
        self.blocking(Commit::Durable, move |txn| {
            let mut states = txn.open_table(STATES).map_err(db_err)?;
            let expires_ms = match states.get(id.as_str()).map_err(db_err)? {
                Some(entry) => entry.value().0,
                None => return Ok(false),
            };
            if expires_ms <= now_ms() {
                return Ok(false);
            }
            states.insert(id.as_str(), (expires_ms, state_code(state))).map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn touch_session(&self, id: &str, ttl: Duration) -> StoreResult<()> {
        let id = id.to_string();
        let ttl = ttl_ms(ttl);
        self.blocking(Commit::Relaxed, move |txn| {
            let now = now_ms();
            let expires_ms = now.saturating_add(ttl);
            let mut sessions = txn.open_table(SESSIONS).map_err(db_err)?;
            let Some(mut stored) = live_session(&sessions, &id, now)? else { return Ok(()) };
            stored.expires_ms = expires_ms;
            stored.value.last_seen_ms = now;
            sessions.insert(id.as_str(), encode(&stored)?.as_slice()).map_err(db_err)?;
            let mut states = txn.open_table(STATES).map_err(db_err)?;
            let code = match states.get(id.as_str()).map_err(db_err)? {
                Some(entry) => entry.value().1,
                None => state_code(stored.value.state),
            };
            states.insert(id.as_str(), (expires_ms, code)).map_err(db_err)?;
            extend_history(txn, &id, now, expires_ms)
        })
        .await
    }

    async fn add_usage(&self, id: &str, delta: &Usage) -> StoreResult<()> {
        let id = id.to_string();
        let delta = *delta;
        // A missing (or expired) session has no usage to add to: ignored, as in Redis.
        self.blocking(Commit::Relaxed, move |txn| {
            let mut sessions = txn.open_table(SESSIONS).map_err(db_err)?;
            let Some(mut stored) = live_session(&sessions, &id, now_ms())? else { return Ok(()) };
            stored.value.usage.add(&delta);
            sessions.insert(id.as_str(), encode(&stored)?.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_session(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.blocking(Commit::Durable, move |txn| {
            txn.open_table(SESSIONS).map_err(db_err)?.remove(id.as_str()).map_err(db_err)?;
            txn.open_table(STATES).map_err(db_err)?.remove(id.as_str()).map_err(db_err)?;
            txn.open_table(HISTORY).map_err(db_err)?.remove(id.as_str()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
        self.sweep().await?;
        let mut out = self
            .blocking_read(|txn| {
                let now = now_ms();
                let states = txn.open_table(STATES).map_err(db_err)?;
                let mut out = Vec::new();
                for entry in txn.open_table(SESSIONS).map_err(db_err)?.iter().map_err(db_err)? {
                    let (k, v) = entry.map_err(db_err)?;
                    let id = k.value();
                    let stored: Expiring<SessionRecord> = decode("sessions", id, v.value())?;
                    if stored.expires_ms <= now {
                        continue;
                    }
                    let mut record = stored.value;
                    if let Some(state) = states.get(id).map_err(db_err)? {
                        record.state = state_from_code(id, state.value().1)?;
                    }
                    out.push(record);
                }
                Ok(out)
            })
            .await?;
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    async fn push_history(&self, id: &str, calls: &[CallSummary], cap: usize, ttl: Duration) -> StoreResult<()> {
        if cap > 0 && calls.is_empty() {
            return Ok(());
        }
        let id = id.to_string();
        // Newest first, and only as many as can survive the cap.
        let newest: Vec<CallSummary> = calls.iter().rev().take(cap).cloned().collect();
        let ttl = ttl_ms(ttl);
        self.blocking(Commit::Relaxed, move |txn| {
            let now = now_ms();
            let mut history = txn.open_table(HISTORY).map_err(db_err)?;
            if cap == 0 {
                history.remove(id.as_str()).map_err(db_err)?;
                return Ok(());
            }
            let older = match history.get(id.as_str()).map_err(db_err)? {
                Some(raw) => {
                    // An unreadable history is replaced rather than blocking every later call.
                    match serde_json::from_slice::<Expiring<Vec<CallSummary>>>(raw.value()) {
                        Ok(h) if h.expires_ms > now => h.value,
                        _ => Vec::new(),
                    }
                }
                None => Vec::new(),
            };
            let mut calls = newest;
            calls.extend(older.into_iter().take(cap.saturating_sub(calls.len())));
            let value = encode(&Expiring { expires_ms: now.saturating_add(ttl), value: calls })?;
            history.insert(id.as_str(), value.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn history(&self, id: &str, limit: usize) -> StoreResult<Vec<CallSummary>> {
        self.db.read(|txn| {
            let history = txn.open_table(HISTORY).map_err(db_err)?;
            let Some(raw) = history.get(id).map_err(db_err)? else { return Ok(Vec::new()) };
            let stored: Expiring<Vec<CallSummary>> = decode("history", id, raw.value())?;
            if stored.expires_ms <= now_ms() {
                return Ok(Vec::new());
            }
            let mut calls = stored.value;
            calls.truncate(limit);
            Ok(calls)
        })
    }

    async fn put_approval(&self, approval: &ApprovalRecord) -> StoreResult<()> {
        let approval = approval.clone();
        self.blocking(Commit::Durable, move |txn| {
            let value = encode(&approval)?;
            txn.open_table(APPROVALS)
                .map_err(db_err)?
                .insert(approval.id.as_str(), value.as_slice())
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn get_approval(&self, id: &str) -> StoreResult<Option<ApprovalRecord>> {
        self.db.read(|txn| {
            let approvals = txn.open_table(APPROVALS).map_err(db_err)?;
            let Some(raw) = approvals.get(id).map_err(db_err)? else { return Ok(None) };
            let approval: ApprovalRecord = decode("approvals", id, raw.value())?;
            Ok(retained(&approval, now_ms()).then_some(approval))
        })
    }

    async fn pending_approvals(&self) -> StoreResult<Vec<ApprovalRecord>> {
        let mut out = self
            .blocking_read(|txn| {
                let now = now_ms();
                let mut out = Vec::new();
                for entry in txn.open_table(APPROVALS).map_err(db_err)?.iter().map_err(db_err)? {
                    let (k, v) = entry.map_err(db_err)?;
                    let approval: ApprovalRecord = decode("approvals", k.value(), v.value())?;
                    if approval.decision.is_none() && approval.expires_ms > now {
                        out.push(approval);
                    }
                }
                Ok(out)
            })
            .await?;
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    async fn decide_approval(&self, id: &str, decision: &ApprovalDecision) -> StoreResult<DecideOutcome> {
        let id = id.to_string();
        let decision = decision.clone();
        // One write transaction at a time: the check and the update cannot interleave with another decider's.
        self.blocking(Commit::Durable, move |txn| {
            let now = now_ms();
            let mut approvals = txn.open_table(APPROVALS).map_err(db_err)?;
            let mut approval: ApprovalRecord = match approvals.get(id.as_str()).map_err(db_err)? {
                Some(raw) => decode("approvals", &id, raw.value())?,
                None => return Ok(DecideOutcome::NotFound),
            };
            if !retained(&approval, now) {
                return Ok(DecideOutcome::NotFound);
            }
            if approval.decision.is_some() || approval.expires_ms <= now {
                return Ok(DecideOutcome::AlreadyDecided(approval));
            }
            approval.decision = Some(decision);
            approvals.insert(id.as_str(), encode(&approval)?.as_slice()).map_err(db_err)?;
            Ok(DecideOutcome::Decided(approval))
        })
        .await
    }

    async fn use_nonce(&self, nonce: &str, ttl: Duration) -> StoreResult<bool> {
        let nonce = nonce.to_string();
        let ttl = ttl_ms(ttl);
        self.blocking(Commit::Durable, move |txn| {
            let now = now_ms();
            let mut nonces = txn.open_table(NONCES).map_err(db_err)?;
            let seen = nonces.get(nonce.as_str()).map_err(db_err)?.is_some_and(|e| e.value() > now);
            if seen {
                return Ok(false);
            }
            nonces.insert(nonce.as_str(), now.saturating_add(ttl)).map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn get_pin(&self, upstream: &str, tool: &str) -> StoreResult<Option<String>> {
        self.db.read(|txn| {
            let pins = txn.open_table(PINS).map_err(db_err)?;
            Ok(pins.get((upstream, tool)).map_err(db_err)?.map(|d| d.value().to_string()))
        })
    }

    async fn pin_if_absent(&self, upstream: &str, tool: &str, digest: &str) -> StoreResult<String> {
        let (upstream, tool, digest) = (upstream.to_string(), tool.to_string(), digest.to_string());
        self.blocking(Commit::Durable, move |txn| {
            let mut pins = txn.open_table(PINS).map_err(db_err)?;
            let key = (upstream.as_str(), tool.as_str());
            if let Some(pinned) = pins.get(key).map_err(db_err)?.map(|d| d.value().to_string()) {
                return Ok(pinned);
            }
            pins.insert(key, digest.as_str()).map_err(db_err)?;
            Ok(digest)
        })
        .await
    }

    async fn set_pin(&self, upstream: &str, tool: &str, digest: &str) -> StoreResult<()> {
        let (upstream, tool, digest) = (upstream.to_string(), tool.to_string(), digest.to_string());
        self.blocking(Commit::Durable, move |txn| {
            let mut pins = txn.open_table(PINS).map_err(db_err)?;
            pins.insert((upstream.as_str(), tool.as_str()), digest.as_str()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn list_pins(&self) -> StoreResult<Vec<(String, String, String)>> {
        // Keys are (upstream, tool) tuples, so the table iterates in the promised order.
        self.blocking_read(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(PINS).map_err(db_err)?.iter().map_err(db_err)? {
                let (k, v) = entry.map_err(db_err)?;
                let (upstream, tool) = k.value();
                out.push((upstream.to_string(), tool.to_string(), v.value().to_string()));
            }
            Ok(out)
        })
        .await
    }

    async fn rate_check(&self, key: &str, quota: &RateQuota) -> StoreResult<RateVerdict> {
        let Some(limiter) = self.limiter(quota)? else { return Ok(RateVerdict::Allowed) };
        match limiter.check_key(&key.to_string()) {
            Ok(()) => Ok(RateVerdict::Allowed),
            Err(not_until) => Ok(RateVerdict::Limited { retry_after: not_until.wait_time_from(limiter.clock().now()) }),
        }
    }

    async fn memory_put(&self, principal: &str, key: &str, value: &str) -> StoreResult<()> {
        let (principal, key, value) = (principal.to_string(), key.to_string(), value.to_string());
        self.blocking(Commit::Durable, move |txn| {
            let mut memory = txn.open_table(MEMORY).map_err(db_err)?;
            memory.insert((principal.as_str(), key.as_str()), value.as_str()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn memory_get(&self, principal: &str, key: &str) -> StoreResult<Option<String>> {
        self.db.read(|txn| {
            let memory = txn.open_table(MEMORY).map_err(db_err)?;
            Ok(memory.get((principal, key)).map_err(db_err)?.map(|v| v.value().to_string()))
        })
    }

    async fn memory_list(&self, principal: &str, prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        // Reads at most `limit + 1` entries: synchronous like the other point reads.
        self.db.read(|txn| {
            let memory = txn.open_table(MEMORY).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in memory.range((principal, prefix)..).map_err(db_err)? {
                if out.len() >= limit {
                    break;
                }
                let (k, _) = entry.map_err(db_err)?;
                let (p, key) = k.value();
                if p != principal || !key.starts_with(prefix) {
                    break;
                }
                out.push(key.to_string());
            }
            Ok(out)
        })
    }

    async fn memory_delete(&self, principal: &str, key: &str) -> StoreResult<bool> {
        let (principal, key) = (principal.to_string(), key.to_string());
        self.blocking(Commit::Durable, move |txn| {
            let mut memory = txn.open_table(MEMORY).map_err(db_err)?;
            let existed = memory.remove((principal.as_str(), key.as_str())).map_err(db_err)?.is_some();
            Ok(existed)
        })
        .await
    }
}

/// Still kept (readable): not past its expiry plus the retention.
fn retained(approval: &ApprovalRecord, now: u64) -> bool {
    approval.expires_ms.saturating_add(APPROVAL_RETENTION.as_millis() as u64) > now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreadable_record_is_corrupt_not_a_panic() {
        let store = EmbeddedStore::in_memory().expect("store");
        store
            .blocking(Commit::Durable, |txn| {
                txn.open_table(SESSIONS).map_err(db_err)?.insert("abc", b"{not json".as_slice()).map_err(db_err)?;
                txn.open_table(STATES).map_err(db_err)?.insert("abc", (u64::MAX, 9)).map_err(db_err)?;
                txn.open_table(APPROVALS).map_err(db_err)?.insert("a1", b"[]".as_slice()).map_err(db_err)?;
                Ok(())
            })
            .await
            .expect("write");
        assert!(matches!(store.get_session("abc").await, Err(StoreError::Corrupt { .. })));
        assert!(matches!(store.session_state("abc").await, Err(StoreError::Corrupt { .. })));
        assert!(matches!(store.get_approval("a1").await, Err(StoreError::Corrupt { .. })));
        assert!(matches!(store.pending_approvals().await, Err(StoreError::Corrupt { .. })));
        // A sweep keeps what it cannot read (it is evidence), and does not fail.
        store.sweep().await.expect("sweep");
    }

    #[test]
    fn error_messages_shorten_ids() {
        assert_eq!(short("0123456789abcdef"), "01234567…");
        assert_eq!(short("abc"), "abc");
    }

    #[test]
    fn a_file_that_is_not_a_database_fails_to_open_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("junk.redb");
        std::fs::write(&path, vec![0x5a; 10_000]).expect("write");
        let err = EmbeddedStore::open(&path).err().expect("refused");
        assert!(err.to_string().contains("junk.redb"), "{err}");
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("sessions.redb");
        let _first = EmbeddedStore::open(&path).expect("first open creates the directories");
        let err = EmbeddedStore::open(&path).err().expect("second open refused");
        let text = err.to_string();
        assert!(text.contains("sessions.redb") && text.contains("already open"), "{text}");
    }
}
