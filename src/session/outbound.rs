//! Delivery of messages the client did not ask for directly (upstream requests, notifications).
//!
//! Preference order: the POST stream of the request the message belongs to; the session's
//! general stream (stdout in stdio mode, the GET stream over HTTP); any open POST stream of the
//! session (the spec allows related traffic there); else a bounded backlog that the next general
//! stream drains.
//!
//! Every queue is bounded: the streams' channels by message count, the backlog by count and by
//! bytes (a message may be megabytes). A client that does not read loses the oldest backlog
//! entries; [`Outbound::deliver`] hands them back so the session can answer an upstream request
//! among them with an error instead of leaving the upstream waiting for a reply that never comes.

use crate::transport::upstream::RelatedSink;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::mpsc;

const BACKLOG: usize = 1024;
const BACKLOG_BYTES: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct Backlog {
    queue: VecDeque<String>,
    bytes: usize,
}

impl Backlog {
    fn pop_front(&mut self) -> Option<String> {
        let text = self.queue.pop_front()?;
        self.bytes -= text.len();
        Some(text)
    }
    fn push_front(&mut self, text: String) {
        self.bytes += text.len();
        self.queue.push_front(text);
    }
    fn push_back(&mut self, text: String) {
        self.bytes += text.len();
        self.queue.push_back(text);
    }
}

#[derive(Default)]
pub struct Outbound {
    general: Mutex<Option<mpsc::Sender<String>>>,
    backlog: Mutex<Backlog>,
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

    /// Never waits: a full stream falls through to the next choice, the backlog last. Returns
    /// the messages the backlog dropped to make room (oldest first), never delivered.
    #[must_use = "dropped messages may be requests an upstream waits on"]
    pub fn deliver(
        &self,
        text: String,
        related: Option<RelatedSink>,
        any_open: impl Fn() -> Option<RelatedSink>,
    ) -> Vec<String> {
        let text = match related {
            Some(tx) => match tx.try_send(text) {
                Ok(()) => return Vec::new(),
                Err(e) => e.into_inner(),
            },
            None => text,
        };
        let general = self.general.lock().expect("general lock").clone();
        let text = match general {
            Some(tx) if !self.flush_backlog(&tx) => text, // older messages still queued: keep order
            Some(tx) => match tx.try_send(text) {
                Ok(()) => return Vec::new(),
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
                Ok(()) => return Vec::new(),
                Err(e) => e.into_inner(),
            },
            None => text,
        };
        let mut backlog = self.backlog.lock().expect("backlog lock");
        let mut dropped = Vec::new();
        while !backlog.queue.is_empty()
            && (backlog.queue.len() >= BACKLOG || backlog.bytes + text.len() > BACKLOG_BYTES)
        {
            dropped.extend(backlog.pop_front());
        }
        if !dropped.is_empty() {
            tracing::warn!(dropped = dropped.len(), "client is not reading; dropped the oldest undelivered messages");
        }
        backlog.push_back(text);
        dropped
    }

    /// Messages waiting for a stream, and their bytes.
    pub fn backlog_size(&self) -> (usize, usize) {
        let b = self.backlog.lock().expect("backlog lock");
        (b.queue.len(), b.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_is_bounded_in_bytes_and_returns_what_it_drops() {
        let out = Outbound::default();
        let big = "x".repeat(3 * 1024 * 1024);
        assert!(out.deliver(big.clone(), None, || None).is_empty());
        assert!(out.deliver(big.clone(), None, || None).is_empty());
        let dropped = out.deliver("y".repeat(3 * 1024 * 1024), None, || None);
        assert_eq!(dropped, vec![big], "the oldest goes first");
        let (n, bytes) = out.backlog_size();
        assert!(n == 2 && bytes <= BACKLOG_BYTES, "{n} {bytes}");
        // One message larger than the whole budget still waits alone (the stream may come).
        let dropped = out.deliver("z".repeat(BACKLOG_BYTES + 1), None, || None);
        assert_eq!(dropped.len(), 2);
        assert_eq!(out.backlog_size().0, 1);
    }

    #[test]
    fn the_backlog_is_bounded_in_count() {
        let out = Outbound::default();
        let dropped: usize = (0..BACKLOG + 10).map(|i| out.deliver(i.to_string(), None, || None).len()).sum();
        assert_eq!(dropped, 10);
        assert_eq!(out.backlog_size().0, BACKLOG);
        // Attaching a stream drains what fits, in order.
        let (tx, mut rx) = mpsc::channel(4);
        out.attach(tx);
        assert_eq!(rx.try_recv().unwrap(), "10");
    }
}
