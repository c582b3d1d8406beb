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
        let pending: Vec<String> = self.backlog.lock().expect("backlog lock").drain(..).collect();
        for text in pending {
            if tx.try_send(text).is_err() {
                break;
            }
        }
        *self.general.lock().expect("general lock") = Some(tx);
    }

    pub fn detach(&self) {
        *self.general.lock().expect("general lock") = None;
    }

    pub async fn deliver(
        &self,
        text: String,
        related: Option<RelatedSink>,
        any_open: impl Fn() -> Option<RelatedSink>,
    ) {
        let text = match related {
            Some(tx) => match tx.send(text).await {
                Ok(()) => return,
                Err(e) => e.0,
            },
            None => text,
        };
        let general = self.general.lock().expect("general lock").clone();
        let text = match general {
            Some(tx) => match tx.send(text).await {
                Ok(()) => return,
                Err(e) => {
                    self.detach();
                    e.0
                }
            },
            None => text,
        };
        let text = match any_open() {
            Some(tx) => match tx.send(text).await {
                Ok(()) => return,
                Err(e) => e.0,
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
