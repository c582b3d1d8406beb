//! A session as operators see and steer it: its stored record, pause / resume / stop, and the
//! per-call bookkeeping (usage, recent history) kept in the state store.
//!
//! The store is the source of truth for a session's state, so a pause or stop given to any
//! replica holds on every replica: each tool call reads the state (one small read) before it
//! is admitted. A replica that changed the state itself wakes its held calls at once; others
//! notice within [`POLL`].

use super::Session;
use super::store::{CallSummary, SessionRecord, SessionState, Usage, now_ms};
use crate::error::Error;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often a held call re-reads a state that another replica may change.
const POLL: Duration = Duration::from_millis(200);

/// Estimated tokens for a payload of `bytes` bytes of JSON: about four bytes per token, the
/// usual rule of thumb for English text and JSON under BPE tokenizers.
pub fn estimate_tokens(bytes: usize) -> u64 {
    bytes.div_ceil(4) as u64
}

impl Session {
    /// The record the store keeps for this session (usage is added separately, atomically).
    pub fn record(&self) -> SessionRecord {
        SessionRecord {
            id: self.id.clone(),
            principal: self.principal.clone(),
            client: self.client_hello().as_ref().map(Into::into),
            upstream_sessions: Default::default(),
            state: SessionState::Active,
            usage: Usage::default(),
            created_ms: self.created_ms,
            last_seen_ms: now_ms(),
        }
    }

    /// Writes this session's record (state and usage as stored are kept).
    pub async fn persist(&self) -> Result<(), Error> {
        let store = &self.shared.store;
        let mut record = self.record();
        if let Some(existing) = store.get_session(&self.id).await? {
            record.state = existing.state;
            record.usage = existing.usage;
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

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Counts one finished tool call and adds it to the recent history, off the request path.
    pub fn record_call(&self, summary: CallSummary, bytes_in: usize) {
        let usage = Usage {
            calls: 1,
            denied: u64::from(summary.outcome == "denied"),
            bytes_in: bytes_in as u64,
            bytes_out: summary.bytes_out,
            tokens_in: estimate_tokens(bytes_in),
            tokens_out: estimate_tokens(summary.bytes_out as usize),
        };
        let store = self.shared.store.clone();
        let (id, ttl, cap) = (self.id.clone(), self.shared.session_ttl, self.shared.sessions.history_len);
        tokio::spawn(async move {
            let result = async {
                store.add_usage(&id, &usage).await?;
                store.push_history(&id, &summary, cap, ttl).await
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "could not record a call in the session store");
            }
        });
    }
}
