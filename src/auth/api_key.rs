//! Static API keys: the config holds only their SHA-256 digests; a presented key is hashed and
//! compared with every configured digest in constant time.
//!
//! A digest is enough here (no slow KDF): keys are long random strings, not passwords, so there
//! is nothing to brute-force from a leaked config.

use crate::config::auth::ApiKeyConfig;
use crate::policy::Roles;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shorter than this is not a secret worth the name (`hash-key` refuses it).
pub const MIN_KEY_LEN: usize = 16;

/// Hex SHA-256 of a key, as written in `[[auth.api_key]] sha256`.
pub fn hash_key(key: &str) -> String {
    crate::hex::encode(&Sha256::digest(key.as_bytes()))
}

/// `tollgate auth hash-key`: the key read from stdin (one trailing newline dropped) → its digest.
pub fn hash_key_from_input(input: &str) -> Result<String, String> {
    let key = input.strip_suffix('\n').map(|k| k.strip_suffix('\r').unwrap_or(k)).unwrap_or(input);
    if key.chars().any(char::is_whitespace) {
        return Err("the key contains whitespace; a bearer token cannot carry it".into());
    }
    if key.len() < MIN_KEY_LEN {
        return Err(format!(
            "the key is {} bytes; use at least {MIN_KEY_LEN} random bytes (e.g. `openssl rand -hex 32`)",
            key.len()
        ));
    }
    Ok(hash_key(key))
}

struct Entry {
    digest: [u8; 32],
    principal: String,
    roles: Roles,
}

/// The configured keys.
#[derive(Default)]
pub struct ApiKeys(Vec<Entry>);

impl ApiKeys {
    pub fn from_config(keys: &[ApiKeyConfig]) -> ApiKeys {
        ApiKeys(
            keys.iter()
                .filter_map(|k| {
                    Some(Entry {
                        digest: decode_hex(&k.sha256)?,
                        principal: k.principal.clone(),
                        roles: Roles::new(k.roles.clone()),
                    })
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The principal and roles of `key`, if it is one of ours. Every digest is compared, with no
    /// early exit, so timing says nothing about which entry (or how much of one) matched.
    pub fn verify(&self, key: &str) -> Option<(String, Roles)> {
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for entry in &self.0 {
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some(entry);
            }
        }
        found.map(|e| (e.principal.clone(), e.roles.clone()))
    }
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(key: &str, principal: &str) -> ApiKeyConfig {
        ApiKeyConfig { principal: principal.into(), sha256: hash_key(key), roles: vec!["reader".into()] }
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_key_in_hex() {
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(hash_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn keys_verify_by_digest_and_carry_their_principal_and_roles() {
        let keys =
            ApiKeys::from_config(&[config("first-key-0123456789", "ci-bot"), config("second-key-0123456789", "ops")]);
        let (principal, roles) = keys.verify("second-key-0123456789").unwrap();
        assert_eq!(principal, "ops");
        assert!(roles.contains("reader"));
        assert!(keys.verify("second-key-012345678").is_none());
        assert!(keys.verify("").is_none());
        // An uppercase digest in the config works as well.
        let mut upper = config("third-key-0123456789", "x");
        upper.sha256 = upper.sha256.to_ascii_uppercase();
        assert!(ApiKeys::from_config(&[upper]).verify("third-key-0123456789").is_some());
    }

    #[test]
    fn hash_key_input_drops_one_newline_and_refuses_weak_keys() {
        let key = "k".repeat(32);
        assert_eq!(hash_key_from_input(&format!("{key}\n")).unwrap(), hash_key(&key));
        assert_eq!(hash_key_from_input(&format!("{key}\r\n")).unwrap(), hash_key(&key));
        assert!(hash_key_from_input("short\n").unwrap_err().contains("at least"));
        assert!(hash_key_from_input(&format!("{key} {key}")).unwrap_err().contains("whitespace"));
    }
}
