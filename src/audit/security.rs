//! Security events: requests refused before any session or tool call exists — a Host or Origin
//! that is not allowed, mirrored headers that disagree with the body, a malformed frame, an
//! unknown or another principal's session id. Each kind leaves records in the same hash chain as
//! calls (phase "security"), so probing is attributable like everything else.
//!
//! A flood must not become a flood of records (or of disk): per kind, the 1st, 2nd, 4th, 8th…
//! event is written, each carrying the running count in `events`, so the log always says how
//! many there were without growing more than logarithmically.

use super::AuditRecord;
use super::sink::AuditLog;
use crate::telemetry::Throttle;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    HostRefused,
    OriginRefused,
    HeaderMismatch,
    MalformedFrame,
    UnknownSession,
}

impl Event {
    /// The record's `rule`.
    pub fn rule(self) -> &'static str {
        match self {
            Event::HostRefused => "security:host",
            Event::OriginRefused => "security:origin",
            Event::HeaderMismatch => "security:header_mismatch",
            Event::MalformedFrame => "security:malformed_frame",
            Event::UnknownSession => "security:unknown_session",
        }
    }

    fn throttle(self) -> &'static Throttle {
        static THROTTLES: [Throttle; 5] =
            [Throttle::new(), Throttle::new(), Throttle::new(), Throttle::new(), Throttle::new()];
        &THROTTLES[self as usize]
    }
}

/// Records `event` (throttled as above) for `principal` ("" when the request was refused before
/// authentication), with the JSON-RPC error code it was answered with. Never waits on the disk
/// in the caller: the append runs as its own task.
pub fn record(log: Option<&Arc<AuditLog>>, event: Event, principal: &str, error_code: i64) {
    let Some(log) = log else { return };
    let Some(count) = event.throttle().hit() else { return };
    tracing::warn!(rule = event.rule(), count, "request refused before any session");
    let record = AuditRecord {
        phase: "security".into(),
        principal: principal.into(),
        decision: "deny".into(),
        rule: Some(event.rule().into()),
        outcome: Some("refused".into()),
        error_code: Some(error_code),
        events: Some(count),
        ..Default::default()
    };
    log.append_detached(record, "a security event");
}
