//! The `requestState` the gateway hands a 2026-07-28 client when it asks, through an
//! `input_required` result, for a person's approval: signed (HMAC-SHA256), bound to one
//! approval, session, tool and argument digest, expiring, and single-use (its nonce is spent
//! in the state store on the retry). The client cannot read anything useful from it or forge
//! one, and a copy cannot be replayed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalState {
    pub approval: String,
    /// The session's handle (not its id).
    pub session: String,
    pub tool: String,
    pub args_digest: String,
    pub expires_ms: u64,
    pub nonce: String,
}

/// A 256-bit signing key.
#[derive(Clone)]
pub struct StateKey([u8; 32]);

impl StateKey {
    /// A fresh random key: fine for one process; replicas must share one (`approvals.state_key`).
    pub fn random() -> StateKey {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).expect("the OS random source is available");
        StateKey(k)
    }

    /// A key derived from an operator's secret.
    pub fn from_secret(secret: &str) -> StateKey {
        use sha2::Digest;
        StateKey(Sha256::new_with_prefix(b"tollgate request state v1\0").chain_update(secret).finalize().into())
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }

    pub fn seal(&self, state: &ApprovalState) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(state).expect("serializes"));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// The state if the signature is ours and it has not expired; why not otherwise.
    pub fn open(&self, token: &str, now_ms: u64) -> Result<ApprovalState, &'static str> {
        let (payload, sig) = token.split_once('.').ok_or("malformed")?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| "malformed")?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig).map_err(|_| "bad signature")?;
        let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| "malformed")?;
        let state: ApprovalState = serde_json::from_slice(&bytes).map_err(|_| "malformed")?;
        if state.expires_ms <= now_ms {
            return Err("expired");
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ApprovalState {
        ApprovalState {
            approval: "a1".into(),
            session: "h".into(),
            tool: "fx__echo".into(),
            args_digest: "d".into(),
            expires_ms: 2_000,
            nonce: "n".into(),
        }
    }

    #[test]
    fn sealed_states_open_and_anything_else_does_not() {
        let key = StateKey::random();
        let token = key.seal(&state());
        assert_eq!(key.open(&token, 1_000).unwrap(), state());
        assert_eq!(key.open(&token, 2_000).unwrap_err(), "expired");
        assert_eq!(StateKey::random().open(&token, 1_000).unwrap_err(), "bad signature");
        // A client that edits the payload (say, to point at another approval) breaks the signature.
        let mut forged = state();
        forged.approval = "a2".into();
        let other = key.seal(&forged);
        let spliced = format!("{}.{}", other.split('.').next().unwrap(), token.split('.').nth(1).unwrap());
        assert_eq!(key.open(&spliced, 1_000).unwrap_err(), "bad signature");
        assert_eq!(key.open("garbage", 1_000).unwrap_err(), "malformed");
    }
}
