//! The sessions this process serves, by id. A session this process has not seen (after a
//! restart, or one started on another replica) is restored from the state store on first use.
//!
//! 2026-07-28 clients send no session id: their session is keyed on the principal plus an
//! optional conversation id the client puts in `params._meta` ([`CONVERSATION_META`]), so one
//! principal's conversations are steered and accounted apart, and never mix with another's.
//!
//! At most `max_sessions` sessions live here at once (each may run upstream processes). At the
//! limit a new session takes the place of the longest-idle one with nothing in flight, if that
//! one has been idle for [`EVICTABLE_AFTER`]; otherwise it is refused (503), never queued.

use super::store::SessionState;
use super::{Session, Shared, new_session_id};
use crate::error::Error;
use crate::telemetry::Throttle;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A session idle this long may give its place to a new one when the registry is full: clients
/// rarely end their sessions, and a full registry must not refuse everyone for an hour.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(30);

static FULL: Throttle = Throttle::new();

/// What the ids of stateless (2026-07-28) sessions start with.
pub const STATELESS_PREFIX: &str = "st-";

/// The `_meta` key a 2026-07-28 client may use to keep conversations apart.
pub const CONVERSATION_META: &str = "dev.tollgate/conversationId";

pub struct Registry {
    shared: Arc<Shared>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    max_sessions: usize,
}

impl Registry {
    pub fn new(shared: Arc<Shared>) -> Registry {
        Registry { shared, sessions: Mutex::new(HashMap::new()), max_sessions: usize::MAX }
    }

    /// At most `n` live sessions (`server.max_sessions`).
    pub fn with_max_sessions(mut self, n: usize) -> Registry {
        self.max_sessions = n;
        self
    }

    /// Makes room for one more session: fine below the limit; at it, closes the longest-idle
    /// session with nothing in flight if it has been idle long enough.
    async fn make_room(&self) -> Result<(), Error> {
        let victim = {
            let sessions = self.sessions.lock().expect("sessions lock");
            let live = sessions.values().filter(|s| !s.is_closed()).count();
            if live < self.max_sessions {
                return Ok(());
            }
            sessions
                .values()
                .filter(|s| !s.is_closed() && s.in_flight() == 0 && s.idle_for() >= EVICTABLE_AFTER)
                .max_by_key(|s| s.idle_for())
                .map(|s| s.id.clone())
        };
        match victim {
            Some(id) => {
                tracing::info!(session = %id, "closing the longest-idle session to make room (server.max_sessions)");
                self.remove(&id).await;
                Ok(())
            }
            None => {
                if let Some(n) = FULL.hit() {
                    tracing::warn!(
                        limit = self.max_sessions,
                        count = n,
                        "new session refused: server.max_sessions reached"
                    );
                }
                Err(Error::Overloaded(
                    "too many sessions are active (server.max_sessions); retry shortly or end unused sessions".into(),
                ))
            }
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// A new 2025-11-25 session bound to `principal`; its record is written when `initialize`
    /// succeeds. At `server.max_sessions`, the longest-idle session makes room (or this fails).
    pub async fn create(&self, principal: &str) -> Result<Arc<Session>, Error> {
        self.make_room().await?;
        let session = Session::with_principal(
            self.shared.clone(),
            new_session_id(),
            principal.to_string(),
            super::store::now_ms(),
        );
        self.sessions.lock().expect("sessions lock").insert(session.id.clone(), session.clone());
        Ok(session)
    }

    /// The live session with this id, if this process serves it.
    pub fn local(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().expect("sessions lock").get(id).filter(|s| !s.is_closed()).cloned()
    }

    /// The session with this id for `principal`: live here, or restored from the store. `None`
    /// for unknown, expired and stopped ids, and for an id that belongs to someone else (which
    /// must look exactly like an unknown one).
    pub async fn get(&self, id: &str, principal: &str) -> Result<Option<Arc<Session>>, Error> {
        if let Some(s) = self.local(id) {
            return Ok((s.principal() == principal).then_some(s));
        }
        let Some(record) = self.shared.store.get_session(id).await? else { return Ok(None) };
        if record.state == SessionState::Stopped || record.principal != principal || record.client.is_none() {
            return Ok(None);
        }
        self.make_room().await?;
        tracing::info!(session = %crate::audit::session_handle(id), "session restored from the state store");
        Ok(Some(self.adopt(Session::restore(self.shared.clone(), record))))
    }

    /// Keeps `session` unless another task restored the same id first (then theirs wins).
    fn adopt(&self, session: Arc<Session>) -> Arc<Session> {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        match sessions.get(&session.id).filter(|s| !s.is_closed()) {
            Some(existing) => existing.clone(),
            None => {
                sessions.insert(session.id.clone(), session.clone());
                session
            }
        }
    }

    /// The session of a stateless (2026-07-28) client: one per principal and conversation.
    /// Creating one needs the store (fail closed).
    pub async fn stateless(&self, principal: &str, conversation: Option<&str>) -> Result<Arc<Session>, Error> {
        let id = stateless_id(principal, conversation);
        if let Some(s) = self.local(&id) {
            return Ok(s);
        }
        match self.shared.store.get_session(&id).await? {
            Some(record) if record.state == SessionState::Stopped => Err(Error::SessionStopped),
            Some(record) => {
                self.make_room().await?;
                Ok(self.adopt(Session::restore(self.shared.clone(), record)))
            }
            None => {
                self.make_room().await?;
                let session =
                    Session::with_principal(self.shared.clone(), id, principal.to_string(), super::store::now_ms());
                session.persist().await?;
                Ok(self.adopt(session))
            }
        }
    }

    /// Forgets a session here and ends its upstream connections (the stored record stays
    /// until it expires, so the client can resume elsewhere).
    pub async fn remove(&self, id: &str) -> bool {
        let session = self.sessions.lock().expect("sessions lock").remove(id);
        match session {
            Some(s) => {
                s.close().await;
                true
            }
            None => false,
        }
    }

    /// Ends a session for good (client DELETE): here and in the store.
    pub async fn end(&self, id: &str) -> Result<(), Error> {
        self.remove(id).await;
        self.shared.store.delete_session(id).await?;
        Ok(())
    }

    /// Closes sessions idle for longer than `idle` with nothing in flight.
    pub async fn reap(&self, idle: Duration) {
        let stale: Vec<String> = self
            .sessions
            .lock()
            .expect("sessions lock")
            .iter()
            .filter(|(_, s)| s.is_closed() || (s.idle_for() > idle && s.in_flight() == 0))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            tracing::info!(session = %crate::audit::session_handle(&id), "closing idle session");
            self.remove(&id).await;
        }
    }

    pub fn in_flight(&self) -> usize {
        let sessions: Vec<Arc<Session>> = self.sessions.lock().expect("sessions lock").values().cloned().collect();
        sessions.iter().map(|s| s.in_flight()).sum::<usize>()
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().expect("sessions lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub async fn close_all(&self) {
        let sessions: Vec<Arc<Session>> =
            self.sessions.lock().expect("sessions lock").drain().map(|(_, s)| s).collect();
        futures::future::join_all(sessions.iter().map(|s| s.close())).await;
    }
}

/// A stable session id for a stateless client: a digest, so neither the principal nor the
/// conversation id can be read back from it, and distinct from 2025-11-25 ids (prefix).
pub fn stateless_id(principal: &str, conversation: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(principal.as_bytes());
    h.update([0]);
    h.update(conversation.unwrap_or("").as_bytes());
    format!("{STATELESS_PREFIX}{}", &crate::hex::encode(&h.finalize())[..40])
}
