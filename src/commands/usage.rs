//! `tollgate usage --since 24h [--by principal|upstream|tool] [--json]`: calls, bytes, estimated
//! tokens and cost per principal (or upstream, or tool) over a time window.
//!
//! The source is the audit log, not the state store: the log is durable and complete (every
//! call leaves a record, denials and cancellations included, across restarts and rotated files),
//! while the store's session records expire with their sessions and only hold running totals.
//! Each call is counted once, from the record that ends it ("completed" or "denied"), whose time
//! decides whether it falls in the window. Nothing here needs the gateway to be running.

use crate::audit::AuditRecord;
use crate::audit::read::{self, printable};
use crate::cost::format_micros;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What rows are keyed on (one or more, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Principal,
    Upstream,
    Tool,
}

impl GroupBy {
    fn of(self, r: &AuditRecord) -> String {
        match self {
            GroupBy::Principal => r.principal.clone(),
            GroupBy::Upstream => r.upstream.clone(),
            GroupBy::Tool => r.tool.clone(),
        }
    }
    fn name(self) -> &'static str {
        match self {
            GroupBy::Principal => "principal",
            GroupBy::Upstream => "upstream",
            GroupBy::Tool => "tool",
        }
    }
}

/// Totals of one row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub calls: u64,
    /// Calls a policy rule refused (decision "deny").
    pub denied: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Currency → micro-units (more than one currency only if the config changed in the window).
    pub cost_micros: BTreeMap<String, u64>,
}

impl Totals {
    fn add(&mut self, r: &AuditRecord) {
        self.calls += 1;
        self.denied += u64::from(r.decision == "deny");
        self.bytes_in = self.bytes_in.saturating_add(r.bytes_in.unwrap_or(0));
        self.bytes_out = self.bytes_out.saturating_add(r.bytes_out.unwrap_or(0));
        self.tokens_in = self.tokens_in.saturating_add(r.tokens_in.unwrap_or(0));
        self.tokens_out = self.tokens_out.saturating_add(r.tokens_out.unwrap_or(0));
        if let (Some(micros), Some(currency)) = (r.cost_micros, &r.currency) {
            let sum = self.cost_micros.entry(currency.clone()).or_default();
            *sum = sum.saturating_add(micros);
        }
    }

    fn cost_text(&self) -> String {
        if self.cost_micros.is_empty() {
            return "-".into();
        }
        let parts: Vec<String> = self.cost_micros.iter().map(|(c, m)| format!("{} {c}", format_micros(*m))).collect();
        parts.join(" + ")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// One value per `by` key, in the same order.
    pub key: Vec<String>,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub since: String,
    pub until: String,
    pub by: Vec<GroupBy>,
    /// The log read (its rotated files included).
    pub audit: String,
    pub rows: Vec<Row>,
    pub total: Totals,
    /// Lines that could not be read (counted nowhere); `tollgate audit verify` says more.
    pub unreadable: Vec<String>,
}

/// `24h`, `30m`, `7d`, `1h30m` (units s, m, h, d, w) back from `now_ms`, or an RFC 3339 UTC time.
pub fn parse_since(text: &str, now_ms: u64) -> Result<u64, String> {
    if let Some(ms) = crate::audit::parse_rfc3339_ms(text) {
        return Ok(ms);
    }
    let bad = || {
        format!(
            "--since {text:?}: use a duration such as 24h, 30m, 7d or 1h30m, or a time such as 2025-01-31T00:00:00Z"
        )
    };
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n.checked_mul(unit * 1000).and_then(|ms| total.checked_add(ms)).ok_or_else(bad)?;
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(now_ms.saturating_sub(total))
}

/// The finishing records in `[since_ms, ∞)`, oldest first, and the lines that could not be read.
/// Files are read newest first and reading stops at the first file that starts before the
/// window: rotated files are in time order, so older ones hold nothing newer.
fn finished_since(files: &[PathBuf], since_ms: u64) -> (Vec<AuditRecord>, Vec<String>) {
    let mut newest_first = Vec::new();
    let mut unreadable = Vec::new();
    for file in files.iter().rev() {
        let (records, problems) = read::located_in(std::slice::from_ref(file));
        unreadable.extend(problems);
        let starts_before = records
            .first()
            .and_then(|l| crate::audit::parse_rfc3339_ms(&l.record.ts))
            .is_some_and(|first| first < since_ms);
        for l in records.into_iter().rev() {
            let r = l.record;
            if !matches!(r.phase.as_str(), "completed" | "denied") {
                continue;
            }
            match crate::audit::parse_rfc3339_ms(&r.ts) {
                Some(ts) if ts >= since_ms => newest_first.push(r),
                Some(_) => {}
                None => unreadable.push(format!("{}: seq {}: unreadable time {:?}", file.display(), r.seq, r.ts)),
            }
        }
        if starts_before {
            break;
        }
    }
    newest_first.reverse();
    (newest_first, unreadable)
}

/// Sums the log at `audit` (with its rotated files) from `since_ms` on, grouped by `by`.
pub fn summarise(audit: &Path, since_ms: u64, now_ms: u64, by: &[GroupBy]) -> Result<Report, String> {
    let files = read::files_in_order(audit);
    if files.is_empty() {
        return Err(format!("{}: no audit log", audit.display()));
    }
    let (records, unreadable) = finished_since(&files, since_ms);
    let mut rows: BTreeMap<Vec<String>, Totals> = BTreeMap::new();
    let mut total = Totals::default();
    for r in &records {
        rows.entry(by.iter().map(|b| b.of(r)).collect()).or_default().add(r);
        total.add(r);
    }
    Ok(Report {
        since: crate::audit::rfc3339_from_ms(since_ms),
        until: crate::audit::rfc3339_from_ms(now_ms),
        by: by.to_vec(),
        audit: audit.display().to_string(),
        rows: rows.into_iter().map(|(key, totals)| Row { key, totals }).collect(),
        total,
        unreadable,
    })
}

/// The report as a table.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let by: Vec<&str> = report.by.iter().map(|b| b.name()).collect();
    let _ = writeln!(
        out,
        "usage from {} to {} by {}, from the audit log {}",
        report.since,
        report.until,
        by.join(", "),
        printable(&report.audit, 200)
    );
    let mut widths: Vec<usize> = by.iter().map(|b| b.len().max(5)).collect();
    let keys: Vec<Vec<String>> = report.rows.iter().map(|r| r.key.iter().map(|k| printable(k, 60)).collect()).collect();
    for key in &keys {
        for (w, k) in widths.iter_mut().zip(key) {
            *w = (*w).max(k.chars().count());
        }
    }
    let line = |out: &mut String, key: &[String], t: &Totals| {
        for (w, k) in widths.iter().zip(key) {
            let _ = write!(out, "{k:<w$}  ");
        }
        let _ = writeln!(
            out,
            "{:>7} {:>7} {:>10} {:>10} {:>10} {:>10}  {}",
            t.calls,
            t.denied,
            t.bytes_in,
            t.bytes_out,
            t.tokens_in,
            t.tokens_out,
            t.cost_text()
        );
    };
    let header: Vec<String> = by.iter().map(|b| b.to_string()).collect();
    for (w, k) in widths.iter().zip(&header) {
        let _ = write!(out, "{k:<w$}  ");
    }
    let _ = writeln!(
        out,
        "{:>7} {:>7} {:>10} {:>10} {:>10} {:>10}  cost",
        "calls", "denied", "bytes in", "bytes out", "tokens in", "tokens out"
    );
    for (key, row) in keys.iter().zip(&report.rows) {
        line(&mut out, key, &row.totals);
    }
    let mut total_key = vec!["total".to_string()];
    total_key.resize(by.len(), String::new());
    line(&mut out, &total_key, &report.total);
    if !report.unreadable.is_empty() {
        let _ = writeln!(
            out,
            "warning: {} unreadable line(s) not counted (run `tollgate audit verify`); first: {}",
            report.unreadable.len(),
            printable(&report.unreadable[0], 300)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_times() {
        let now = 10 * 86_400_000;
        assert_eq!(parse_since("24h", now), Ok(9 * 86_400_000));
        assert_eq!(parse_since("1h30m", now), Ok(now - 5_400_000));
        assert_eq!(parse_since("90s", now), Ok(now - 90_000));
        assert_eq!(parse_since("2w", now), Ok(0), "saturates at the epoch");
        assert_eq!(parse_since("1970-01-02T00:00:00Z", now), Ok(86_400_000));
        for bad in ["", "h", "24", "0h", "24x", "-1h", "99999999999999999999d", "1.5h"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }

    fn record(ts: &str, phase: &str, principal: &str, tool: &str, decision: &str, cost: Option<u64>) -> AuditRecord {
        AuditRecord {
            ts: ts.into(),
            phase: phase.into(),
            principal: principal.into(),
            upstream: "fx".into(),
            tool: tool.into(),
            decision: decision.into(),
            bytes_in: Some(10),
            bytes_out: Some(100),
            tokens_in: Some(3),
            tokens_out: Some(25),
            cost_micros: cost,
            currency: cost.map(|_| "USD".to_string()),
            ..Default::default()
        }
    }

    /// Writes `records` as a sealed chain, one per file (`<path>.1`, `.2`, …, the last in `path`),
    /// keeping their times.
    fn write_rotated(path: &Path, records: Vec<AuditRecord>) {
        let mut prev = crate::audit::GENESIS.to_string();
        let n = records.len();
        for (i, mut r) in records.into_iter().enumerate() {
            r.seq = i as u64 + 1;
            r.prev = prev.clone();
            let line = crate::audit::seal(&mut r).unwrap();
            prev = r.hash.clone();
            let file =
                if i + 1 == n { path.to_path_buf() } else { PathBuf::from(format!("{}.{}", path.display(), i + 1)) };
            std::fs::write(file, format!("{line}\n")).unwrap();
        }
    }

    #[test]
    fn sums_finishing_records_in_the_window_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write_rotated(
            &path,
            vec![
                record("2025-01-01T00:00:00.000000Z", "completed", "old", "fx__echo", "allow", Some(5)),
                record("2025-01-02T00:00:00.000000Z", "admitted", "alice", "fx__echo", "allow", None),
                record("2025-01-02T00:00:01.000000Z", "completed", "alice", "fx__echo", "allow", Some(2100)),
                record("2025-01-02T00:00:02.000000Z", "denied", "alice", "fx__write", "deny", None),
                record("2025-01-02T00:00:03.000000Z", "completed", "bob", "fx__echo", "allow", Some(900)),
            ],
        );
        assert_eq!(read::verify(&path).unwrap().files, 5);
        let since = crate::audit::parse_rfc3339_ms("2025-01-01T12:00:00Z").unwrap();
        let report = summarise(&path, since, since + 86_400_000, &[GroupBy::Principal]).unwrap();
        let rows: Vec<(Vec<String>, u64, u64, u64)> =
            report.rows.iter().map(|r| (r.key.clone(), r.totals.calls, r.totals.denied, r.totals.tokens_out)).collect();
        assert_eq!(rows, [(vec!["alice".to_string()], 2, 1, 50), (vec!["bob".to_string()], 1, 0, 25)]);
        assert_eq!(report.total.calls, 3);
        assert_eq!(report.total.cost_micros, BTreeMap::from([("USD".to_string(), 3000)]));
        let text = render(&report);
        assert!(text.contains("0.003000 USD"), "{text}");

        let by_tool = summarise(&path, since, since, &[GroupBy::Principal, GroupBy::Tool]).unwrap();
        assert_eq!(by_tool.rows.len(), 3);
        assert_eq!(by_tool.rows[1].key, ["alice", "fx__write"]);
    }
}
