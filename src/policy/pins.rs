//! Tool-definition pinning, the rug-pull defence: the first definition seen of each tool (its
//! digest over name, description, schemas and annotations) is pinned; a later, different
//! definition blocks the tool until an operator approves it (`tollgate pins approve`).
//!
//! Pins persist in a JSON file when one is configured (the CLI edits the same file; the gateway
//! re-reads it when it changes), else they live for the process.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PinFile {
    /// `upstream/tool` → approved digest.
    #[serde(default)]
    pub pinned: BTreeMap<String, String>,
    /// `upstream/tool` → a changed digest waiting for approval.
    #[serde(default)]
    pub pending: BTreeMap<String, String>,
}

/// What listing a tool found against its pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinStatus {
    /// First time seen: now pinned.
    New,
    Unchanged,
    /// Differs from the pin: blocked until approved.
    Changed {
        pinned: String,
    },
}

pub struct PinStore {
    path: Option<PathBuf>,
    state: Mutex<(PinFile, Option<SystemTime>)>,
}

pub fn key(upstream: &str, tool: &str) -> String {
    format!("{upstream}/{tool}")
}

impl PinStore {
    pub fn in_memory() -> PinStore {
        PinStore { path: None, state: Mutex::new((PinFile::default(), None)) }
    }

    pub fn open(path: &Path) -> Result<PinStore, String> {
        let store = PinStore { path: Some(path.to_path_buf()), state: Mutex::new((PinFile::default(), None)) };
        store.refresh()?;
        Ok(store)
    }

    fn mtime(&self) -> Option<SystemTime> {
        self.path.as_ref().and_then(|p| std::fs::metadata(p).ok()).and_then(|m| m.modified().ok())
    }

    /// Re-reads the file if it changed on disk (an operator approved something).
    fn refresh(&self) -> Result<(), String> {
        let Some(path) = &self.path else { return Ok(()) };
        let mtime = self.mtime();
        let mut state = self.state.lock().expect("pins lock");
        if mtime.is_some() && state.1 == mtime {
            return Ok(());
        }
        state.0 = read(path)?;
        state.1 = mtime;
        Ok(())
    }

    fn save(&self, file: &PinFile) {
        if let Some(path) = &self.path
            && let Err(e) = write(path, file)
        {
            tracing::error!(path = %path.display(), error = %e, "cannot save tool pins");
        }
    }

    /// Records a listed definition and says how it compares with the pin.
    pub fn observe(&self, upstream: &str, tool: &str, digest: &str) -> PinStatus {
        if let Err(e) = self.refresh() {
            tracing::error!(error = %e, "cannot read tool pins; keeping the ones in memory");
        }
        let k = key(upstream, tool);
        let mut state = self.state.lock().expect("pins lock");
        let status = match state.0.pinned.get(&k) {
            None => {
                state.0.pinned.insert(k.clone(), digest.to_string());
                PinStatus::New
            }
            Some(p) if p == digest => {
                state.0.pending.remove(&k);
                PinStatus::Unchanged
            }
            Some(p) => {
                let pinned = p.clone();
                if state.0.pending.get(&k).map(String::as_str) != Some(digest) {
                    tracing::warn!(upstream, tool, pinned = %pinned, new = %digest, "tool definition changed; blocked until approved");
                    state.0.pending.insert(k.clone(), digest.to_string());
                }
                PinStatus::Changed { pinned }
            }
        };
        if status != PinStatus::Unchanged {
            let file = state.0.clone();
            drop(state);
            self.save(&file);
            if let Some(mtime) = self.mtime() {
                self.state.lock().expect("pins lock").1 = Some(mtime);
            }
        }
        status
    }

    /// Is a call to this definition allowed? `Err(pinned digest)` when it differs from the pin.
    pub fn check(&self, upstream: &str, tool: &str, digest: &str) -> Result<(), String> {
        let _ = self.refresh();
        let state = self.state.lock().expect("pins lock");
        match state.0.pinned.get(&key(upstream, tool)) {
            Some(p) if p != digest => Err(p.clone()),
            _ => Ok(()),
        }
    }
}

pub fn read(path: &Path) -> Result<PinFile, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PinFile::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes atomically (temp file + rename) so a reader never sees half a file.
pub fn write(path: &Path, file: &PinFile) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(file).expect("pins serialize");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `tollgate pins approve`: the pending definition becomes the pin.
pub fn approve(path: &Path, upstream: &str, tool: &str) -> Result<String, String> {
    let mut file = read(path)?;
    let k = key(upstream, tool);
    let digest =
        file.pending.remove(&k).ok_or_else(|| format!("no changed definition of {k} is waiting for approval"))?;
    file.pinned.insert(k, digest.clone());
    write(path, &file)?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_seen_is_pinned_and_a_change_blocks_until_approved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pins.json");
        let store = PinStore::open(&path).unwrap();
        assert_eq!(store.observe("fx", "t", "aaa"), PinStatus::New);
        assert_eq!(store.observe("fx", "t", "aaa"), PinStatus::Unchanged);
        assert!(store.check("fx", "t", "aaa").is_ok());
        assert_eq!(store.observe("fx", "t", "bbb"), PinStatus::Changed { pinned: "aaa".into() });
        assert_eq!(store.check("fx", "t", "bbb"), Err("aaa".into()));
        assert_eq!(approve(&path, "fx", "t").unwrap(), "bbb");
        assert!(store.check("fx", "t", "bbb").is_ok(), "the gateway sees the approval");
        assert!(approve(&path, "fx", "t").is_err());
    }
}
