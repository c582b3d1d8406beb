//! The JSON-lines audit file: appends in chain order, durable on request, rotation by size
//! that keeps the chain across files, and an exclusive lock so two gateways never interleave
//! one chain.

use super::read::{files_in_order, last_record, rotated_files};
use super::{AuditRecord, GENESIS, now_rfc3339, seal};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

struct State {
    file: Flock<File>,
    seq: u64,
    prev: String,
    size: u64,
}

pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
}

fn open_locked(path: &Path) -> Result<Flock<File>, String> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open audit log {}: {e}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        format!("audit log {} is locked by another process ({e}); give each gateway its own file", path.display())
    })
}

/// Makes the directory entries for `path` durable (a new file, a rename), so that after a
/// power loss an fsynced record is not in a file the directory has forgotten.
fn sync_dir(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("cannot sync directory {}: {e}", dir.display()))
}

impl AuditLog {
    /// Opens (or creates) the log at `path`, continuing the chain of what is already there.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Arc<AuditLog>, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let file = open_locked(path)?;
        sync_dir(path)?;
        let mut last = None;
        for f in files_in_order(path).iter().rev() {
            if let Some(r) = last_record(f)? {
                last = Some(r);
                break;
            }
        }
        let (seq, prev) = last.map(|r| (r.seq, r.hash)).unwrap_or((0, GENESIS.to_string()));
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Arc::new(AuditLog {
            path: path.to_path_buf(),
            max_bytes,
            state: Mutex::new(State { file, seq, prev, size }),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record (filling `ts`, `seq`, `prev`, `hash`). With `durable`, the record is
    /// on disk (fsync) before this returns: the rule for admitting a call that may write.
    pub async fn append(self: &Arc<Self>, record: AuditRecord, durable: bool) -> Result<AuditRecord, String> {
        let log = self.clone();
        tokio::task::spawn_blocking(move || log.append_now(record, durable))
            .await
            .map_err(|e| format!("audit writer failed: {e}"))?
    }

    fn append_now(&self, mut record: AuditRecord, durable: bool) -> Result<AuditRecord, String> {
        let mut state = self.state.lock().map_err(|_| "audit log lock poisoned".to_string())?;
        record.ts = now_rfc3339();
        record.seq = state.seq + 1;
        record.prev = state.prev.clone();
        let mut line = seal(&mut record);
        line.push('\n');
        (&*state.file)
            .write_all(line.as_bytes())
            .map_err(|e| format!("cannot write audit log {}: {e}", self.path.display()))?;
        if durable {
            state.file.sync_data().map_err(|e| format!("cannot sync audit log {}: {e}", self.path.display()))?;
        }
        state.seq = record.seq;
        state.prev = record.hash.clone();
        state.size += line.len() as u64;
        if state.size >= self.max_bytes {
            self.rotate(&mut state)?;
        }
        Ok(record)
    }

    /// Moves the full file aside as `<path>.<N>` (N one above the highest rotated file, never
    /// an existing one) and starts a new one; the chain continues.
    fn rotate(&self, state: &mut State) -> Result<(), String> {
        state.file.sync_data().map_err(|e| format!("cannot sync audit log before rotation: {e}"))?;
        let next = rotated_files(&self.path).last().map_or(1, |(n, _)| n.saturating_add(1));
        let rotated = PathBuf::from(format!("{}.{next}", self.path.display()));
        if rotated.exists() {
            return Err(format!("cannot rotate audit log: {} already exists", rotated.display()));
        }
        std::fs::rename(&self.path, &rotated).map_err(|e| format!("cannot rotate audit log: {e}"))?;
        state.file = open_locked(&self.path)?;
        state.size = 0;
        sync_dir(&self.path)?;
        tracing::info!(rotated = %rotated.display(), "audit log rotated");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::read::verify;

    fn record(tool: &str) -> AuditRecord {
        AuditRecord { phase: "completed".into(), tool: tool.into(), decision: "allow".into(), ..Default::default() }
    }

    #[tokio::test]
    async fn chain_continues_after_reopen_and_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, 600).unwrap();
        for i in 0..3 {
            log.append(record(&format!("t{i}")), i == 0).await.unwrap();
        }
        drop(log);
        let log = AuditLog::open(&path, 600).unwrap();
        let r = log.append(record("after-reopen"), false).await.unwrap();
        assert_eq!(r.seq, 4);
        for i in 0..6 {
            log.append(record(&format!("more{i}")), false).await.unwrap();
        }
        assert!(files_in_order(&path).len() > 1, "expected rotation");
        let report = verify(&path).unwrap();
        assert_eq!(report.records, 10);
    }

    /// Retention removed the oldest rotated file, and the gateway restarted just after a
    /// rotation (the current file empty): the chain must continue from the newest rotated
    /// file, and the next rotation must not reuse the freed number.
    #[tokio::test]
    async fn chain_continues_when_the_oldest_rotated_file_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, 1).unwrap(); // every record rotates
        for i in 0..5 {
            log.append(record(&format!("t{i}")), false).await.unwrap();
        }
        drop(log);
        std::fs::remove_file(dir.path().join("audit.jsonl.1")).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        let log = AuditLog::open(&path, 1).unwrap();
        let r = log.append(record("after"), false).await.unwrap();
        assert_eq!(r.seq, 6);
        assert!(dir.path().join("audit.jsonl.6").exists());
        assert!(!dir.path().join("audit.jsonl.1").exists());
        let files = files_in_order(&path);
        assert_eq!(files.first().unwrap(), &dir.path().join("audit.jsonl.2"));
        // The head is gone, so verify says so; from .2 on, the chain links up.
        let err = verify(&path).unwrap_err();
        assert!(err.contains("audit.jsonl.2:1") && err.contains("seq 2"), "{err}");
    }

    #[test]
    fn rotated_files_are_ordered_by_number_and_only_canonical_names_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        for name in
            ["audit.jsonl.10", "audit.jsonl.9", "audit.jsonl.01", "audit.jsonl.2.gz", "audit.jsonl.x", "other.1"]
        {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let found: Vec<u64> = rotated_files(&path).into_iter().map(|(n, _)| n).collect();
        assert_eq!(found, [9, 10]);
    }

    #[tokio::test]
    async fn a_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let _first = AuditLog::open(&path, 1 << 20).unwrap();
        assert!(AuditLog::open(&path, 1 << 20).err().unwrap().contains("locked"));
    }

    #[tokio::test]
    async fn injected_newlines_stay_inside_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, 1 << 20).unwrap();
        log.append(record("evil\n{\"decision\":\"allow\"}"), false).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(verify(&path).is_ok());
    }
}
