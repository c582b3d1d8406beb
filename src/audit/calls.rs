//! Tool calls put back together from audit records, for `audit explain` and `sessions replay`.
//!
//! A forwarded call leaves an "admitted" record and later a "completed" one; a call stopped
//! before its upstream leaves one "denied" record. The two records of a call share its
//! `call_id`; records written before `call_id` existed are paired by session and JSON-RPC id
//! (one id is in flight at most once per session). Calls are numbered per session, from 1, in
//! the order their first record was written: "call N" means the same call to both commands.

use super::AuditRecord;
use super::read::Located;
use std::collections::HashMap;

/// One tool call as the log tells it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The session's handle (as records carry it).
    pub session: String,
    /// 1-based position among the session's calls.
    pub n: usize,
    /// The call's records in log order.
    pub records: Vec<Located>,
}

impl Call {
    /// The "admitted" record, if the call got that far.
    pub fn admitted(&self) -> Option<&Located> {
        self.records.iter().find(|r| r.record.phase == "admitted")
    }

    /// The record that ends the call ("completed" or "denied"); None while it is still running
    /// (or if the gateway died before writing it).
    pub fn finished(&self) -> Option<&Located> {
        self.records.iter().find(|r| matches!(r.record.phase.as_str(), "completed" | "denied"))
    }

    /// The most complete record: the finishing one, else the admission.
    pub fn record(&self) -> &AuditRecord {
        match self.finished() {
            Some(l) => &l.record,
            None => &self.records[0].record,
        }
    }

    /// Highest seq among the call's records.
    pub fn last_seq(&self) -> u64 {
        self.records.iter().map(|r| r.record.seq).max().unwrap_or(0)
    }
}

fn key(r: &AuditRecord) -> String {
    match &r.call_id {
        Some(id) => format!("c\u{0}{id}"),
        None => format!("s\u{0}{}\u{0}{}", r.session, r.jsonrpc_id),
    }
}

/// Groups records (in log order) into calls; records of other phases are ignored.
pub fn group(records: Vec<Located>) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut open: HashMap<String, usize> = HashMap::new();
    let mut per_session: HashMap<String, usize> = HashMap::new();
    for located in records {
        let phase = located.record.phase.as_str();
        if !matches!(phase, "admitted" | "completed" | "denied") {
            continue;
        }
        let k = key(&located.record);
        if phase != "admitted"
            && let Some(i) = open.remove(&k)
        {
            calls[i].records.push(located);
            continue;
        }
        let session = located.record.session.clone();
        let n = per_session.entry(session.clone()).or_insert(0);
        *n += 1;
        if phase == "admitted" {
            open.insert(k, calls.len());
        }
        calls.push(Call { session, n: *n, records: vec![located] });
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn rec(seq: u64, phase: &str, session: &str, id: &str, call_id: Option<&str>) -> Located {
        Located {
            file: PathBuf::from("audit.jsonl"),
            line: seq as usize,
            record: AuditRecord {
                seq,
                phase: phase.into(),
                session: session.into(),
                jsonrpc_id: id.into(),
                call_id: call_id.map(str::to_string),
                ..Default::default()
            },
        }
    }

    #[test]
    fn records_pair_by_call_id_and_number_per_session() {
        let calls = group(vec![
            rec(1, "admitted", "a", "1", Some("x")),
            rec(2, "denied", "a", "2", Some("y")),
            rec(3, "admitted", "b", "1", Some("z")),
            // A stateless session may have the same JSON-RPC id twice in flight: call ids tell them apart.
            rec(4, "admitted", "a", "1", Some("w")),
            rec(5, "completed", "a", "1", Some("w")),
            rec(6, "completed", "a", "1", Some("x")),
            rec(7, "config", "a", "", None),
        ]);
        let seen: Vec<(&str, usize, Vec<u64>)> =
            calls.iter().map(|c| (c.session.as_str(), c.n, c.records.iter().map(|r| r.record.seq).collect())).collect();
        assert_eq!(seen, [("a", 1, vec![1, 6]), ("a", 2, vec![2]), ("b", 1, vec![3]), ("a", 3, vec![4, 5])]);
        assert_eq!(calls[0].finished().unwrap().record.seq, 6);
        assert_eq!(calls[2].finished().map(|r| r.record.seq), None, "still running");
        assert_eq!(calls[2].record().seq, 3);
    }

    #[test]
    fn older_records_pair_by_session_and_jsonrpc_id() {
        let calls = group(vec![
            rec(1, "admitted", "a", "1", None),
            rec(2, "completed", "a", "1", None),
            rec(3, "admitted", "a", "1", None),
            rec(4, "completed", "b", "1", None),
            rec(5, "completed", "a", "1", None),
            rec(6, "completed", "a", "1", None),
        ]);
        let seqs: Vec<Vec<u64>> = calls.iter().map(|c| c.records.iter().map(|r| r.record.seq).collect()).collect();
        // The last "completed" has no open admission (its own was in a file since deleted): a call of its own.
        assert_eq!(seqs, [vec![1, 2], vec![3, 5], vec![4], vec![6]]);
        assert_eq!(calls[3].n, 3);
    }
}
