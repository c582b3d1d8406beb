//! Reading the audit log: files in chain order, verification, tail, per-session views.

use super::{AuditRecord, GENESIS, chain_hash, unseal};
use std::io::{BufRead, BufReader};
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

fn lines(path: &Path) -> Result<Vec<String>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    BufReader::new(file).lines().collect::<Result<_, _>>().map_err(|e| format!("{}: {e}", path.display()))
}

/// The last record of one file, if any.
pub fn last_record(path: &Path) -> Result<Option<AuditRecord>, String> {
    // Only regular files hold records (a device such as /dev/full would read for ever).
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let all = lines(path)?;
    match all.iter().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => {
            serde_json::from_str(line).map(Some).map_err(|e| format!("{}: last record unreadable: {e}", path.display()))
        }
        None => Ok(None),
    }
}

/// Every record of the log (all files, in order).
pub fn records(path: &Path) -> Result<Vec<AuditRecord>, String> {
    let mut out = Vec::new();
    for file in files_in_order(path) {
        for (n, line) in lines(&file)?.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            out.push(serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", file.display(), n + 1))?);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    pub files: usize,
    pub records: u64,
}

/// Checks every hash, every link to the previous record and that `seq` has no gaps. The error
/// names the file, the line and what is wrong.
pub fn verify(path: &Path) -> Result<VerifyReport, String> {
    let files = files_in_order(path);
    if files.is_empty() {
        return Err(format!("{}: no audit log", path.display()));
    }
    // The log starts at seq 1 from the genesis hash, so a deleted head is caught too.
    let mut prev = GENESIS.to_string();
    let mut expected_seq: u64 = 1;
    let mut records = 0;
    for file in &files {
        for (n, line) in lines(file)?.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{}:{}", file.display(), n + 1);
            let record: AuditRecord =
                serde_json::from_str(line).map_err(|e| format!("{at}: not an audit record ({e})"))?;
            let (body, stored) = unseal(line).ok_or_else(|| format!("{at}: record has no hash"))?;
            if chain_hash(&record.prev, &body) != stored {
                return Err(format!(
                    "{at}: seq {}: record was edited (its hash does not match its content)",
                    record.seq
                ));
            }
            if record.seq != expected_seq {
                return Err(format!(
                    "{at}: seq {} where {expected_seq} was expected: records deleted or reordered",
                    record.seq
                ));
            }
            if record.prev != prev {
                return Err(format!(
                    "{at}: seq {}: chain broken (prev does not match the previous record)",
                    record.seq
                ));
            }
            prev = record.hash.clone();
            expected_seq = record.seq + 1;
            records += 1;
        }
    }
    Ok(VerifyReport { files: files.len(), records })
}

/// The last `n` records.
pub fn tail(path: &Path, n: usize) -> Result<Vec<AuditRecord>, String> {
    let all = records(path)?;
    Ok(all[all.len().saturating_sub(n)..].to_vec())
}

/// Records of one session, given its id or its handle.
pub fn by_session(path: &Path, session: &str) -> Result<Vec<AuditRecord>, String> {
    let handle = super::session_handle(session);
    Ok(records(path)?.into_iter().filter(|r| r.session == session || r.session == handle).collect())
}

/// One human-readable line.
pub fn format_line(r: &AuditRecord) -> String {
    format!(
        "{} #{:<6} {:<9} {:<10} session {} {} → {}{}{}{}",
        r.ts,
        r.seq,
        r.phase,
        r.decision,
        &r.session[..r.session.len().min(8)],
        r.principal,
        r.tool,
        r.rule.as_ref().map(|x| format!("  rule {x}")).unwrap_or_default(),
        r.outcome.as_ref().map(|x| format!("  {x}")).unwrap_or_default(),
        r.latency_us.map(|x| format!("  {:.1} ms", x as f64 / 1000.0)).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::sink::AuditLog;
    use proptest::prelude::*;

    async fn write_log(dir: &Path, n: usize) -> PathBuf {
        let path = dir.join("audit.jsonl");
        let log = AuditLog::open(&path, 1 << 30).unwrap();
        for i in 0..n {
            let r = AuditRecord {
                phase: "completed".into(),
                tool: format!("tool{i}"),
                session: format!("s{}", i % 3),
                decision: "allow".into(),
                ..Default::default()
            };
            log.append(r, false).await.unwrap();
        }
        path
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any single edit, deletion or swap is detected.
        #[test]
        fn tampering_is_detected(n in 3usize..12, victim in 0usize..12, other in 0usize..12, kind in 0u8..3, byte in 0usize..200) {
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
                _ => {
                    let other = other % n;
                    prop_assume!(other != victim);
                    all.swap(victim, other);
                }
            }
            std::fs::write(&path, all.join("\n") + "\n").unwrap();
            prop_assert!(verify(&path).is_err());
        }
    }

    #[test]
    fn views() {
        let dir = tempfile::tempdir().unwrap();
        let path = rt().block_on(write_log(dir.path(), 7));
        assert_eq!(verify(&path).unwrap().records, 7);
        assert_eq!(tail(&path, 2).unwrap().len(), 2);
        assert_eq!(by_session(&path, "s1").unwrap().len(), 2);
        assert!(format_line(&tail(&path, 1).unwrap()[0]).contains("tool6"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "not json\n{\"a\":1}\n").unwrap();
        assert!(verify(&path).is_err());
    }
}
