//! Tool-definition pinning, the rug-pull defence: the first definition seen of each tool (its
//! digest over name, description, schemas and annotations) is pinned in the state store; a
//! later, different definition blocks the tool until an operator approves it (`tollgate pins
//! approve`, through the admin API of any replica).
//!
//! The gateway decides on a local copy (listing and calling must not wait for the store); the
//! store is the truth: a call that the copy would block re-reads its pin, so an approval given
//! through another replica takes effect at once. A changed definition waiting for approval is
//! kept in the store under the upstream name prefixed with [`PENDING`] (upstream names cannot
//! contain `:`), so any replica can approve it.

use super::store::{SessionStore, StoreError};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Marks the pin store entries that hold a changed definition waiting for approval.
pub const PENDING: &str = "pending:";

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

/// One row of `tollgate pins list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinRow {
    pub upstream: String,
    pub tool: String,
    pub pinned: String,
    /// A changed definition waiting for approval.
    pub pending: Option<String>,
}

#[derive(Default)]
struct Known {
    /// (upstream, tool) → pinned digest.
    pinned: BTreeMap<(String, String), String>,
    /// (upstream, tool) → changed digest waiting for approval.
    pending: BTreeMap<(String, String), String>,
}

pub struct PinStore {
    store: Arc<dyn SessionStore>,
    known: Mutex<Known>,
}

fn k(upstream: &str, tool: &str) -> (String, String) {
    (upstream.to_string(), tool.to_string())
}

impl PinStore {
    /// Empty local copy over `store` (see [`PinStore::load`]).
    pub fn new(store: Arc<dyn SessionStore>) -> PinStore {
        PinStore { store, known: Mutex::new(Known::default()) }
    }

    /// Loads every pin from the store.
    pub async fn load(store: Arc<dyn SessionStore>) -> Result<PinStore, StoreError> {
        let pins = PinStore::new(store);
        let mut known = Known::default();
        for (upstream, tool, digest) in pins.store.list_pins().await? {
            match upstream.strip_prefix(PENDING) {
                Some(u) if !digest.is_empty() => {
                    known.pending.insert(k(u, &tool), digest);
                }
                Some(_) => {}
                None => {
                    known.pinned.insert(k(&upstream, &tool), digest);
                }
            }
        }
        *pins.known.lock().expect("pins lock") = known;
        Ok(pins)
    }

    /// Records a listed definition and says how it compares with the pin. Store writes happen
    /// in the background; a store that pinned something else first wins (see `recheck`).
    pub fn observe(&self, upstream: &str, tool: &str, digest: &str) -> PinStatus {
        let key = k(upstream, tool);
        let mut known = self.known.lock().expect("pins lock");
        let status = match known.pinned.get(&key) {
            None => {
                known.pinned.insert(key.clone(), digest.to_string());
                PinStatus::New
            }
            Some(p) if p == digest => PinStatus::Unchanged,
            Some(p) => PinStatus::Changed { pinned: p.clone() },
        };
        let store = self.store.clone();
        let (upstream, tool, digest) = (upstream.to_string(), tool.to_string(), digest.to_string());
        match &status {
            PinStatus::New => {
                tokio::spawn(async move {
                    if let Err(e) = store.pin_if_absent(&upstream, &tool, &digest).await {
                        tracing::error!(error = %e, upstream, tool, "cannot store a tool pin");
                    }
                });
            }
            PinStatus::Changed { pinned } if known.pending.get(&key) != Some(&digest) => {
                tracing::warn!(upstream, tool, %pinned, new = %digest, "tool definition changed; blocked until approved");
                known.pending.insert(key, digest.clone());
                tokio::spawn(async move {
                    if let Err(e) = store.set_pin(&format!("{PENDING}{upstream}"), &tool, &digest).await {
                        tracing::error!(error = %e, upstream, tool, "cannot store a changed tool definition");
                    }
                });
            }
            _ => {}
        }
        status
    }

    /// Is a call to this definition allowed, by the local copy? `Err(pinned digest)` if not.
    pub fn check(&self, upstream: &str, tool: &str, digest: &str) -> Result<(), String> {
        match self.known.lock().expect("pins lock").pinned.get(&k(upstream, tool)) {
            Some(p) if p != digest => Err(p.clone()),
            _ => Ok(()),
        }
    }

    /// The store's word, for a call the local copy would block (an approval given elsewhere).
    pub async fn recheck(&self, upstream: &str, tool: &str, digest: &str) -> Result<Result<(), String>, StoreError> {
        let Some(pinned) = self.store.get_pin(upstream, tool).await? else {
            // The first pin is still on its way to the store: the local copy stands.
            return Ok(self.check(upstream, tool, digest));
        };
        let mut known = self.known.lock().expect("pins lock");
        known.pinned.insert(k(upstream, tool), pinned.clone());
        if pinned == digest {
            known.pending.remove(&k(upstream, tool));
            Ok(Ok(()))
        } else {
            Ok(Err(pinned))
        }
    }

    /// Operator: the changed definition waiting for approval becomes the pin.
    pub async fn approve(&self, upstream: &str, tool: &str) -> Result<String, String> {
        let pending_key = format!("{PENDING}{upstream}");
        let waiting = self.store.get_pin(&pending_key, tool).await.map_err(|e| e.to_string())?;
        let digest = waiting
            .filter(|d| !d.is_empty())
            .ok_or_else(|| format!("no changed definition of {upstream}/{tool} is waiting for approval"))?;
        self.store.set_pin(upstream, tool, &digest).await.map_err(|e| e.to_string())?;
        self.store.set_pin(&pending_key, tool, "").await.map_err(|e| e.to_string())?;
        let mut known = self.known.lock().expect("pins lock");
        known.pinned.insert(k(upstream, tool), digest.clone());
        known.pending.remove(&k(upstream, tool));
        tracing::info!(upstream, tool, %digest, "changed tool definition approved");
        Ok(digest)
    }

    /// Every pin in the store, with what waits for approval.
    pub async fn list(&self) -> Result<Vec<PinRow>, StoreError> {
        let all = self.store.list_pins().await?;
        let mut pending = BTreeMap::new();
        let mut rows = Vec::new();
        for (upstream, tool, digest) in all {
            match upstream.strip_prefix(PENDING) {
                Some(u) => {
                    if !digest.is_empty() {
                        pending.insert(k(u, &tool), digest);
                    }
                }
                None => rows.push(PinRow { upstream, tool, pinned: digest, pending: None }),
            }
        }
        for row in &mut rows {
            row.pending = pending.remove(&k(&row.upstream, &row.tool)).filter(|p| p != &row.pinned);
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::embedded::EmbeddedStore;

    #[tokio::test]
    async fn first_seen_is_pinned_and_a_change_blocks_until_approved_on_any_replica() {
        let store: Arc<dyn SessionStore> = EmbeddedStore::in_memory().unwrap();
        let pins = PinStore::new(store.clone());
        assert_eq!(pins.observe("fx", "t", "aaa"), PinStatus::New);
        assert_eq!(pins.observe("fx", "t", "aaa"), PinStatus::Unchanged);
        assert!(pins.check("fx", "t", "aaa").is_ok());
        assert_eq!(pins.observe("fx", "t", "bbb"), PinStatus::Changed { pinned: "aaa".into() });
        assert_eq!(pins.check("fx", "t", "bbb"), Err("aaa".into()));
        // Another replica (its own copy, same store) approves once the background writes landed.
        let other = PinStore::load(store.clone()).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while other.list().await.unwrap().first().is_none_or(|r| r.pending.is_none()) {
            assert!(std::time::Instant::now() < deadline, "the pending definition never reached the store");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(other.approve("fx", "t").await.unwrap(), "bbb");
        assert_eq!(pins.check("fx", "t", "bbb"), Err("aaa".into()), "the local copy is stale");
        assert_eq!(pins.recheck("fx", "t", "bbb").await.unwrap(), Ok(()), "the store says approved");
        assert!(pins.check("fx", "t", "bbb").is_ok());
        assert!(other.approve("fx", "t").await.is_err(), "nothing left to approve");
        let rows = pins.list().await.unwrap();
        assert_eq!(rows, vec![PinRow { upstream: "fx".into(), tool: "t".into(), pinned: "bbb".into(), pending: None }]);
    }
}
