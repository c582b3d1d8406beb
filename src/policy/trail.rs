//! The decisions taken on one call, in layer order, for the audit record.

use super::Decision;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailEntry {
    pub layer: &'static str,
    /// "allow", "deny", "would_deny" (dry run) or "pending" (asked a person; not decided yet).
    pub decision: &'static str,
    pub rule: String,
    pub reason: String,
}

/// How a call that needed a person's approval was decided.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApprovalTrail {
    pub id: String,
    pub approved: bool,
    /// `admin:<operator>`, `client:<client name>` or `timeout`.
    pub by: String,
    pub at_ms: u64,
}

#[derive(Debug, Default)]
pub struct Trail(Mutex<Vec<TrailEntry>>, std::sync::atomic::AtomicUsize, Mutex<Option<ApprovalTrail>>);

impl Trail {
    pub fn record(&self, layer: &'static str, decision: &'static str, d: &Decision) {
        // An event on the call's span when tracing is on (and a log line at debug). Never the
        // reason: it can quote argument values.
        tracing::debug!(target: crate::telemetry::DECISION_TARGET, layer, decision, rule = %d.rule, "policy decision");
        self.0.lock().expect("trail lock").push(TrailEntry {
            layer,
            decision,
            rule: d.rule.clone(),
            reason: d.reason.clone(),
        });
    }
    /// Counts what redaction removed from this call's output.
    pub fn add_redactions(&self, n: usize) {
        self.1.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    pub fn redactions(&self) -> usize {
        self.1.load(std::sync::atomic::Ordering::Relaxed)
    }
    pub fn set_approval(&self, approval: ApprovalTrail) {
        *self.2.lock().expect("trail lock") = Some(approval);
    }
    pub fn approval(&self) -> Option<ApprovalTrail> {
        self.2.lock().expect("trail lock").clone()
    }
    pub fn entries(&self) -> Vec<TrailEntry> {
        self.0.lock().expect("trail lock").clone()
    }
    /// The entry that decided the call: the first denial (real or dry-run), else the first
    /// allow (the allowlist rule that let the tool be called at all).
    pub fn deciding(&self) -> Option<TrailEntry> {
        let entries = self.entries();
        entries.iter().find(|e| e.decision != "allow").or_else(|| entries.first()).cloned()
    }
}
