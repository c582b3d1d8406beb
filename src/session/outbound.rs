//! Delivery of messages the client did not ask for directly (upstream requests, notifications).
//!
//! Preference order: the POST stream of the request the message belongs to; the session's
//! general stream (stdout in stdio mode, the GET stream over HTTP); any open POST stream of the
//! session (the spec allows related traffic there); else a bounded backlog that the next general
//! stream drains.

use crate::transport::upstream::RelatedSink;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::mpsc;

const BACKLOG: usize = 1024;

#[derive(Default)]
pub struct Outbound {
    general: Mutex<Option<mpsc::Sender<String>>>,
    backlog: Mutex<VecDeque<String>>,
}

impl Outbound {
    /// Attaches the general stream, replacing any earlier one, and drains the backlog into it.
    pub fn attach(&self, tx: mpsc::Sender<String>) {
        self.flush_backlog(&tx);
        *self.general.lock().expect("general lock") = Some(tx);
    }

    pub fn detach(&self) {
        *self.general.lock().expect("general lock") = None;
    }

    /// Moves queued messages into `tx` while it has room; true when the backlog is empty.
    fn flush_backlog(&self, tx: &mpsc::Sender<String>) -> bool {
        let mut backlog = self.backlog.lock().expect("backlog lock");
        while let Some(text) = backlog.pop_front() {
            if let Err(e) = tx.try_send(text) {
                backlog.push_front(e.into_inner());
                return false;
            }
        }
        true
    }

    /// Never waits: a full stream falls through to the next choice, the backlog last.
    pub fn deliver(&self, text: String, related: Option<RelatedSink>, any_open: impl Fn() -> Option<RelatedSink>) {
        let text = match related {
            Some(tx) => match tx.try_send(text) {
                Ok(()) => return,
                Err(e) => e.into_inner(),
            },
            None => text,
        };
        let general = self.general.lock().expect("general lock").clone();
        let text = match general {
            Some(tx) if !self.flush_backlog(&tx) => text, // older messages still queued: keep order
            Some(tx) => match tx.try_send(text) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(t)) => {
                    self.detach();
                    t
                }
                Err(mpsc::error::TrySendError::Full(t)) => t,
            },
            None => text,
        };
        let text = match any_open() {
            Some(tx) => match tx.try_send(text) {
                Ok(()) => return,
                Err(e) => e.into_inner(),
            },
            None => text,
        };
        let mut backlog = self.backlog.lock().expect("backlog lock");
        if backlog.len() >= BACKLOG {
            backlog.pop_front();
            tracing::warn!("client is not reading; dropped the oldest undelivered message");
        }
        backlog.push_back(text);
    }
}
