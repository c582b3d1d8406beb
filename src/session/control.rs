//! A session as operators see and steer it: its stored record, pause / resume / stop, and the
//! per-call bookkeeping (usage, recent history) kept in the state store.
//!
//! The store is the source of truth for a session's state, so a pause or stop given to any
//! replica holds on every replica: each tool call reads the state (one small read) before it
//! is admitted. A replica that changed the state itself wakes its held calls at once; others
//! notice within [`POLL`].

use super::Session;
use super::store::{CallSummary, SessionRecord, SessionState, Taint, Usage, now_ms};
use crate::error::Error;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often a held call re-reads a state that another replica may change.
const POLL: Duration = Duration::from_millis(200);

impl Session {
    /// The record the store keeps for this session (usage is added separately, atomically).
    pub fn record(&self) -> SessionRecord {
        SessionRecord {
            id: self.id.clone(),
            principal: self.principal.clone(),
            client: self.client_hello().as_ref().map(Into::into),
            upstream_sessions: self.upstream_session_ids(),
            state: SessionState::Active,
            usage: Usage::default(),
            created_ms: self.created_ms,
            last_seen_ms: now_ms(),
            taint: self.taint.lock().expect("taint lock").clone(),
        }
    }

    /// Writes this session's record (state and usage as stored are kept).
    pub async fn persist(&self) -> Result<(), Error> {
        let store = &self.shared.store;
        let mut record = self.record();
        if let Some(existing) = store.get_session(&self.id).await? {
            record.state = existing.state;
            record.usage = existing.usage;
            // Taint only ever grows: keep the first, wherever it was recorded.
            record.taint = existing.taint.or(record.taint);
        }
        store.put_session(&record, self.shared.session_ttl).await?;
        Ok(())
    }

    /// Refreshes the stored TTL at most every few seconds, off the request path.
    pub(super) fn touch_store(&self, now: Instant) {
        let every = (self.shared.session_ttl / 20).clamp(Duration::from_millis(500), Duration::from_secs(60));
        {
            let mut last = self.store_touched.lock().expect("store_touched lock");
            if now.duration_since(*last) < every {
                return;
            }
            *last = now;
        }
        let store = self.shared.store.clone();
        let (id, ttl) = (self.id.clone(), self.shared.session_ttl);
        tokio::spawn(async move {
            if let Err(e) = store.touch_session(&id, ttl).await {
                tracing::warn!(error = %e, "could not refresh a session's expiry");
            }
        });
    }

    /// Admits a tool call only while the session is active: a paused session holds it (in
    /// arrival order) until resumed or until `pause_max_wait`; a stopped one refuses it. With
    /// the store down this fails closed.
    pub async fn wait_until_active(&self) -> Result<(), Error> {
        match self.stored_state().await? {
            SessionState::Active => Ok(()),
            SessionState::Stopped => Err(self.stopped_elsewhere()),
            SessionState::Paused => self.hold().await,
        }
    }

    async fn stored_state(&self) -> Result<SessionState, Error> {
        if self.stopped.load(Ordering::Acquire) {
            return Ok(SessionState::Stopped);
        }
        // A session with no record (expired, or a store that was wiped) is served as active:
        // its record is written again on the next persist.
        Ok(self.shared.store.session_state(&self.id).await?.unwrap_or_default())
    }

    async fn hold(&self) -> Result<(), Error> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + self.shared.sessions.pause_max_wait());
        let paused = || Error::SessionPaused { waited: started.elapsed() };
        tracing::info!(session = %self.handle, "call held: session paused");
        // One held call at a time looks at the state; the rest queue behind it (the lock is fair).
        let _turn = tokio::time::timeout_at(deadline, self.pause_queue.lock()).await.map_err(|_| paused())?;
        loop {
            let changed = self.state_changed.notified();
            match self.stored_state().await? {
                SessionState::Active => return Ok(()),
                SessionState::Stopped => return Err(self.stopped_elsewhere()),
                SessionState::Paused => {}
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = tokio::time::sleep_until(deadline) => return Err(paused()),
            }
        }
    }

    /// Another replica (or the store) says stopped: end the local copy too.
    fn stopped_elsewhere(&self) -> Error {
        if !self.stopped.swap(true, Ordering::AcqRel)
            && let Some(me) = self.me.upgrade()
        {
            tokio::spawn(async move { me.close().await });
        }
        Error::SessionStopped
    }

    /// Operator: pause, resume or stop. Stop also cancels in-flight calls and closes upstream
    /// sessions. Returns false if the store does not know the session.
    pub async fn set_state(&self, state: SessionState) -> Result<bool, Error> {
        let known = self.shared.store.set_session_state(&self.id, state).await?;
        if state == SessionState::Stopped {
            self.stopped.store(true, Ordering::Release);
            self.close().await;
        }
        self.state_changed.notify_waiters();
        tracing::info!(session = %self.handle, state = state.as_str(), "session state set by an operator");
        Ok(known)
    }

    /// Records that this session read from an untrusted source (once; kept in the store so
    /// every replica knows).
    pub async fn mark_tainted(&self, taint: Taint) -> Result<(), Error> {
        {
            let mut local = self.taint.lock().expect("taint lock");
            if local.is_some() {
                return Ok(());
            }
            tracing::info!(session = %self.id, upstream = %taint.upstream, tool = %taint.tool, "session tainted by an untrusted source");
            *local = Some(taint);
        }
        self.persist().await
    }

    /// Whether (and by what) this session is tainted: the local mark, else the store's (another
    /// replica may have seen the untrusted read).
    pub async fn taint(&self) -> Result<Option<Taint>, Error> {
        if let Some(t) = self.taint.lock().expect("taint lock").clone() {
            return Ok(Some(t));
        }
        let stored = self.shared.store.get_session(&self.id).await?.and_then(|r| r.taint);
        if let Some(t) = &stored {
            *self.taint.lock().expect("taint lock") = Some(t.clone());
        }
        Ok(stored)
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Counts one finished tool call (its figures come from `crate::cost`, the same ones its
    /// audit record carries) and adds it to the recent history, off the request path: calls are
    /// gathered for [`BOOKKEEPING_EVERY`] and written in one go, so a busy session costs the
    /// store a few writes per interval rather than two per call.
    pub fn record_call(&self, summary: CallSummary) {
        let usage = Usage {
            calls: 1,
            denied: u64::from(summary.outcome == "denied"),
            bytes_in: summary.bytes_in,
            bytes_out: summary.bytes_out,
            tokens_in: summary.tokens_in,
            tokens_out: summary.tokens_out,
            cost_micros: summary.cost_micros,
        };
        let cap = self.shared.sessions.history_len;
        let mut pending = self.bookkeeping.lock().expect("bookkeeping lock");
        pending.usage.add(&usage);
        if cap > 0 {
            if pending.calls.len() >= cap {
                pending.calls.remove(0); // only the newest `cap` can survive the store's cap anyway
            }
            pending.calls.push(summary);
        }
        if pending.scheduled {
            return;
        }
        pending.scheduled = true;
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            tokio::time::sleep(BOOKKEEPING_EVERY).await;
            me.flush_bookkeeping().await;
        });
    }

    /// Writes the gathered usage and history (also when the session closes).
    pub(super) async fn flush_bookkeeping(&self) {
        let (usage, calls) = {
            let mut pending = self.bookkeeping.lock().expect("bookkeeping lock");
            pending.scheduled = false;
            (std::mem::take(&mut pending.usage), std::mem::take(&mut pending.calls))
        };
        if usage == Usage::default() && calls.is_empty() {
            return;
        }
        let store = &self.shared.store;
        let (ttl, cap) = (self.shared.session_ttl, self.shared.sessions.history_len);
        // One write per flush, not one per call: each history write reads and rewrites the
        // whole capped list, so a write per call cost O(calls x cap) in a busy session.
        let result = async {
            store.add_usage(&self.id, &usage).await?;
            if !calls.is_empty() {
                store.push_history(&self.id, &calls, cap, ttl).await?;
            }
            Ok::<(), super::store::StoreError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(session = %self.id, error = %e, calls = usage.calls, "could not record calls in the session store");
        }
    }
}

/// Per-call bookkeeping not yet written to the store.
#[derive(Default)]
pub(super) struct Bookkeeping {
    usage: Usage,
    /// Oldest first.
    calls: Vec<CallSummary>,
    /// A flush is on its way.
    scheduled: bool,
}

/// How long per-call bookkeeping gathers before it is written.
pub const BOOKKEEPING_EVERY: Duration = Duration::from_millis(250);
