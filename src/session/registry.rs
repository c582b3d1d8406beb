//! The live sessions of an HTTP listener, by id, plus the shared session that serves stateless
//! (2026-07-28) clients, which send no session id.

use super::{Session, Shared, new_session_id};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Registry {
    shared: Arc<Shared>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    stateless: Arc<Session>,
}

impl Registry {
    pub fn new(shared: Arc<Shared>) -> Registry {
        let stateless = Session::new(shared.clone(), "stateless".into());
        Registry { shared, sessions: Mutex::new(HashMap::new()), stateless }
    }

    pub fn create(&self) -> Arc<Session> {
        let session = Session::new(self.shared.clone(), new_session_id());
        self.sessions.lock().expect("sessions lock").insert(session.id.clone(), session.clone());
        session
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().expect("sessions lock").get(id).filter(|s| !s.is_closed()).cloned()
    }

    pub fn stateless(&self) -> Arc<Session> {
        self.stateless.clone()
    }

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

    /// Closes sessions idle for longer than `idle` with nothing in flight.
    pub async fn reap(&self, idle: Duration) {
        let stale: Vec<String> = self
            .sessions
            .lock()
            .expect("sessions lock")
            .iter()
            .filter(|(_, s)| s.idle_for() > idle && s.in_flight() == 0)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            tracing::info!(session = %id, "closing idle session");
            self.remove(&id).await;
        }
    }

    pub fn in_flight(&self) -> usize {
        let sessions: Vec<Arc<Session>> = self.sessions.lock().expect("sessions lock").values().cloned().collect();
        sessions.iter().map(|s| s.in_flight()).sum::<usize>() + self.stateless.in_flight()
    }

    pub async fn close_all(&self) {
        let sessions: Vec<Arc<Session>> =
            self.sessions.lock().expect("sessions lock").drain().map(|(_, s)| s).collect();
        futures::future::join_all(sessions.iter().map(|s| s.close())).await;
        self.stateless.close().await;
    }
}
