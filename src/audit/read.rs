//! Reading the audit log: files in chain order, verification, tail, per-session views. The
//! files are evidence and may have been tampered with: every reader here answers an error
//! naming the file and line for bytes it cannot use, and never panics.

use super::{AuditRecord, GENESIS, chain_hash, unseal};
use std::path::{Path, PathBuf};

/// The rotated files of the log at `path` (`<path>.<N>`, N a plain decimal number), by N.
/// Found by listing the directory, so a gap (the oldest files removed by retention) neither
/// hides the newer ones nor lets rotation reuse a lower number.
pub fn rotated_files(path: &Path) -> Vec<(u64, PathBuf)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut rotated: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file_name = e.file_name();
            let suffix = file_name.to_str()?.strip_prefix(name)?.strip_prefix('.')?;
            let n: u64 = suffix.parse().ok()?;
            // Only the canonical spelling: no sign, no leading zeros, nothing after the digits.
            (n.to_string() == suffix).then(|| (n, path.with_file_name(file_name)))
        })
        .collect();
    rotated.sort_unstable_by_key(|(n, _)| *n);
    rotated
}

/// `audit.jsonl.1, audit.jsonl.2, …, audit.jsonl` (oldest first), those that exist.
pub fn files_in_order(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = rotated_files(path).into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// The lines of one file, numbered from 1, blank ones skipped; a trailing CR is dropped. Only
/// regular files are read (a device such as /dev/zero would never end).
fn lines(path: &Path) -> Result<Vec<(usize, Vec<u8>)>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(n, l)| (n + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(n, l)| (n, l.to_vec()))
        .collect())
}

/// One line as a record; the error names `file:line`.
fn parse(file: &Path, n: usize, line: &[u8]) -> Result<AuditRecord, String> {
    serde_json::from_slice(line).map_err(|e| format!("{}:{n}: not an audit record ({e})", file.display()))
}

/// The last record of one file, if any.
pub fn last_record(path: &Path) -> Result<Option<AuditRecord>, String> {
    // Only regular files hold records.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    match lines(path)?.last() {
        Some((n, line)) => parse(path, *n, line)
            .map(Some)
            .map_err(|e| format!("{e}; the last record is unreadable (a write cut short, or an edit), so the chain cannot continue from it")),
        None => Ok(None),
    }
}

/// Every record of the given files, in order.
pub fn records_in(files: &[PathBuf]) -> Result<Vec<AuditRecord>, String> {
    let mut out = Vec::new();
    for file in files {
        for (n, line) in lines(file)? {
            out.push(parse(file, n, &line)?);
        }
    }
    Ok(out)
}

/// Every record of the log (all files, in order).
pub fn records(path: &Path) -> Result<Vec<AuditRecord>, String> {
    records_in(&files_in_order(path))
}

#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    pub files: usize,
    pub records: u64,
    /// The last record's seq and hash (0 and `GENESIS` for an empty log). Kept elsewhere, they
    /// let a later verify notice a truncated tail, which the chain alone cannot.
    pub last_seq: u64,
    pub last_hash: String,
}

/// The chain as verified so far.
struct Chain {
    prev: String,
    seq: u64,
    records: u64,
}

impl Chain {
    fn new() -> Chain {
        // The log starts at seq 1 from the genesis hash, so a deleted head is caught too.
        Chain { prev: GENESIS.to_string(), seq: 0, records: 0 }
    }

    fn check(&mut self, at: &str, line: &[u8]) -> Result<(), String> {
        let text =
            std::str::from_utf8(line).map_err(|_| format!("{at}: edited or damaged (the line is not UTF-8 text)"))?;
        let record: AuditRecord =
            serde_json::from_str(text).map_err(|e| format!("{at}: edited or damaged (not an audit record: {e})"))?;
        let (body, stored) = unseal(text).ok_or_else(|| format!("{at}: seq {}: edited (no hash)", record.seq))?;
        if chain_hash(&record.prev, &body) != stored {
            return Err(format!("{at}: seq {}: edited (its hash does not match its content)", record.seq));
        }
        let expected = self.seq.saturating_add(1);
        if record.seq != expected {
            return Err(if self.records == 0 {
                format!(
                    "{at}: seq {}: the log starts at seq {} instead of 1: earlier records or rotated files were deleted",
                    record.seq, record.seq
                )
            } else {
                format!("{at}: seq {} where {expected} was expected: deleted or reordered (seq gap)", record.seq)
            });
        }
        if record.prev != self.prev {
            return Err(format!(
                "{at}: seq {}: chain broken (prev does not match the previous record's hash)",
                record.seq
            ));
        }
        self.prev = record.hash;
        self.seq = record.seq;
        self.records += 1;
        Ok(())
    }

    fn report(self, files: usize) -> VerifyReport {
        VerifyReport { files, records: self.records, last_seq: self.seq, last_hash: self.prev }
    }
}

/// One record and where it is in the log.
#[derive(Debug, Clone)]
pub struct Located {
    pub file: PathBuf,
    /// 1-based line number in `file`.
    pub line: usize,
    pub record: AuditRecord,
}

impl Located {
    /// `audit.jsonl.2:17`: the file's name and the line.
    pub fn at(&self) -> String {
        let name = self.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        format!("{name}:{}", self.line)
    }
}

/// Every record of `files` that can be read, with where it is, for tools that should still
/// answer about a damaged log (`audit explain`, `usage`, `sessions replay`); what could not be
/// read is listed in the second value (`file:line: why`), never skipped silently.
pub fn located_in(files: &[PathBuf]) -> (Vec<Located>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match lines(file) {
            Ok(lines) => {
                for (n, line) in lines {
                    match parse(file, n, &line) {
                        Ok(record) => out.push(Located { file: file.clone(), line: n, record }),
                        Err(e) => problems.push(e),
                    }
                }
            }
            Err(e) => problems.push(e),
        }
    }
    (out, problems)
}

/// How far a chain verifies: the intact prefix, and what broke it (if anything did).
#[derive(Debug, Clone, PartialEq)]
pub struct ChainStatus {
    /// The records verified before the first problem (all of them when `broken` is None).
    pub verified: VerifyReport,
    /// The first problem, as [`verify_files`] words it.
    pub broken: Option<String>,
}

/// [`verify_files`], also answering how much of the chain holds when it does not.
pub fn verify_prefix(files: &[PathBuf]) -> ChainStatus {
    let mut chain = Chain::new();
    let mut broken = None;
    'files: for file in files {
        match lines(file) {
            Ok(lines) => {
                for (n, line) in lines {
                    if let Err(e) = chain.check(&format!("{}:{n}", file.display()), &line) {
                        broken = Some(e);
                        break 'files;
                    }
                }
            }
            Err(e) => {
                broken = Some(e);
                break;
            }
        }
    }
    if files.is_empty() {
        broken = Some("no audit log files".into());
    }
    ChainStatus { verified: chain.report(files.len()), broken }
}

/// Verifies one chain spread over `files`, oldest first (see [`files_in_order`]): every
/// record's hash matches its content ("edited"), `seq` goes up by exactly one ("deleted or
/// reordered (seq gap)"), and every `prev` is the previous record's hash ("chain broken"). The
/// error is the first bad line: file, line number, seq and what is wrong.
///
/// A hash chain detects edits, deletions and reordering anywhere before the last record, but
/// not a truncated tail (the last records removed), nor a chain rewritten from the start by
/// someone who can write the files; keep `VerifyReport::last_hash` elsewhere, or wait for
/// signed checkpoints (future work).
pub fn verify_files(files: &[PathBuf]) -> Result<VerifyReport, String> {
    let status = verify_prefix(files);
    match status.broken {
        None => Ok(status.verified),
        Some(e) => Err(e),
    }
}

/// [`verify_files`] over the log at `path` and its rotated files.
pub fn verify(path: &Path) -> Result<VerifyReport, String> {
    let files = files_in_order(path);
    if files.is_empty() {
        return Err(format!("{}: no audit log", path.display()));
    }
    verify_files(&files)
}

/// [`verify_files`] over log text held in memory (see `AuditLog::memory_text`); `name` is
/// used in the error.
pub fn verify_text(name: &str, text: &str) -> Result<VerifyReport, String> {
    let mut chain = Chain::new();
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !line.trim().is_empty() {
            chain.check(&format!("{name}:{}", n + 1), line.as_bytes())?;
        }
    }
    Ok(chain.report(1))
}

/// The last `n` records of the given files (oldest first). Reads from the newest file back
/// and stops once it has `n`, so old files are neither read nor required to parse.
pub fn tail_in(files: &[PathBuf], n: usize) -> Result<Vec<AuditRecord>, String> {
    let mut newest_first = Vec::new();
    for file in files.iter().rev() {
        if newest_first.len() >= n {
            break;
        }
        for (at, line) in lines(file)?.iter().rev().take(n - newest_first.len()) {
            newest_first.push(parse(file, *at, line)?);
        }
    }
    newest_first.reverse();
    Ok(newest_first)
}

/// The last `n` records of the log at `path`, across rotated files.
pub fn tail(path: &Path, n: usize) -> Result<Vec<AuditRecord>, String> {
    tail_in(&files_in_order(path), n)
}

/// Records of one session in the given files, given its id or its handle.
pub fn by_session_in(files: &[PathBuf], session: &str) -> Result<Vec<AuditRecord>, String> {
    let handle = super::session_handle(session);
    Ok(records_in(files)?.into_iter().filter(|r| r.session == session || r.session == handle).collect())
}

/// Records of one session in the log at `path`, given its id or its handle.
pub fn by_session(path: &Path, session: &str) -> Result<Vec<AuditRecord>, String> {
    by_session_in(&files_in_order(path), session)
}

/// At most `max` characters of `s`, with control characters, bidi overrides and invisible
/// format characters escaped, so a tool name or rule id from the log cannot move the cursor,
/// recolour the terminal or fake a second line.
pub fn printable(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}') =>
            {
                out.push_str(&c.escape_unicode().to_string())
            }
            c => out.push(c),
        }
    }
    out
}

/// One human-readable line: time, seq, phase, decision, session (short), principal, tool,
/// rule, outcome, latency. Text from the record is escaped and shortened (see `printable`).
pub fn format_line(r: &AuditRecord) -> String {
    const FIELD: usize = 120;
    format!(
        "{} #{:<6} {:<9} {:<10} session {} {} → {}{}{}{}",
        printable(&r.ts, 40),
        r.seq,
        printable(&r.phase, 20),
        printable(&r.decision, 20),
        printable(&r.session.chars().take(8).collect::<String>(), 8),
        printable(&r.principal, FIELD),
        printable(&r.tool, FIELD),
        r.rule.as_ref().map(|x| format!("  rule {}", printable(x, FIELD))).unwrap_or_default(),
        r.outcome.as_ref().map(|x| format!("  {}", printable(x, 40))).unwrap_or_default(),
        r.latency_us.map(|x| format!("  {:.1} ms", x as f64 / 1000.0)).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::sink::AuditLog;
    use crate::audit::{chain_hash, unseal};
    use proptest::prelude::*;
    use serde_json::Value;

    async fn write_log(dir: &Path, n: usize) -> PathBuf {
        let path = dir.join("audit.jsonl");
        let log = AuditLog::open(&path, 1 << 30).unwrap();
        for i in 0..n {
            let r = AuditRecord {
                phase: "completed".into(),
                tool: format!("tool{i}"),
                session: format!("s{}", i % 3),
                decision: "allow".into(),
                latency_us: Some(i as u64 * 10),
                meta: Some(serde_json::json!({"progressToken": i, "traceparent": "00-ab-cd-01"})),
                ..Default::default()
            };
            log.append(r, false).await.unwrap();
        }
        path
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    /// Changes the value of the `pick`-th member (not `hash`) to another of the same type.
    fn edit_field(line: &str, pick: usize) -> String {
        let mut v: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
        let keys: Vec<String> = v.keys().filter(|k| *k != "hash").cloned().collect();
        let key = &keys[pick % keys.len()];
        let new = match &v[key] {
            Value::String(s) => Value::String(format!("{s}x")),
            Value::Number(n) => Value::from(n.as_u64().map_or(1, |n| n + 1)),
            Value::Bool(b) => Value::Bool(!b),
            Value::Object(m) => {
                let mut m = m.clone();
                m.insert("injected".into(), Value::Bool(true));
                Value::Object(m)
            }
            other => Value::Array(vec![other.clone()]),
        };
        v.insert(key.clone(), new);
        serde_json::to_string(&v).unwrap()
    }

    /// Recomputes a line's own hash after an edit, as a forger would.
    fn reseal(line: &str) -> String {
        let mut v: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
        v.remove("hash");
        let body = serde_json::to_string(&v).unwrap();
        let hash = chain_hash(v["prev"].as_str().unwrap(), &body);
        format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any single edit (a character, or a field's value, with or without recomputing that
        /// record's hash), deletion or swap is detected; only the tail is out of reach.
        #[test]
        fn tampering_is_detected(n in 3usize..12, victim in 0usize..12, other in 0usize..12, kind in 0u8..5, byte in 0usize..400) {
            let dir = tempfile::tempdir().unwrap();
            let path = rt().block_on(write_log(dir.path(), n));
            let mut all: Vec<String> = std::fs::read_to_string(&path).unwrap().lines().map(str::to_string).collect();
            let victim = victim % n;
            match kind {
                0 => {
                    // Flip one character of the content (not the stored hash).
                    let line = all[victim].clone();
                    let limit = line.rfind(",\"hash\"").unwrap();
                    let mut chars: Vec<char> = line.chars().collect();
                    let at = byte % limit;
                    chars[at] = if chars[at] == 'x' { 'y' } else { 'x' };
                    let edited: String = chars.into_iter().collect();
                    prop_assume!(edited != line);
                    all[victim] = edited;
                }
                1 => {
                    prop_assume!(victim + 1 < n); // deleting the tail is not detectable by a chain
                    all.remove(victim);
                }
                2 => {
                    let other = other % n;
                    prop_assume!(other != victim);
                    all.swap(victim, other);
                }
                3 => all[victim] = edit_field(&all[victim], byte),
                _ => {
                    prop_assume!(victim + 1 < n); // a forged last record is the tail again
                    all[victim] = reseal(&edit_field(&all[victim], byte));
                }
            }
            std::fs::write(&path, all.join("\n") + "\n").unwrap();
            let err = verify(&path).unwrap_err();
            prop_assert!(err.contains("audit.jsonl:"), "{}", err);
        }

        /// Garbage (arbitrary bytes, or a real log with bytes spliced in) is an error or a
        /// result from every reader, never a panic; and the log still opens or refuses cleanly.
        #[test]
        fn readers_never_panic(garbage in prop::collection::vec(any::<u8>(), 0..600), at in 0usize..4000, real in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            let path = if real {
                let path = rt().block_on(write_log(dir.path(), 4));
                let mut bytes = std::fs::read(&path).unwrap();
                let at = at % bytes.len();
                bytes.splice(at..at, garbage);
                std::fs::write(&path, bytes).unwrap();
                path
            } else {
                let path = dir.path().join("audit.jsonl");
                std::fs::write(&path, garbage).unwrap();
                path
            };
            let _ = verify(&path);
            let _ = verify_text("mem", &String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
            let _ = by_session(&path, "s1");
            let _ = last_record(&path);
            for r in records(&path).unwrap_or_default().iter().chain(tail(&path, 3).unwrap_or_default().iter()) {
                prop_assert!(!format_line(r).contains('\n'));
            }
            if let Ok(log) = AuditLog::open(&path, 1 << 20) {
                let _ = rt().block_on(log.append(AuditRecord::default(), true));
            }
        }
    }

    #[test]
    fn views() {
        let dir = tempfile::tempdir().unwrap();
        let path = rt().block_on(write_log(dir.path(), 7));
        let report = verify(&path).unwrap();
        assert_eq!((report.records, report.last_seq), (7, 7));
        assert_eq!(report.last_hash, tail(&path, 1).unwrap()[0].hash);
        assert_eq!(tail(&path, 2).unwrap().len(), 2);
        assert_eq!(tail(&path, 100).unwrap().len(), 7);
        assert_eq!(by_session(&path, "s1").unwrap().len(), 2);
        assert!(format_line(&tail(&path, 1).unwrap()[0]).contains("tool6"));
    }

    #[test]
    fn rotated_files_are_read_in_chain_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, 400).unwrap();
        rt().block_on(async {
            for i in 0..20 {
                let r = AuditRecord {
                    phase: "denied".into(),
                    tool: format!("t{i}"),
                    session: "s".into(),
                    ..Default::default()
                };
                log.append(r, false).await.unwrap();
            }
        });
        let files = files_in_order(&path);
        assert!(files.len() > 3, "{files:?}");
        let report = verify_files(&files).unwrap();
        assert_eq!((report.files, report.records), (files.len(), 20));
        let seqs: Vec<u64> = tail(&path, 5).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [16, 17, 18, 19, 20]);
        assert_eq!(by_session_in(&files, "s").unwrap().len(), 20);
        // tail reads from the newest file back: damage in the oldest file does not stop it.
        std::fs::write(&files[0], "garbage\n").unwrap();
        assert_eq!(tail(&path, 2).unwrap().len(), 2);
        assert!(verify(&path).unwrap_err().contains("audit.jsonl.1:1"));
    }

    #[test]
    fn a_deleted_head_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = rt().block_on(write_log(dir.path(), 4));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.lines().skip(2).collect::<Vec<_>>().join("\n")).unwrap();
        let err = verify(&path).unwrap_err();
        assert!(err.contains("starts at seq 3"), "{err}");
    }

    #[test]
    fn verify_text_checks_an_in_memory_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = rt().block_on(write_log(dir.path(), 3));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(verify_text("mem", &text).unwrap().records, 3);
        let edited = text.replacen("tool1", "tool9", 1);
        assert!(verify_text("mem", &edited).unwrap_err().starts_with("mem:2: seq 2: edited"));
        let (body, _) = unseal(text.lines().next().unwrap()).unwrap();
        assert!(body.ends_with('}') && !body.contains("\"hash\""));
    }

    #[test]
    fn format_line_escapes_and_never_panics() {
        let r = AuditRecord {
            ts: "2026-01-01T00:00:00.000000Z".into(),
            phase: "completed".into(),
            session: "aéééééééé".into(), // byte 8 is inside a character
            tool: "evil\n{\"decision\":\"allow\"}\u{1b}[2J\u{202E}gpj.exe".into(),
            rule: Some("r\r1".into()),
            principal: "p".repeat(10_000),
            ..Default::default()
        };
        let line = format_line(&r);
        assert!(!line.contains(['\n', '\r', '\u{1b}', '\u{202E}']), "{line}");
        assert!(line.contains("evil\\n{\"decision\""), "{line}");
        assert!(line.contains("\\u{1b}[2J") && line.contains("\\u{202e}"), "{line}");
        assert!(line.contains("session aééééééé "), "{line}");
        assert!(line.len() < 600, "{}", line.len());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "not json\n{\"a\":1}\n").unwrap();
        assert!(verify(&path).unwrap_err().contains("audit.jsonl:1: edited or damaged"));
        std::fs::write(&path, b"\xff\xfe\n").unwrap();
        assert!(verify(&path).unwrap_err().contains("not UTF-8"));
        assert!(records(&path).unwrap_err().contains("audit.jsonl:1"));
        // Not a regular file: refused, not read for ever.
        assert!(verify_files(&[PathBuf::from("/dev/zero")]).unwrap_err().contains("not a regular file"));
        assert!(verify_files(&[dir.path().to_path_buf()]).is_err());
        assert!(verify_files(&[]).is_err());
    }
}
