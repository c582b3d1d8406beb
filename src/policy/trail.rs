//! The decisions taken on one call, in layer order, and its cost figures once settled: what the
//! audit record (and, for the figures, the session's usage and the metrics) reads.

use super::Decision;
use crate::cost::CallCost;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

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

/// One entry of the trail as the audit record keeps it: which layer, what it decided, by which
/// rule (the reason is left out: it repeats the rule in words and can be long).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrailStep {
    pub layer: String,
    pub decision: String,
    pub rule: String,
}

impl From<&TrailEntry> for TrailStep {
    fn from(e: &TrailEntry) -> Self {
        TrailStep { layer: e.layer.into(), decision: e.decision.into(), rule: e.rule.clone() }
    }
}

#[derive(Debug, Default)]
pub struct Trail {
    entries: Mutex<Vec<TrailEntry>>,
    redactions: AtomicUsize,
    approval: Mutex<Option<ApprovalTrail>>,
    /// The pin a changed definition was refused against (for the audit record).
    pinned_digest: Mutex<Option<String>>,
    /// The call went to its upstream (after its admission record): what makes it chargeable.
    forwarded: AtomicBool,
    /// The call's figures, computed once by whoever needs them first (audit layer or session),
    /// so the audit record and the session's usage can never disagree.
    cost: OnceLock<CallCost>,
}

impl Trail {
    pub fn record(&self, layer: &'static str, decision: &'static str, d: &Decision) {
        // An event on the call's span when tracing is on (and a log line at debug). Never the
        // reason: it can quote argument values.
        tracing::debug!(target: crate::telemetry::DECISION_TARGET, layer, decision, rule = %d.rule, "policy decision");
        self.entries.lock().expect("trail lock").push(TrailEntry {
            layer,
            decision,
            rule: d.rule.clone(),
            reason: d.reason.clone(),
        });
    }
    /// Counts what redaction removed from this call's output.
    pub fn add_redactions(&self, n: usize) {
        self.redactions.fetch_add(n, Ordering::Relaxed);
    }
    pub fn redactions(&self) -> usize {
        self.redactions.load(Ordering::Relaxed)
    }
    pub fn set_approval(&self, approval: ApprovalTrail) {
        *self.approval.lock().expect("trail lock") = Some(approval);
    }
    pub fn approval(&self) -> Option<ApprovalTrail> {
        self.approval.lock().expect("trail lock").clone()
    }
    pub fn set_pinned_digest(&self, digest: String) {
        *self.pinned_digest.lock().expect("trail lock") = Some(digest);
    }
    pub fn pinned_digest(&self) -> Option<String> {
        self.pinned_digest.lock().expect("trail lock").clone()
    }
    pub fn entries(&self) -> Vec<TrailEntry> {
        self.entries.lock().expect("trail lock").clone()
    }
    /// Visits the entries in order without copying them.
    pub fn each(&self, mut f: impl FnMut(&TrailEntry)) {
        self.entries.lock().expect("trail lock").iter().for_each(&mut f);
    }
    /// The entries in their audit form.
    pub fn steps(&self) -> Vec<TrailStep> {
        self.entries.lock().expect("trail lock").iter().map(TrailStep::from).collect()
    }
    /// The entry that decided the call: the first denial (real or dry-run), else the first
    /// allow (the allowlist rule that let the tool be called at all).
    pub fn deciding(&self) -> Option<TrailEntry> {
        let entries = self.entries();
        entries.iter().find(|e| e.decision != "allow").or_else(|| entries.first()).cloned()
    }
    pub fn mark_forwarded(&self) {
        self.forwarded.store(true, Ordering::Release);
    }
    pub fn forwarded(&self) -> bool {
        self.forwarded.load(Ordering::Acquire)
    }
    /// The call's figures: computed by `compute` the first time, the same answer afterwards.
    pub fn cost_or_init(&self, compute: impl FnOnce() -> CallCost) -> CallCost {
        self.cost.get_or_init(compute).clone()
    }
    /// The call's figures once counted (the hook for metrics).
    pub fn cost(&self) -> Option<&CallCost> {
        self.cost.get()
    }
}
