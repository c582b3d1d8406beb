//! The JSON-lines audit file: appends in chain order, durable on request, rotation by size
//! that keeps the chain across files, and an exclusive lock so two gateways never interleave
//! one chain. Also an in-memory log for tests.
//!
//! Invariant: `State::{seq, prev, size}` describe what is in the current file. A write that
//! fails part-way is cut back off the file (or, if that fails too, the log refuses further
//! appends until reopened, when it recovers from the file itself); a record that reached the
//! file advances the chain even if the fsync after it failed, so the next record never reuses
//! its seq.

use super::read::{files_in_order, last_record, rotated_files};
use super::{AuditRecord, GENESIS, now_rfc3339, seal};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where the lines go.
enum Target {
    File(Flock<File>),
    Memory(Memory),
}

/// The in-memory log's bytes, and (in tests) the faults to inject.
#[derive(Default)]
struct Memory {
    bytes: Vec<u8>,
    #[cfg(test)]
    faults: tests::Faults,
}

impl Memory {
    fn write_all(&mut self, line: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(keep) = self.faults.torn_write.take() {
            self.bytes.extend_from_slice(&line[..keep.min(line.len())]);
            return Err(std::io::Error::other("injected: disk full"));
        }
        self.bytes.extend_from_slice(line);
        Ok(())
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        #[cfg(test)]
        if std::mem::take(&mut self.faults.sync_fails) {
            return Err(std::io::Error::other("injected: I/O error on fsync"));
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        #[cfg(test)]
        if std::mem::take(&mut self.faults.truncate_fails) {
            return Err(std::io::Error::other("injected: cannot truncate"));
        }
        self.bytes.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(())
    }
}

impl Target {
    fn write_all(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Target::File(file) => (&**file).write_all(line),
            Target::Memory(m) => m.write_all(line),
        }
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        match self {
            Target::File(file) => file.sync_data(),
            Target::Memory(m) => m.sync_data(),
        }
    }

    /// Cuts the file back to `len` bytes (removes a partial line).
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        match self {
            Target::File(file) => file.set_len(len),
            Target::Memory(m) => m.truncate(len),
        }
    }
}

struct State {
    target: Target,
    seq: u64,
    prev: String,
    size: u64,
    /// Set when the file may hold a partial line that could not be removed: no more appends.
    broken: Option<String>,
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

/// Whether a non-empty file lacks its final newline (a crash just before it was written).
fn lacks_final_newline(path: &Path, size: u64) -> Result<bool, String> {
    if size == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    File::open(path)
        .and_then(|mut f| f.seek(SeekFrom::Start(size - 1)).and_then(|_| f.read_exact(&mut last)))
        .map_err(|e| format!("cannot read audit log {}: {e}", path.display()))?;
    Ok(last[0] != b'\n')
}

impl AuditLog {
    /// Opens (or creates) the log at `path`, continuing the chain of what is already there:
    /// `seq` and `prev` come from the last record of the newest file that has one. Fails if
    /// that record is unreadable (a torn or edited tail), rather than fork the chain.
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
        let mut size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if lacks_final_newline(path, size)? {
            // The last record is whole (it parsed) but its newline never made it: add it, or the
            // next record would be glued onto the same line.
            (&*file).write_all(b"\n").map_err(|e| format!("cannot write audit log {}: {e}", path.display()))?;
            size += 1;
        }
        Ok(Arc::new(AuditLog {
            path: path.to_path_buf(),
            max_bytes,
            state: Mutex::new(State { target: Target::File(file), seq, prev, size, broken: None }),
        }))
    }

    /// A log kept in memory (never rotated), for tests of code that writes records. Its lines
    /// are in [`AuditLog::memory_text`].
    pub fn memory() -> Arc<AuditLog> {
        Arc::new(AuditLog {
            path: PathBuf::new(),
            max_bytes: u64::MAX,
            state: Mutex::new(State {
                target: Target::Memory(Memory::default()),
                seq: 0,
                prev: GENESIS.to_string(),
                size: 0,
                broken: None,
            }),
        })
    }

    /// The JSON lines of an in-memory log; `None` for a file.
    pub fn memory_text(&self) -> Option<String> {
        let state = self.state.lock().ok()?;
        match &state.target {
            Target::Memory(m) => Some(String::from_utf8_lossy(&m.bytes).into_owned()),
            Target::File(_) => None,
        }
    }

    /// The file's path (empty for an in-memory log).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line (filling `ts`, `seq`, `prev`, `hash`) and answers it as
    /// written. With `durable`, the record is on disk (fsync) before this returns: the rule for
    /// admitting a call that may write. `Err` means the record may not be in the log: fail
    /// the call closed.
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

    /// Appends without waiting, for callers that cannot (a destructor) or need not (a refusal
    /// already answered): the append runs as its own task, and a failure is logged as "could not
    /// record {what}".
    pub fn append_detached(self: &Arc<Self>, record: AuditRecord, what: &'static str) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let log = self.clone();
        rt.spawn(async move {
            if let Err(e) = log.append(record, false).await {
                tracing::error!(error = %e, "could not record {what}");
            }
        });
    }

    fn append_now(&self, mut record: AuditRecord, durable: bool) -> Result<AuditRecord, String> {
        let mut state = self.state.lock().map_err(|_| "audit log lock poisoned".to_string())?;
        if let Some(reason) = &state.broken {
            return Err(format!("audit log {} unusable until reopened: {reason}", self.path.display()));
        }
        // Rotate before writing, so a failed rotation leaves this record unwritten, not half-reported.
        if state.size > 0 && state.size >= self.max_bytes {
            self.rotate(&mut state)?;
        }
        record.ts = now_rfc3339();
        record.seq = state.seq.checked_add(1).ok_or("audit log seq exhausted")?;
        record.prev = state.prev.clone();
        let mut line = seal(&mut record)?;
        line.push('\n');
        if let Err(e) = state.target.write_all(line.as_bytes()) {
            // Part of the line may be in the file: cut it off so the next record starts clean.
            let size = state.size;
            if let Err(t) = state.target.truncate(size) {
                state.broken = Some(format!("a failed write left a partial line that could not be removed ({t})"));
            }
            return Err(format!("cannot write audit log {}: {e}", self.path.display()));
        }
        // The line is in the file: the chain moves on whatever the fsync says.
        state.seq = record.seq;
        state.prev = record.hash.clone();
        state.size += line.len() as u64;
        if durable {
            state.target.sync_data().map_err(|e| format!("cannot sync audit log {}: {e}", self.path.display()))?;
        }
        Ok(record)
    }

    /// Moves the full file aside as `<path>.<N>` (N one above the highest rotated file, never
    /// an existing one) and starts a new one; the chain continues.
    fn rotate(&self, state: &mut State) -> Result<(), String> {
        if matches!(state.target, Target::Memory(_)) {
            return Ok(());
        }
        state.target.sync_data().map_err(|e| format!("cannot sync audit log before rotation: {e}"))?;
        let next = rotated_files(&self.path).last().map_or(1, |(n, _)| n.saturating_add(1));
        let rotated = PathBuf::from(format!("{}.{next}", self.path.display()));
        if rotated.exists() {
            return Err(format!("cannot rotate audit log: {} already exists", rotated.display()));
        }
        std::fs::rename(&self.path, &rotated).map_err(|e| format!("cannot rotate audit log: {e}"))?;
        match open_locked(&self.path) {
            Ok(file) => state.target = Target::File(file),
            Err(e) => {
                // Writing on would put records in the rotated file: stop here.
                state.broken = Some(format!("rotated to {} but could not start a new file: {e}", rotated.display()));
                return Err(e);
            }
        }
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

    /// Faults the in-memory target injects, each once.
    #[derive(Default)]
    pub(super) struct Faults {
        /// The next write stores this many bytes of the line, then fails (disk full).
        pub torn_write: Option<usize>,
        pub sync_fails: bool,
        pub truncate_fails: bool,
    }

    fn inject(log: &AuditLog, f: impl FnOnce(&mut Faults)) {
        let mut state = log.state.lock().unwrap();
        let Target::Memory(m) = &mut state.target else { panic!("not a memory log") };
        f(&mut m.faults);
    }

    fn verify_memory(log: &AuditLog) -> Result<crate::audit::read::VerifyReport, String> {
        crate::audit::read::verify_text("memory", &log.memory_text().unwrap())
    }

    #[tokio::test]
    async fn memory_log_chains() {
        let log = AuditLog::memory();
        for i in 0..3 {
            let r = log.append(record(&format!("t{i}")), true).await.unwrap();
            assert_eq!(r.seq, i + 1);
        }
        assert_eq!(verify_memory(&log).unwrap().records, 3);
        assert!(log.path().as_os_str().is_empty());
    }

    /// Disk full in the middle of a line: the call fails, the fragment is removed, and once
    /// there is room again the chain goes on as if the failed record had never been tried.
    #[tokio::test]
    async fn a_torn_write_is_cut_off_and_the_chain_goes_on() {
        let log = AuditLog::memory();
        log.append(record("a"), false).await.unwrap();
        inject(&log, |f| f.torn_write = Some(10));
        assert!(log.append(record("b"), true).await.unwrap_err().contains("disk full"));
        assert_eq!(log.memory_text().unwrap().lines().count(), 1);
        let r = log.append(record("c"), false).await.unwrap();
        assert_eq!(r.seq, 2);
        assert_eq!(verify_memory(&log).unwrap().records, 2);
    }

    /// The line reached the file but the fsync failed: the call fails (not known durable), yet
    /// the record is in the file, so the next one must follow it, not reuse its seq.
    #[tokio::test]
    async fn a_failed_fsync_still_advances_the_chain() {
        let log = AuditLog::memory();
        log.append(record("a"), true).await.unwrap();
        inject(&log, |f| f.sync_fails = true);
        assert!(log.append(record("b"), true).await.unwrap_err().contains("sync"));
        let r = log.append(record("c"), true).await.unwrap();
        assert_eq!(r.seq, 3);
        assert_eq!(verify_memory(&log).unwrap().records, 3);
    }

    /// A fragment that cannot be removed would corrupt the next line: refuse until reopened.
    #[tokio::test]
    async fn an_unremovable_fragment_stops_the_log() {
        let log = AuditLog::memory();
        inject(&log, |f| {
            f.torn_write = Some(5);
            f.truncate_fails = true;
        });
        assert!(log.append(record("a"), false).await.is_err());
        let err = log.append(record("b"), false).await.unwrap_err();
        assert!(err.contains("unusable until reopened"), "{err}");
    }

    /// A crash after a whole record but before its newline: reopening adds the newline.
    #[tokio::test]
    async fn a_missing_final_newline_is_restored_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, 1 << 20).unwrap();
        log.append(record("a"), true).await.unwrap();
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.trim_end()).unwrap();
        let log = AuditLog::open(&path, 1 << 20).unwrap();
        assert_eq!(log.append(record("b"), false).await.unwrap().seq, 2);
        assert_eq!(verify(&path).unwrap().records, 2);
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
    /// file, and the next rotation must not reuse the freed number. (Before the fix: seq 1
    /// from genesis, written to `.1`, so the newest records read as the oldest.)
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
        // A crash between rotating and the next write leaves the current file empty.
        std::fs::rename(&path, dir.path().join("audit.jsonl.5")).unwrap();
        let log = AuditLog::open(&path, 1).unwrap();
        let r = log.append(record("after"), false).await.unwrap();
        assert_eq!(r.seq, 6);
        log.append(record("rotates"), false).await.unwrap();
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
        // A fake hash member inside a value must not confuse where the body ends either.
        let tool = "x\r\n{\"seq\":1,\"decision\":\"allow\",\"hash\":\"00\"}\u{2028}";
        let args = serde_json::json!({"cmd": "rm -rf /\n{\"decision\":\"allow\"}", "k\n": ",\"hash\":\"00\"}"});
        let r = AuditRecord { decision: "deny".into(), args_redacted: Some(args.clone()), ..record(tool) };
        log.append(r, false).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(!text.trim_end().contains(['\r']));
        assert_eq!(verify(&path).unwrap().records, 2);
        let back = crate::audit::read::records(&path).unwrap();
        assert_eq!(back[0].tool, "evil\n{\"decision\":\"allow\"}");
        assert_eq!((back[1].tool.as_str(), back[1].decision.as_str()), (tool, "deny"));
        assert_eq!(back[1].args_redacted.as_ref(), Some(&args));
    }
}
