//! The JSON-lines audit file: appends in chain order, durable on request, rotation by size
//! that keeps the chain across files, and an exclusive lock so two gateways never interleave
//! one chain.

use super::read::{files_in_order, last_record};
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

impl AuditLog {
    /// Opens (or creates) the log at `path`, continuing the chain of what is already there.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Arc<AuditLog>, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let file = open_locked(path)?;
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
        if !durable {
            // A write to the page cache is short; a thread hop would cost more than it.
            return self.append_now(record, false);
        }
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

    /// Moves the full file aside as `<path>.<N>` and starts a new one; the chain continues.
    fn rotate(&self, state: &mut State) -> Result<(), String> {
        state.file.sync_data().map_err(|e| format!("cannot sync audit log before rotation: {e}"))?;
        let next = files_in_order(&self.path).len();
        let rotated = PathBuf::from(format!("{}.{next}", self.path.display()));
        std::fs::rename(&self.path, &rotated).map_err(|e| format!("cannot rotate audit log: {e}"))?;
        state.file = open_locked(&self.path)?;
        state.size = 0;
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
