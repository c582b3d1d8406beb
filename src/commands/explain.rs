//! `tollgate audit explain FILE`: "why did this happen?" for one tool call, from the audit log
//! alone: who called (client, principal, session), what they sent (JSON-RPC id, `_meta`
//! correlation, redacted arguments), every policy decision and the rule behind it, the approval,
//! the upstream, timing, outcome, size, redactions, cost, and whether the hash chain holds
//! around the records it is read from.
//!
//! Calls are chosen by session and position (`--session S --call N`), by upstream and tool, or by
//! a file path their redacted arguments mention; `--last` keeps only the newest match.

use crate::audit::calls::{self, Call};
use crate::audit::read::{self, ChainStatus, printable};
use crate::audit::{AuditRecord, parse_rfc3339_us, rfc3339_from_ms, session_handle};
use serde_json::{Value, json};
use std::fmt::Write;
use std::path::Path;

/// Which calls to explain; every given filter must hold.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// A session id or its handle.
    pub session: Option<String>,
    /// 1-based position among the session's calls.
    pub call: Option<usize>,
    pub upstream: Option<String>,
    /// The namespaced name or the upstream's own.
    pub tool: Option<String>,
    /// A file path the redacted arguments mention.
    pub path: Option<String>,
    /// Only the newest matching call.
    pub last: bool,
}

impl Selector {
    fn matches(&self, call: &Call) -> bool {
        let r = call.record();
        let session_ok = self.session.as_ref().is_none_or(|s| call.session == *s || call.session == session_handle(s));
        session_ok
            && self.call.is_none_or(|n| call.n == n)
            && self.upstream.as_ref().is_none_or(|u| r.upstream == *u)
            && self.tool.as_ref().is_none_or(|t| r.tool == *t || r.upstream_tool == *t)
            && self.path.as_ref().is_none_or(|p| r.args_redacted.as_ref().is_some_and(|a| mentions_path(a, p)))
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.session {
            parts.push(format!("session {s}"));
        }
        if let Some(n) = self.call {
            parts.push(format!("call {n}"));
        }
        if let Some(u) = &self.upstream {
            parts.push(format!("upstream {u}"));
        }
        if let Some(t) = &self.tool {
            parts.push(format!("tool {t}"));
        }
        if let Some(p) = &self.path {
            parts.push(format!("path {p}"));
        }
        parts.join(", ")
    }
}

/// Characters that can be part of a path component: a mention must not be glued to more of them.
fn path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '~')
}

/// Does some string in `value` mention `path` as a whole path (or a directory above what it
/// names)? `notes/a.txt` is mentioned by `/srv/notes/a.txt` and `file:///srv/notes/a.txt`, and
/// `/srv/notes` by `/srv/notes/a.txt`, but `a.txt` is not mentioned by `data.txt`.
pub fn mentions_path(value: &Value, path: &str) -> bool {
    match value {
        Value::String(s) => {
            !path.is_empty()
                && s.match_indices(path).any(|(at, _)| {
                    let before = s[..at].chars().next_back();
                    let after = s[at + path.len()..].chars().next();
                    before.is_none_or(|c| !path_char(c)) && after.is_none_or(|c| !path_char(c) || path.ends_with('/'))
                })
        }
        Value::Array(items) => items.iter().any(|v| mentions_path(v, path)),
        Value::Object(members) => members.values().any(|v| mentions_path(v, path)),
        _ => false,
    }
}

/// Explains the calls `selector` picks in the log at `file`; text, or JSON (an array).
pub fn explain(file: &Path, selector: &Selector, json: bool) -> Result<String, String> {
    let files = read::files_in_order(file);
    if files.is_empty() {
        return Err(format!("{}: no audit log", file.display()));
    }
    let (records, unreadable) = read::located_in(&files);
    let mut chosen: Vec<Call> = calls::group(records).into_iter().filter(|c| selector.matches(c)).collect();
    if selector.last && chosen.len() > 1 {
        chosen.drain(..chosen.len() - 1);
    }
    if chosen.is_empty() {
        return Err(format!("no tool call in {} matches {}", file.display(), selector.describe()));
    }
    let chain = read::verify_prefix(&files);
    if json {
        let all: Vec<Value> = chosen.iter().map(|c| to_json(c, &chain)).collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&all).unwrap_or_default()));
    }
    let mut out = String::new();
    for (i, c) in chosen.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&to_text(c, &chain));
    }
    if !unreadable.is_empty() {
        let _ = writeln!(
            out,
            "\nwarning: {} unreadable line(s) skipped; first: {}",
            unreadable.len(),
            printable(&unreadable[0], 300)
        );
    }
    Ok(out)
}

/// What the hash chain says about this call's records.
fn chain_verdict(call: &Call, chain: &ChainStatus) -> (&'static str, String) {
    let seqs: Vec<String> = call.records.iter().map(|r| r.record.seq.to_string()).collect();
    let seqs = seqs.join(", ");
    let through = chain.verified.last_seq;
    match &chain.broken {
        None => (
            "intact",
            format!(
                "intact: all {} records verify (seq 1..={through}); this call's records are seq {seqs}",
                chain.verified.records
            ),
        ),
        Some(problem) if call.last_seq() <= through => (
            "verified_through_call",
            format!(
                "verified from seq 1 through seq {through}, which covers this call (seq {seqs}); broken after it: {}",
                printable(problem, 300)
            ),
        ),
        Some(problem) => (
            "not_verified",
            format!(
                "NOT verified: the chain breaks at or before this call's records (seq {seqs}): {}",
                printable(problem, 300)
            ),
        ),
    }
}

fn latency_ms(r: &AuditRecord) -> Option<f64> {
    r.latency_us.map(|us| us as f64 / 1000.0)
}

/// From the admission record to the completion record: the upstream's share of the latency.
fn upstream_us(admitted: &AuditRecord, completed: &AuditRecord) -> Option<u64> {
    parse_rfc3339_us(&completed.ts)?.checked_sub(parse_rfc3339_us(&admitted.ts)?)
}

fn to_json(call: &Call, chain: &ChainStatus) -> Value {
    let r = call.record();
    let (status, detail) = chain_verdict(call, chain);
    let records: Vec<Value> = call
        .records
        .iter()
        .map(|l| json!({ "seq": l.record.seq, "phase": l.record.phase, "ts": l.record.ts, "at": l.at() }))
        .collect();
    let approval = r.approval.as_ref().map(
        |a| json!({ "id": a.id, "approved": a.approved, "by": a.by, "at_ms": a.at_ms, "at": rfc3339_from_ms(a.at_ms) }),
    );
    json!({
        "session": call.session,
        "call": call.n,
        "records": records,
        "client": r.client,
        "principal": r.principal,
        "jsonrpc_id": r.jsonrpc_id,
        "traceparent": r.traceparent,
        "meta": r.meta,
        "tool": r.tool,
        "upstream": r.upstream,
        "upstream_tool": r.upstream_tool,
        "tool_digest": r.tool_digest,
        "writes": r.writes,
        "read_only_hint": r.read_only_hint,
        "args_digest": r.args_digest,
        "args_redacted": r.args_redacted,
        "policy_version": r.policy_version,
        "dry_run": r.dry_run,
        "decision": r.decision,
        "rule": r.rule,
        "trail": r.trail,
        "approval": approval,
        "admitted": call.admitted().map(|l| l.record.ts.clone()),
        "completed": call.finished().map(|l| l.record.ts.clone()),
        "latency_us": r.latency_us,
        "upstream_us": call.admitted().zip(call.finished()).and_then(|(a, f)| upstream_us(&a.record, &f.record)),
        "outcome": r.outcome,
        "error_code": r.error_code,
        "result_bytes": r.result_bytes,
        "redactions": r.redactions,
        "usage": {
            "bytes_in": r.bytes_in,
            "bytes_out": r.bytes_out,
            "tokens_in": r.tokens_in,
            "tokens_out": r.tokens_out,
            "cost_micros": r.cost_micros,
            "currency": r.currency,
            "price": r.price,
        },
        "chain": { "status": status, "verified_through_seq": chain.verified.last_seq, "detail": detail },
    })
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or("-".into(), |v| printable(&v.to_string(), 200))
}

fn to_text(call: &Call, chain: &ChainStatus) -> String {
    const F: usize = 200;
    let r = call.record();
    let mut out = String::new();
    let at: Vec<String> = call.records.iter().map(|l| format!("seq {} ({})", l.record.seq, l.at())).collect();
    let _ = writeln!(out, "call {} of session {}  — records {}", call.n, printable(&call.session, 64), at.join(", "));
    let client = r.client.as_ref().map_or("-".to_string(), |c| {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
        let version = c.get("version").and_then(Value::as_str).unwrap_or("?");
        format!("{} {}", printable(name, F), printable(version, 40))
    });
    let _ = writeln!(out, "  client      {client} (self-reported)");
    let _ = writeln!(out, "  principal   {}", printable(&r.principal, F));
    let _ =
        writeln!(out, "  request     jsonrpc id {}; traceparent {}", printable(&r.jsonrpc_id, F), opt(&r.traceparent));
    if let Some(meta) = &r.meta {
        let _ = writeln!(out, "  _meta       {}", printable(&meta.to_string(), 400));
    }
    let writes = match (r.writes, r.read_only_hint) {
        (Some(true), hint) => format!("writes (readOnlyHint {})", opt(&hint)),
        (Some(false), hint) => format!("read-only (readOnlyHint {})", opt(&hint)),
        (None, _) => "write classification not recorded".into(),
    };
    let _ = writeln!(
        out,
        "  tool        {} → upstream {}, tool {}; {writes}; definition {}",
        printable(&r.tool, F),
        printable(&r.upstream, F),
        printable(&r.upstream_tool, F),
        opt(&r.tool_digest)
    );
    let args = r.args_redacted.as_ref().map_or("-".into(), |a| printable(&a.to_string(), 400));
    let _ = writeln!(out, "  arguments   {args} (redacted; digest {})", printable(&r.args_digest, 64));
    let _ = writeln!(
        out,
        "  policy      version {}{}",
        opt(&r.policy_version),
        if r.dry_run { " (dry run: denials recorded, not enforced)" } else { "" }
    );
    if r.trail.is_empty() {
        let _ = writeln!(out, "  decisions   none recorded (stopped before policy: see the outcome)");
    }
    for (i, step) in r.trail.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:<11} {:<10} {:<10} {}",
            if i == 0 { "decisions" } else { "" },
            printable(&step.layer, 20),
            printable(&step.decision, 20),
            printable(&step.rule, F)
        );
    }
    let _ = writeln!(out, "  decided     {} by {}", printable(&r.decision, 20), opt(&r.rule));
    match &r.approval {
        Some(a) => {
            let _ = writeln!(
                out,
                "  approval    {} {} by {} at {}",
                printable(&a.id, 64),
                if a.approved { "approved" } else { "denied" },
                printable(&a.by, F),
                rfc3339_from_ms(a.at_ms)
            );
        }
        None => {
            let _ = writeln!(out, "  approval    none");
        }
    }
    let in_gateway = latency_ms(r).map_or("-".into(), |ms| format!("{ms:.1} ms"));
    let timing = match (call.admitted(), call.finished()) {
        (Some(a), Some(f)) => format!(
            "admitted {} → completed {} ({} upstream and back); {in_gateway} in the gateway",
            printable(&a.record.ts, 40),
            printable(&f.record.ts, 40),
            upstream_us(&a.record, &f.record).map_or("-".into(), |us| format!("{:.1} ms", us as f64 / 1000.0))
        ),
        (Some(a), None) => format!(
            "admitted {}; no completion record (still running, or the gateway stopped)",
            printable(&a.record.ts, 40)
        ),
        (None, Some(f)) => {
            format!("never forwarded; ended {}; {in_gateway} in the gateway", printable(&f.record.ts, 40))
        }
        (None, None) => "-".into(),
    };
    let _ = writeln!(out, "  timing      {timing}");
    let _ = writeln!(
        out,
        "  outcome     {}{}; {}, {} redaction(s)",
        opt(&r.outcome),
        r.error_code.map(|c| format!(" (error {c})")).unwrap_or_default(),
        r.result_bytes.map_or("no result".into(), |b| format!("reply {b} bytes")),
        opt(&r.redactions)
    );
    let cost = match (r.cost_micros, &r.currency) {
        (Some(m), Some(c)) => {
            format!("cost {} {} ({})", crate::cost::format_micros(m), printable(c, 16), opt(&r.price))
        }
        _ => "no price".into(),
    };
    let _ = writeln!(
        out,
        "  usage       in {} bytes ≈ {} tokens, out {} bytes ≈ {} tokens; {cost}",
        opt(&r.bytes_in),
        opt(&r.tokens_in),
        opt(&r.bytes_out),
        opt(&r.tokens_out)
    );
    let _ = writeln!(out, "  chain       {}", chain_verdict(call, chain).1);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_matched_whole() {
        let args = json!({"path": "/srv/notes/a.txt", "more": [{"uri": "file:///data/b.md"}], "n": 3});
        for yes in ["/srv/notes/a.txt", "notes/a.txt", "a.txt", "/srv/notes", "/srv/notes/", "/data/b.md", "b.md"] {
            assert!(mentions_path(&args, yes), "{yes}");
        }
        for no in ["", "/srv/note", "s/a.txt", ".txt", "a.tx", "3", "otes/a.txt"] {
            assert!(!mentions_path(&args, no), "{no}");
        }
        assert!(!mentions_path(&json!({"p": "data.txt"}), "a.txt"));
    }
}
