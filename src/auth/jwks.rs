//! JSON Web Key Sets: parsed key by key (a key we cannot use never spoils the others), held in
//! memory, and loaded again when a token names a key id we do not hold — at most once per
//! `min_refresh`, so a flood of made-up key ids cannot turn into a flood of fetches.
//!
//! Only public signature keys are kept: symmetric (`oct`) keys and encryption keys are dropped,
//! so no token can be checked against a shared secret taken from a JWKS.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A JWKS larger than this is refused (a real one is a few KiB).
const MAX_JWKS_BYTES: usize = 512 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// What kind of public key: decides which algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    /// Can a key of this kind verify a signature made with `alg`?
    pub fn verifies(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::EcP256 => alg == ES256,
            KeyKind::EcP384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }
}

pub struct Key {
    pub kid: Option<String>,
    /// The `alg` the JWKS pins this key to, if it says.
    pub alg: Option<Algorithm>,
    pub kind: KeyKind,
    pub decoding: DecodingKey,
}

impl Key {
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.verifies(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// The usable keys of a JWKS document. `Err` only when the document itself is unreadable.
pub fn parse(text: &str) -> Result<Vec<Key>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc.get("keys").and_then(Value::as_array).ok_or("no \"keys\" array")?;
    Ok(keys.iter().filter_map(parse_key).collect())
}

fn parse_key(raw: &Value) -> Option<Key> {
    let kid = raw.get("kid").and_then(Value::as_str).map(str::to_string);
    let skip = |why: &str| {
        tracing::debug!(kid = kid.as_deref().unwrap_or("-"), why, "JWKS key left out");
        None
    };
    if raw.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
        return skip("not a signature key");
    }
    let alg = match raw.get("alg").and_then(Value::as_str) {
        None => None,
        Some(a) => match Algorithm::from_str(a) {
            Ok(alg) => Some(alg),
            Err(_) => return skip("unknown alg"),
        },
    };
    let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else { return skip("not a JWK we can read") };
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => KeyKind::EcP256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => KeyKind::EcP384,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => KeyKind::Ed25519,
        AlgorithmParameters::OctetKey(_) => return skip("symmetric key"),
        _ => return skip("unsupported key type or curve"),
    };
    if alg.is_some_and(|a| !kind.verifies(a)) {
        return skip("alg does not fit the key type");
    }
    if !sound_material(&jwk.algorithm, kind) {
        return skip("key material of the wrong size (RSA needs 2048 bits or more)");
    }
    let Ok(decoding) = DecodingKey::from_jwk(&jwk) else { return skip("malformed key material") };
    Some(Key { kid, alg, kind, decoding })
}

/// Sizes checked before use: curve points of the curve's length, RSA moduli of at least 2048
/// bits (RFC 7518 §3.3), so a short or truncated key is dropped at load, not at first use.
fn sound_material(params: &AlgorithmParameters, kind: KeyKind) -> bool {
    use base64::Engine;
    let len = |b64: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).map(|v| v.len()).unwrap_or(0);
    match (params, kind) {
        (AlgorithmParameters::RSA(p), _) => {
            let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&p.n).unwrap_or_default();
            let significant = n.iter().skip_while(|b| **b == 0).count();
            significant >= 256 && len(&p.e) > 0
        }
        (AlgorithmParameters::EllipticCurve(p), KeyKind::EcP256) => len(&p.x) == 32 && len(&p.y) == 32,
        (AlgorithmParameters::EllipticCurve(p), KeyKind::EcP384) => len(&p.x) == 48 && len(&p.y) == 48,
        (AlgorithmParameters::OctetKeyPair(p), KeyKind::Ed25519) => len(&p.x) == 32,
        _ => false,
    }
}

pub enum Source {
    File(PathBuf),
    Url { url: String, http: reqwest::Client },
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Url { url, .. } => url.clone(),
        }
    }

    async fn read(&self) -> Result<String, String> {
        match self {
            Source::File(path) => {
                let bytes = tokio::fs::read(path).await.map_err(|e| e.to_string())?;
                if bytes.len() > MAX_JWKS_BYTES {
                    return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
                }
                String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())
            }
            Source::Url { url, http } => {
                let mut resp = http
                    .get(url)
                    .timeout(FETCH_TIMEOUT)
                    .send()
                    .await
                    .map_err(|e| crate::transport::client_tls::describe(&e))?;
                if !resp.status().is_success() {
                    return Err(format!("HTTP {}", resp.status()));
                }
                let mut body = Vec::new();
                while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
                    if body.len() + chunk.len() > MAX_JWKS_BYTES {
                        return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
                    }
                    body.extend_from_slice(&chunk);
                }
                String::from_utf8(body).map_err(|_| "not UTF-8".to_string())
            }
        }
    }
}

/// The key set in use, and when it may be loaded again.
pub struct Jwks {
    source: Source,
    keys: RwLock<Arc<Vec<Key>>>,
    /// When the keys were last loaded successfully (None: never).
    loaded: Mutex<Option<Instant>>,
    /// When a load was last attempted (successful or not): the rate limit's clock.
    attempted: Mutex<Option<Instant>>,
    /// One load at a time; a caller that waited for another's load uses its result.
    loading: tokio::sync::Mutex<()>,
    min_refresh: Duration,
    max_age: Duration,
}

impl Jwks {
    /// Loads the keys once. A file that cannot be read or holds no usable key stops startup; a
    /// URL that cannot be fetched only warns (the authorization server may come up later).
    pub async fn load(source: Source, min_refresh: Duration, max_age: Duration) -> Result<Arc<Jwks>, String> {
        let jwks = Arc::new(Jwks {
            source,
            keys: RwLock::new(Arc::new(Vec::new())),
            loaded: Mutex::new(None),
            attempted: Mutex::new(None),
            loading: tokio::sync::Mutex::new(()),
            min_refresh,
            max_age,
        });
        match (jwks.reload().await, &jwks.source) {
            (Ok(0), Source::File(_)) => Err(format!("{}: no usable signature key", jwks.source.describe())),
            (Err(e), Source::File(_)) => Err(format!("{}: {e}", jwks.source.describe())),
            (Err(e), Source::Url { url, .. }) => {
                tracing::warn!(%url, error = %e, "cannot fetch the JWKS yet; tokens are refused until it loads");
                Ok(jwks)
            }
            (Ok(_), _) => Ok(jwks),
        }
    }

    pub fn keys(&self) -> Arc<Vec<Key>> {
        self.keys.read().expect("jwks lock").clone()
    }

    /// Loads the keys now; the number of usable keys. On failure the old keys stay.
    async fn reload(&self) -> Result<usize, String> {
        *self.attempted.lock().expect("jwks lock") = Some(Instant::now());
        let keys = parse(&self.source.read().await?)?;
        let n = keys.len();
        *self.keys.write().expect("jwks lock") = Arc::new(keys);
        *self.loaded.lock().expect("jwks lock") = Some(Instant::now());
        tracing::info!(source = %self.source.describe(), keys = n, "JWKS loaded");
        Ok(n)
    }

    fn may_reload(&self) -> bool {
        self.attempted.lock().expect("jwks lock").is_none_or(|at| at.elapsed() >= self.min_refresh)
    }

    /// A token named a key we do not hold (rotation): load the set again, unless that was done
    /// within `min_refresh`. True if the set was (re)loaded by this call or one it waited for.
    pub async fn refresh_for_unknown_key(&self) -> bool {
        let before = *self.loaded.lock().expect("jwks lock");
        let _one = self.loading.lock().await;
        if *self.loaded.lock().expect("jwks lock") != before {
            return true; // someone else loaded while we waited
        }
        if !self.may_reload() {
            return false;
        }
        match self.reload().await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(source = %self.source.describe(), error = %e, "JWKS reload failed; keeping the old keys");
                false
            }
        }
    }

    /// Keys from a URL are fetched again once they are older than `max_age` (on use, no timer).
    pub async fn refresh_if_stale(&self) {
        let stale = match *self.loaded.lock().expect("jwks lock") {
            None => true,
            Some(at) => matches!(self.source, Source::Url { .. }) && at.elapsed() >= self.max_age,
        };
        if stale && self.may_reload() {
            let _one = self.loading.lock().await;
            if self.may_reload()
                && let Err(e) = self.reload().await
            {
                tracing::warn!(source = %self.source.describe(), error = %e, "JWKS refresh failed; keeping the old keys");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real public modulus (the test key in fixtures/auth).
    fn rsa_n() -> String {
        let doc: Value = serde_json::from_str(include_str!("../../fixtures/auth/jwks.json")).unwrap();
        doc["keys"][0]["n"].as_str().unwrap().to_string()
    }

    fn rsa(kid: &str, extra: &str) -> String {
        format!(r#"{{"kty":"RSA","kid":"{kid}","n":"{}","e":"AQAB"{extra}}}"#, rsa_n())
    }

    #[test]
    fn usable_keys_are_kept_and_the_rest_dropped() {
        let doc = format!(
            r#"{{"keys":[{},{},{},{},{{"kty":"oct","kid":"secret","k":"c2VjcmV0"}},{{"kty":"EC","kid":"bad","crv":"P-256","x":"AA","y":"AA"}},{{"kty":"RSA","kid":"short","n":"AQAB","e":"AQAB"}},{{"kty":"weird"}}]}}"#,
            rsa("a", ""),
            rsa("enc", r#","use":"enc""#),
            rsa("pinned", r#","alg":"RS256""#),
            rsa("mismatch", r#","alg":"ES256""#),
        );
        let keys = parse(&doc).unwrap();
        let kids: Vec<&str> = keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, ["a", "pinned"]);
        assert!(keys[0].accepts(Algorithm::PS256));
        assert!(!keys[1].accepts(Algorithm::PS256), "a key pinned to RS256 verifies nothing else");
        assert!(!keys[0].accepts(Algorithm::HS256));
        assert!(!keys[0].accepts(Algorithm::ES256));
    }

    #[test]
    fn unreadable_documents_are_errors() {
        assert!(parse("not json").is_err());
        assert!(parse(r#"{"nokeys":[]}"#).is_err());
        assert_eq!(parse(r#"{"keys":[]}"#).unwrap().len(), 0);
    }

    #[tokio::test]
    async fn an_unknown_key_reloads_the_file_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, format!(r#"{{"keys":[{}]}}"#, rsa("old", ""))).unwrap();
        let jwks =
            Jwks::load(Source::File(path.clone()), Duration::from_secs(3600), Duration::from_secs(3600)).await.unwrap();
        std::fs::write(&path, format!(r#"{{"keys":[{}]}}"#, rsa("new", ""))).unwrap();
        // Loaded at start, so the interval has not passed: no reload.
        assert!(!jwks.refresh_for_unknown_key().await);
        assert_eq!(jwks.keys()[0].kid.as_deref(), Some("old"));
        let jwks = Jwks::load(Source::File(path.clone()), Duration::ZERO, Duration::from_secs(3600)).await.unwrap();
        std::fs::write(&path, format!(r#"{{"keys":[{}]}}"#, rsa("newer", ""))).unwrap();
        assert!(jwks.refresh_for_unknown_key().await);
        assert_eq!(jwks.keys()[0].kid.as_deref(), Some("newer"));
        // A broken file keeps the old keys.
        std::fs::write(&path, "garbage").unwrap();
        assert!(!jwks.refresh_for_unknown_key().await);
        assert_eq!(jwks.keys()[0].kid.as_deref(), Some("newer"));
    }

    #[tokio::test]
    async fn a_file_without_usable_keys_stops_startup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
        let e = Jwks::load(Source::File(path), Duration::ZERO, Duration::ZERO).await.err().unwrap();
        assert!(e.contains("no usable signature key"), "{e}");
    }
}
