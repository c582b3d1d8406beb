//! The live policy: swapped atomically on reload, so every call sees one whole policy.
//!
//! Hot reload watches the policy directory. A valid new policy applies to calls that start
//! after the swap; an invalid one is rejected, the old one stays, and the reason is logged and
//! kept in [`PolicyHandle::last_error`].

use super::Policy;
use arc_swap::ArcSwap;
use notify_debouncer_full::notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct PolicyHandle {
    current: ArcSwap<Policy>,
    dir: Option<PathBuf>,
    last_error: Mutex<Option<String>>,
}

/// Keeps the directory watch alive; dropping it stops hot reload.
pub struct Watch(#[allow(dead_code)] Debouncer<notify_debouncer_full::notify::RecommendedWatcher, RecommendedCache>);

impl PolicyHandle {
    pub fn fixed(policy: Policy) -> Arc<PolicyHandle> {
        Arc::new(PolicyHandle { current: ArcSwap::from_pointee(policy), dir: None, last_error: Mutex::new(None) })
    }

    /// Loads `dir` now; fails if the policy there is invalid (a bad policy stops startup).
    pub fn from_dir(dir: &Path) -> Result<Arc<PolicyHandle>, String> {
        let policy = Policy::load_dir(dir)?;
        tracing::info!(dir = %dir.display(), version = %policy.version, "policy loaded");
        Ok(Arc::new(PolicyHandle {
            current: ArcSwap::from_pointee(policy),
            dir: Some(dir.to_path_buf()),
            last_error: Mutex::new(None),
        }))
    }

    /// The policy for a call that starts now.
    pub fn load(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// Why the last reload was rejected, if it was.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("last_error lock").clone()
    }

    /// Re-reads the directory: swaps in a valid policy, keeps the old one otherwise.
    pub fn reload(&self) -> Result<String, String> {
        let Some(dir) = &self.dir else { return Err("no policy directory to reload".into()) };
        match Policy::load_dir(dir) {
            Ok(policy) => {
                let version = policy.version.clone();
                if version != self.current.load().version {
                    tracing::info!(version = %version, "policy reloaded");
                }
                self.current.store(Arc::new(policy));
                *self.last_error.lock().expect("last_error lock") = None;
                Ok(version)
            }
            Err(e) => {
                tracing::error!(error = %e, kept = %self.current.load().version, "policy reload rejected; keeping the previous policy");
                *self.last_error.lock().expect("last_error lock") = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Starts hot reload on the policy directory (no-op without one).
    pub fn watch(self: &Arc<Self>) -> Result<Option<Watch>, String> {
        let Some(dir) = self.dir.clone() else { return Ok(None) };
        let handle = Arc::downgrade(self);
        // Editors write a file in several events; debounce so one save is one reload.
        let watched = dir.clone();
        let mut debouncer = new_debouncer(Duration::from_millis(200), None, move |result: DebounceEventResult| {
            let (Ok(events), Some(h)) = (result, handle.upgrade()) else { return };
            // Only what the policy reads reloads it: another file kept in the directory (an audit
            // log is written twice per call) would otherwise reload it every 200 ms under load.
            let current = h.load();
            if events.iter().flat_map(|e| e.paths.iter()).any(|p| current.depends_on(&watched, p)) {
                let _ = h.reload();
            }
        })
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        debouncer.watch(&dir, RecursiveMode::Recursive).map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        Ok(Some(Watch(debouncer)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_reload_keeps_the_old_policy_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, "[[upstream]]\nname = \"a\"\nallow = [\"x\"]\n").unwrap();
        let handle = PolicyHandle::from_dir(dir.path()).unwrap();
        let before = handle.load().version.clone();
        std::fs::write(&file, "[[upstream]]\nname = \"a\"\nallow = 3\n").unwrap();
        assert!(handle.reload().is_err());
        assert_eq!(handle.load().version, before);
        assert!(handle.last_error().unwrap().contains("p.toml"));
        std::fs::write(&file, "[[upstream]]\nname = \"a\"\nallow = [\"y\"]\n").unwrap();
        assert_ne!(handle.reload().unwrap(), before);
        assert!(handle.last_error().is_none());
        assert!(handle.load().allowlist(&crate::policy::Roles::none(), "a", "y").allowed);
    }
}
