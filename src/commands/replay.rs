//! `tollgate sessions replay S --dry-run`: re-decides a session's recorded calls under the
//! current policy and reports which would now be decided differently.
//!
//! The calls come from the audit log (upstream, tool, redacted arguments, the tool's recorded
//! write classification); nothing is sent anywhere. What is re-evaluated are the pure decisions
//! of `crate::policy`, in the stack's order: the allowlist, read-only (from the recorded
//! `readOnlyHint`), whether a person must approve, and the argument checks that policy owns (a
//! pinned schema, path and URL guards). What is not: rate limits and tool pins (their state is
//! in the store and has moved on), and the upstream's own `inputSchema` (not in the log). The
//! arguments are the redacted ones the log keeps, so a rule that looks at a secret's value sees
//! `[REDACTED]`. Replaying calls for real is out of scope.

use crate::audit::AuditRecord;
use crate::audit::calls::{self, Call};
use crate::audit::read::{self, printable};
use crate::audit::session_handle;
use crate::layers::validate_arguments::{ArgumentsVerdict, check_arguments};
use crate::policy::schema::SchemaCache;
use crate::policy::{Decision, Policy, ToolDefinition};
use serde::Serialize;
use std::fmt::Write;
use std::path::Path;

/// What a policy made of a call, reduced to what can be compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// "allow", "deny", "would_deny" (dry run) or "approval" (a person decides).
    pub decision: String,
    pub rule: Option<String>,
    /// The layer that decided ("allowlist", "read_only", …), when known.
    pub layer: Option<String>,
}

/// One replayed call.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub call: usize,
    pub tool: String,
    pub upstream: String,
    pub then: Verdict,
    /// How the person (or the deadline) decided then, for calls that needed approval.
    pub then_approval: Option<String>,
    /// None when the call could not be re-evaluated (see `note`).
    pub now: Option<Verdict>,
    /// "same", "rule" (same decision, another rule), "decision", or "not_evaluated".
    pub change: &'static str,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub session: String,
    pub policy_version: String,
    pub calls: Vec<Replayed>,
    /// Calls whose decision would change.
    pub changed: usize,
    pub not_evaluated: usize,
    /// What is never re-evaluated, for the reader.
    pub not_reevaluated: Vec<&'static str>,
    pub unreadable: Vec<String>,
}

/// Layers whose decisions depend on state, not on policy and the call alone.
const STATEFUL: [&str; 2] = ["rate_limit", "pin"];

/// The layer that decided a recorded call, from its trail (or, for records without one, its rule).
fn then_layer(r: &AuditRecord) -> Option<String> {
    if let Some(step) = r.trail.iter().find(|s| Some(&s.rule) == r.rule.as_ref() && s.decision == r.decision) {
        return Some(step.layer.clone());
    }
    let rule = r.rule.as_deref()?;
    Some(
        if rule.contains(":rate_limits.") {
            "rate_limit"
        } else if rule.starts_with("pin:") {
            "pin"
        } else if rule.starts_with("schema:") {
            "arguments"
        } else {
            return None;
        }
        .into(),
    )
}

/// The recorded verdict. A call that needed a person counts as "approval" whatever the person
/// said: that is the policy's part; who decided is shown beside it.
fn then_verdict(r: &AuditRecord) -> (Verdict, Option<String>) {
    let approval_step = r.trail.iter().find(|s| s.layer == "approval");
    let approval =
        r.approval.as_ref().map(|a| format!("{} by {}", if a.approved { "approved" } else { "denied" }, a.by));
    let layer = then_layer(r);
    let by_approval = layer.as_deref() == Some("approval") || (r.decision == "allow" && approval_step.is_some());
    if by_approval && r.decision != "would_deny" {
        let rule = approval_step.map(|s| s.rule.clone()).or_else(|| r.rule.clone());
        let approval = approval.or_else(|| (r.decision == "deny").then(|| "denied".into()));
        return (Verdict { decision: "approval".into(), rule, layer: Some("approval".into()) }, approval);
    }
    (Verdict { decision: r.decision.clone(), rule: r.rule.clone(), layer }, approval)
}

/// The current policy's verdict on a recorded call, or why it cannot be given.
fn now_verdict(policy: &Policy, r: &AuditRecord, cache: &SchemaCache) -> (Option<Verdict>, Option<String>) {
    // The caller's roles as recorded (records from before roles were recorded: none).
    let roles = crate::policy::Roles::new(r.roles.iter().cloned());
    let roles = &roles;
    let dry_run = policy.dry_run(roles, &r.upstream);
    let args = r.args_redacted.clone().unwrap_or_else(|| serde_json::json!({}));
    let mut steps: Vec<(&'static str, &'static str, String)> = Vec::new();
    let mut skipped: Vec<&'static str> = Vec::new();
    // Applies one decision as `ToolCall::enforce` does: a denial in dry run becomes "would_deny".
    // True when the call stops here.
    let step = |steps: &mut Vec<_>, layer: &'static str, d: Decision| {
        let word = if d.allowed {
            "allow"
        } else if dry_run {
            "would_deny"
        } else {
            "deny"
        };
        steps.push((layer, word, d.rule));
        word == "deny"
    };
    let denied = 'eval: {
        if step(&mut steps, "allowlist", policy.allowlist(roles, &r.upstream, &r.upstream_tool)) {
            break 'eval true;
        }
        match r.writes {
            Some(_) => {
                let tool = ToolDefinition::new(&r.upstream_tool, r.read_only_hint, None, "");
                if step(&mut steps, "read_only", policy.read_only(roles, &r.upstream, &tool)) {
                    break 'eval true;
                }
            }
            None => skipped.push("read_only"),
        }
        if let Some(d) = policy.approval(roles, &r.upstream, &r.upstream_tool, &args) {
            let word = if dry_run { "would_deny" } else { "approval" };
            steps.push(("approval", word, d.rule));
        }
        let owned = policy.pinned_schema(roles, &r.upstream, &r.upstream_tool).is_some()
            || policy.guards(roles, &r.upstream, &r.upstream_tool).is_some();
        if owned {
            let tool = ToolDefinition::new(&r.upstream_tool, r.read_only_hint, None, "");
            let d = match check_arguments(policy, roles, &r.upstream, &tool, &args, cache) {
                ArgumentsVerdict::Valid { rule } => Decision { allowed: true, rule, reason: String::new() },
                ArgumentsVerdict::Invalid { rule, .. } | ArgumentsVerdict::Unusable { rule, .. } => {
                    Decision { allowed: false, rule, reason: String::new() }
                }
            };
            step(&mut steps, "arguments", d);
        } else {
            skipped.push("arguments");
        }
        false
    };
    let deciding = steps.iter().find(|(_, word, _)| *word != "allow").or_else(|| steps.first());
    let verdict = deciding.map(|(layer, word, rule)| Verdict {
        decision: (*word).into(),
        rule: Some(rule.clone()),
        layer: Some((*layer).into()),
    });
    let then_layer = then_layer(r);
    let then_by = then_layer.as_deref();
    // A recorded denial by a layer this replay cannot run stands unless policy now stops the call earlier.
    if !denied && matches!(r.decision.as_str(), "deny" | "would_deny") {
        let why = match then_by {
            Some(l) if STATEFUL.contains(&l) => Some(format!("then decided by {l}, which depends on stored state")),
            Some("arguments") if skipped.contains(&"arguments") => {
                Some("then refused by an argument check this replay cannot run (the upstream's inputSchema)".into())
            }
            Some("read_only") if !skipped.is_empty() && r.writes.is_none() => {
                Some("then refused as a write; the record has no write classification".into())
            }
            _ => None,
        };
        if why.is_some() {
            return (None, why);
        }
    }
    let capped = args.to_string().contains("…[");
    let note = capped.then(|| "arguments were shortened in the log; checks saw the shortened form".to_string());
    (verdict, note)
}

fn change(then: &Verdict, now: &Verdict) -> &'static str {
    if then.decision != now.decision {
        "decision"
    } else if then.rule.is_some() && then.rule != now.rule {
        "rule"
    } else {
        "same"
    }
}

/// Replays session `session` (id or handle) from the log at `audit` against `policy`.
pub fn replay(audit: &Path, session: &str, policy: &Policy) -> Result<Report, String> {
    let files = read::files_in_order(audit);
    if files.is_empty() {
        return Err(format!("{}: no audit log", audit.display()));
    }
    let (records, unreadable) = read::located_in(&files);
    let handle = session_handle(session);
    let calls: Vec<Call> =
        calls::group(records).into_iter().filter(|c| c.session == session || c.session == handle).collect();
    if calls.is_empty() {
        return Err(format!("no tool calls of session {session} in {}", audit.display()));
    }
    let cache = SchemaCache::default();
    let mut out = Vec::new();
    for c in &calls {
        let r = c.record();
        let (then, then_approval) = then_verdict(r);
        let (now, note) = now_verdict(policy, r, &cache);
        let change = match &now {
            Some(now) => change(&then, now),
            None => "not_evaluated",
        };
        out.push(Replayed {
            call: c.n,
            tool: r.tool.clone(),
            upstream: r.upstream.clone(),
            then,
            then_approval,
            now,
            change,
            note,
        });
    }
    Ok(Report {
        session: calls[0].session.clone(),
        policy_version: policy.version.clone(),
        changed: out.iter().filter(|c| c.change == "decision").count(),
        not_evaluated: out.iter().filter(|c| c.change == "not_evaluated").count(),
        calls: out,
        not_reevaluated: vec![
            "rate limits and tool pins (their state is in the store)",
            "the upstream's own inputSchema (not in the log)",
        ],
        unreadable,
    })
}

fn verdict_text(v: &Verdict) -> String {
    let word = if v.decision == "allow" { v.decision.clone() } else { v.decision.to_uppercase() };
    format!("{word} {}", printable(v.rule.as_deref().unwrap_or("-"), 80))
}

/// The report as a table; `all` lists unchanged calls too.
pub fn render(report: &Report, all: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "replay (dry run: nothing was sent) of session {}: {} call(s) against policy {}",
        printable(&report.session, 64),
        report.calls.len(),
        printable(&report.policy_version, 64)
    );
    let shown: Vec<&Replayed> = report.calls.iter().filter(|c| all || c.change != "same").collect();
    if shown.is_empty() {
        let _ = writeln!(out, "no call would be decided differently");
    } else {
        let mut rows = vec![["call".to_string(), "tool".into(), "then".into(), "now".into(), "change".into()]];
        for c in &shown {
            let mut then = verdict_text(&c.then);
            if let Some(a) = &c.then_approval {
                then.push_str(&format!(" ({})", printable(a, 60)));
            }
            let now = c.now.as_ref().map_or("not re-evaluated".into(), verdict_text);
            rows.push([c.call.to_string(), printable(&c.tool, 60), then, now, c.change.to_string()]);
        }
        let mut widths = [0usize; 5];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for (i, row) in rows.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:>w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3]
            );
            if let Some(note) = i.checked_sub(1).and_then(|n| shown[n].note.as_ref()) {
                let _ = writeln!(out, "{:>w0$}  note: {}", "", printable(note, 200), w0 = widths[0]);
            }
        }
    }
    let rules = report.calls.iter().filter(|c| c.change == "rule").count();
    let _ = writeln!(
        out,
        "{} of {} call(s) would now be decided differently; {rules} by another rule; {} not re-evaluated",
        report.changed,
        report.calls.len(),
        report.not_evaluated
    );
    let _ = writeln!(out, "never re-evaluated: {}", report.not_reevaluated.join("; "));
    if !report.unreadable.is_empty() {
        let _ = writeln!(out, "warning: {} unreadable audit line(s) skipped", report.unreadable.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::trail::TrailStep;
    use serde_json::json;

    fn policy(text: &str) -> Policy {
        Policy::from_text_for_tests(text)
    }

    fn step(layer: &str, decision: &str, rule: &str) -> TrailStep {
        TrailStep { layer: layer.into(), decision: decision.into(), rule: rule.into() }
    }

    fn record(tool: &str, decision: &str, rule: &str, trail: Vec<TrailStep>) -> AuditRecord {
        AuditRecord {
            phase: "completed".into(),
            upstream: "fs".into(),
            tool: format!("fs__{tool}"),
            upstream_tool: tool.into(),
            decision: decision.into(),
            rule: Some(rule.into()),
            trail,
            writes: Some(!tool.starts_with("read")),
            read_only_hint: Some(tool.starts_with("read")),
            args_redacted: Some(json!({"path": "/etc/app.env"})),
            ..Default::default()
        }
    }

    #[test]
    fn tightened_policies_show_as_changed_decisions() {
        let allowed = record(
            "read_file",
            "allow",
            "p.toml:fs:allow:*",
            vec![
                step("allowlist", "allow", "p.toml:fs:allow:*"),
                step("read_only", "allow", "annotation:readOnlyHint"),
            ],
        );
        let cache = SchemaCache::default();
        let same = policy("[[upstream]]\nname = \"fs\"\nallow = [\"*\"]\n");
        let (now, _) = now_verdict(&same, &allowed, &cache);
        let now = now.unwrap();
        assert_eq!(change(&then_verdict(&allowed).0, &now), "same");

        let tight = policy("[[upstream]]\nname = \"fs\"\nallow = [\"*\"]\ndeny = [\"read_*\"]\n");
        let now = now_verdict(&tight, &allowed, &cache).0.unwrap();
        assert_eq!((now.decision.as_str(), now.rule.as_deref()), ("deny", Some("p.toml:fs:deny:read_*")));
        assert_eq!(change(&then_verdict(&allowed).0, &now), "decision");

        // Writes: read-only upstreams refuse them; approval rules see the redacted arguments.
        let write = record("write_file", "allow", "p.toml:fs:allow:*", vec![]);
        let ro = now_verdict(&same, &write, &cache).0.unwrap();
        assert_eq!((ro.decision.as_str(), ro.layer.as_deref()), ("deny", Some("read_only")));
        let ask = policy(
            "[[upstream]]\nname = \"fs\"\nread_only = false\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"write_file\"\napproval_when = { path = [\"*.env\"] }\n",
        );
        let a = now_verdict(&ask, &write, &cache).0.unwrap();
        assert_eq!(
            (a.decision.as_str(), a.rule.as_deref()),
            ("approval", Some("p.toml:fs:tool:write_file:approval_when:path"))
        );
        let dry = policy("dry_run = true\n[[upstream]]\nname = \"fs\"\nallow = [\"x\"]\n");
        assert_eq!(now_verdict(&dry, &allowed, &cache).0.unwrap().decision, "would_deny");
    }

    #[test]
    fn stateful_denials_are_not_re_evaluated() {
        let limited = record(
            "read_file",
            "deny",
            "p.toml:rate_limits.session",
            vec![step("rate_limit", "deny", "p.toml:rate_limits.session")],
        );
        let open = policy("[[upstream]]\nname = \"fs\"\nallow = [\"*\"]\n");
        let (now, note) = now_verdict(&open, &limited, &SchemaCache::default());
        assert!(now.is_none());
        assert!(note.unwrap().contains("rate_limit"));
        // ... unless policy now refuses the call before the rate limit would matter.
        let closed = policy("[[upstream]]\nname = \"fs\"\nallow = [\"list_*\"]\n");
        let now = now_verdict(&closed, &limited, &SchemaCache::default()).0.unwrap();
        assert_eq!(now.rule.as_deref(), Some("p.toml:fs:not-allowlisted"));
    }

    #[test]
    fn approvals_compare_as_the_policy_part() {
        let approved = AuditRecord {
            approval: Some(crate::policy::trail::ApprovalTrail {
                id: "a1".into(),
                approved: true,
                by: "admin:ops".into(),
                at_ms: 0,
            }),
            ..record(
                "write_file",
                "allow",
                "p.toml:fs:allow:*",
                vec![
                    step("allowlist", "allow", "p.toml:fs:allow:*"),
                    step("approval", "allow", "p.toml:fs:tool:write_file:approval"),
                ],
            )
        };
        let (then, who) = then_verdict(&approved);
        assert_eq!((then.decision.as_str(), who.as_deref()), ("approval", Some("approved by admin:ops")));
        assert_eq!(then.rule.as_deref(), Some("p.toml:fs:tool:write_file:approval"));
        let still = policy(
            "[[upstream]]\nname = \"fs\"\nread_only = false\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"write_file\"\napproval = true\n",
        );
        let now = now_verdict(&still, &approved, &SchemaCache::default()).0.unwrap();
        assert_eq!(change(&then, &now), "same");
    }
}
