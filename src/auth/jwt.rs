//! OAuth 2.1 access tokens as JWTs (RFC 9068): the signature is checked against our JWKS with
//! an algorithm we accept and the key allows, then issuer, audience (this gateway's resource),
//! expiry and not-before (with a small leeway). Identity is read only from verified claims:
//! the principal from `sub`, roles from the configured claim.
//!
//! Keys are never taken from the token itself (`jwk`, `jku`, `x5u` headers are ignored), `alg:
//! none` does not parse, and HS* cannot be accepted: only public-key algorithms are configurable
//! and each key verifies only the algorithms of its own type.

use super::jwks::{Jwks, Key};
use crate::config::auth::JwtConfig;
use crate::policy::Roles;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde_json::Value;
use std::str::FromStr;
use std::sync::Arc;

/// Longer than this is not a token we issued (and not worth parsing).
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest `sub` accepted; it becomes part of the principal (logs, audit, store keys).
const MAX_SUBJECT: usize = 256;

/// Why a token was refused. The text is safe to show the client (no key or claim values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's signature algorithm is not accepted here")]
    Algorithm,
    #[error("the token names a signing key this resource does not know")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    Issuer,
    #[error("the token was issued for another resource (audience)")]
    Audience,
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
    #[error("the token's {0} claim is not usable")]
    BadClaim(&'static str),
}

pub struct JwtVerifier {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    roles_claim: Vec<String>,
    prefix: String,
    jwks: Arc<Jwks>,
}

impl JwtVerifier {
    /// `audience` is the resolved one (`auth.jwt.audience`, else the resource URL).
    pub fn new(config: &JwtConfig, audience: String, jwks: Arc<Jwks>) -> JwtVerifier {
        JwtVerifier {
            issuer: config.issuer.clone(),
            audience,
            // Validated in config: every name parses and none is HS*.
            algorithms: config.algorithms.iter().filter_map(|a| Algorithm::from_str(a).ok()).collect(),
            leeway: config.leeway_secs,
            roles_claim: config.roles_claim.split('.').map(str::to_string).collect(),
            prefix: config.principal_prefix(),
            jwks,
        }
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The principal and roles a valid token speaks for.
    pub async fn verify(&self, token: &str) -> Result<(String, Roles), TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if !self.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm);
        }
        self.jwks.refresh_if_stale().await;
        let mut keys = self.jwks.keys();
        let mut found = select(&keys, &header);
        if found == Err(TokenError::UnknownKey) && self.jwks.refresh_for_unknown_key().await {
            // Maybe the issuer rotated its keys: look again in the reloaded set.
            keys = self.jwks.keys();
            found = select(&keys, &header);
        }
        let key = &keys[found?];
        let claims = self.check(token, key, header.alg)?;
        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s,
            _ => return Err(TokenError::MissingClaim("sub".into())),
        };
        if sub.len() > MAX_SUBJECT || sub.chars().any(char::is_control) {
            return Err(TokenError::BadClaim("sub"));
        }
        Ok((format!("{}{sub}", self.prefix), self.roles(&claims)))
    }

    fn check(&self, token: &str, key: &Key, alg: Algorithm) -> Result<Value, TokenError> {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = true;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        match jsonwebtoken::decode::<Value>(token, &key.decoding, &v) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.into_kind() {
                ErrorKind::InvalidSignature => TokenError::Signature,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidIssuer => TokenError::Issuer,
                ErrorKind::InvalidAudience => TokenError::Audience,
                ErrorKind::MissingRequiredClaim(c) => TokenError::MissingClaim(c),
                ErrorKind::InvalidClaimFormat(_) => TokenError::BadClaim("exp/nbf"),
                ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
                _ => TokenError::Malformed,
            }),
        }
    }

    /// Roles from the configured claim: a space-separated string (OAuth `scope`) or an array
    /// of strings. A missing or odd claim means no roles, not a refusal.
    fn roles(&self, claims: &Value) -> Roles {
        let mut at = claims;
        for part in &self.roles_claim {
            match at.get(part) {
                Some(v) => at = v,
                None => return Roles::none(),
            }
        }
        match at {
            Value::String(s) => Roles::new(s.split_whitespace()),
            Value::Array(items) => Roles::new(items.iter().filter_map(Value::as_str)),
            _ => Roles::none(),
        }
    }
}

/// The key to verify with: the one the token names, which must fit its algorithm; a token
/// without a key id may use the only key that fits. Returns an index into `keys`.
fn select(keys: &[Key], header: &Header) -> Result<usize, TokenError> {
    match &header.kid {
        Some(kid) => {
            let i = keys.iter().position(|k| k.kid.as_deref() == Some(kid)).ok_or(TokenError::UnknownKey)?;
            if keys[i].accepts(header.alg) { Ok(i) } else { Err(TokenError::Algorithm) }
        }
        None => {
            let mut fitting = keys.iter().enumerate().filter(|(_, k)| k.accepts(header.alg));
            match (fitting.next(), fitting.next()) {
                (Some((i, _)), None) => Ok(i),
                // Several candidates: the issuer must say which (trying each would multiply the
                // cost of a bad token).
                (Some(_), Some(_)) => Err(TokenError::UnknownKey),
                (None, _) => Err(TokenError::UnknownKey),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::jwks::Source;
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, encode};
    use serde_json::json;
    use std::path::PathBuf;
    use std::time::Duration;

    pub const ISSUER: &str = "https://as.example";
    pub const AUDIENCE: &str = "http://127.0.0.1:8080/mcp";

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/auth").join(name)
    }

    pub fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    pub fn claims() -> Value {
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now() + 300, "iat": now(), "scope": "mcp tools:read"})
    }

    /// A token signed with fixture key `kid` (its file is `<kid>.der`).
    pub fn sign(kid: &str, alg: Algorithm, claims: &Value) -> String {
        sign_as(kid, kid, alg, claims)
    }

    /// Signed with the key in `key_file`, claiming key id `kid`.
    pub fn sign_as(key_file: &str, kid: &str, alg: Algorithm, claims: &Value) -> String {
        let der = std::fs::read(fixture(&format!("{key_file}.der"))).unwrap();
        let key =
            if key_file.starts_with("ec") { EncodingKey::from_ec_der(&der) } else { EncodingKey::from_rsa_der(&der) };
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        encode(&header, claims, &key).unwrap()
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    async fn verifier_with(edit: impl FnOnce(&mut JwtConfig)) -> JwtVerifier {
        let mut config: JwtConfig =
            toml::from_str(&format!("issuer = {ISSUER:?}\njwks_file = \"unused\"\nroles_claim = \"scope\"\n")).unwrap();
        edit(&mut config);
        let source = Source::File(config.jwks_file.clone().unwrap());
        let jwks = Jwks::load(source, Duration::from_secs(config.jwks_min_refresh_secs), Duration::from_secs(3600))
            .await
            .unwrap();
        JwtVerifier::new(&config, AUDIENCE.into(), jwks)
    }

    async fn verifier() -> JwtVerifier {
        verifier_with(|c| c.jwks_file = Some(fixture("jwks.json"))).await
    }

    #[tokio::test]
    async fn good_rs256_and_es256_tokens_name_principal_and_roles() {
        let v = verifier().await;
        let (principal, roles) = v.verify(&sign("rsa-a", Algorithm::RS256, &claims())).await.unwrap();
        assert_eq!(principal, "https://as.example#alice");
        assert_eq!(roles.to_vec(), ["mcp", "tools:read"]);
        let (principal, _) = v.verify(&sign("ec-a", Algorithm::ES256, &claims())).await.unwrap();
        assert_eq!(principal, "https://as.example#alice");
        // An audience list naming us is fine.
        let mut c = claims();
        c["aud"] = json!(["https://other.example", AUDIENCE]);
        assert!(v.verify(&sign("rsa-a", Algorithm::RS256, &c)).await.is_ok());
    }

    #[tokio::test]
    async fn time_audience_issuer_and_subject_are_checked() {
        let v = verifier().await;
        let with = |k: &str, val: Value| {
            let mut c = claims();
            c[k] = val;
            sign("rsa-a", Algorithm::RS256, &c)
        };
        assert_eq!(v.verify(&with("exp", json!(now() - 120))).await, Err(TokenError::Expired));
        assert!(v.verify(&with("exp", json!(now() - 5))).await.is_ok(), "within the 30 s leeway");
        assert_eq!(v.verify(&with("nbf", json!(now() + 600))).await, Err(TokenError::NotYetValid));
        assert_eq!(v.verify(&with("aud", json!("https://other.example/mcp"))).await, Err(TokenError::Audience));
        assert_eq!(v.verify(&with("iss", json!("https://evil.example"))).await, Err(TokenError::Issuer));
        assert_eq!(v.verify(&with("sub", json!(""))).await, Err(TokenError::MissingClaim("sub".into())));
        assert_eq!(v.verify(&with("sub", json!("a\nb"))).await, Err(TokenError::BadClaim("sub")));
        assert!(v.verify(&with("exp", json!("soon"))).await.is_err());
        let mut c = claims();
        c.as_object_mut().unwrap().remove("aud");
        assert_eq!(v.verify(&sign("rsa-a", Algorithm::RS256, &c)).await, Err(TokenError::MissingClaim("aud".into())));
        c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(v.verify(&sign("rsa-a", Algorithm::RS256, &c)).await, Err(TokenError::MissingClaim("exp".into())));
    }

    #[tokio::test]
    async fn wrong_signatures_and_unknown_keys_are_refused() {
        let v = verifier().await;
        // Signed with rsa-b, claiming to be rsa-a.
        assert_eq!(v.verify(&sign_as("rsa-b", "rsa-a", Algorithm::RS256, &claims())).await, Err(TokenError::Signature));
        // A key id the JWKS does not have (and the reload interval has not passed).
        assert_eq!(v.verify(&sign("rsa-b", Algorithm::RS256, &claims())).await, Err(TokenError::UnknownKey));
        // A tampered payload.
        let token = sign("rsa-a", Algorithm::RS256, &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let mut c = claims();
        c["sub"] = json!("mallory");
        let forged = format!("{}.{}.{}", parts[0], b64(&c.to_string()), parts[2]);
        assert_eq!(v.verify(&forged).await, Err(TokenError::Signature));
        assert_eq!(v.verify("not a token").await, Err(TokenError::Malformed));
        assert_eq!(v.verify(&"a".repeat(20_000)).await, Err(TokenError::Malformed));
    }

    #[tokio::test]
    async fn rotated_keys_are_found_after_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::copy(fixture("jwks.json"), &path).unwrap();
        let v = verifier_with(|c| {
            c.jwks_file = Some(path.clone());
            c.jwks_min_refresh_secs = 0;
        })
        .await;
        let token = sign("rsa-b", Algorithm::RS256, &claims());
        assert_eq!(v.verify(&token).await, Err(TokenError::UnknownKey));
        std::fs::copy(fixture("jwks-rotated.json"), &path).unwrap();
        assert!(v.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn algorithm_confusion_is_refused() {
        let v = verifier().await;
        let payload = b64(&claims().to_string());
        // alg none, with and without a signature part.
        let none = format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"JWT","kid":"rsa-a"}"#));
        assert_eq!(v.verify(&none).await, Err(TokenError::Malformed));
        // HS256 keyed with the RSA public key's bytes (the classic confusion attack).
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(
                serde_json::from_str::<Value>(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap()["keys"]
                    [0]["n"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-a".into());
        let hs = encode(&header, &claims(), &EncodingKey::from_secret(&n)).unwrap();
        assert_eq!(v.verify(&hs).await, Err(TokenError::Algorithm));
        // RS256 naming the EC key; ES256 naming the RSA key.
        assert_eq!(v.verify(&sign_as("rsa-a", "ec-a", Algorithm::RS256, &claims())).await, Err(TokenError::Algorithm));
        assert_eq!(v.verify(&sign_as("ec-a", "rsa-a", Algorithm::ES256, &claims())).await, Err(TokenError::Algorithm));
        // An accepted family but an algorithm the config does not list.
        assert_eq!(v.verify(&sign("rsa-a", Algorithm::PS256, &claims())).await, Err(TokenError::Algorithm));
        let only_rs = verifier_with(|c| {
            c.jwks_file = Some(fixture("jwks.json"));
            c.algorithms = vec!["RS256".into()];
        })
        .await;
        assert_eq!(only_rs.verify(&sign("ec-a", Algorithm::ES256, &claims())).await, Err(TokenError::Algorithm));
    }

    #[tokio::test]
    async fn roles_come_from_the_configured_claim() {
        let v = verifier_with(|c| {
            c.jwks_file = Some(fixture("jwks.json"));
            c.roles_claim = "realm_access.roles".into();
            c.principal_prefix = Some("corp:".into());
        })
        .await;
        let mut c = claims();
        c["realm_access"] = json!({"roles": ["admin", 7, "ops"]});
        let (principal, roles) = v.verify(&sign("rsa-a", Algorithm::RS256, &c)).await.unwrap();
        assert_eq!(principal, "corp:alice");
        assert_eq!(roles.to_vec(), ["admin", "ops"]);
        let (_, roles) = v.verify(&sign("rsa-a", Algorithm::RS256, &claims())).await.unwrap();
        assert!(roles.is_empty(), "no such claim: no roles");
    }

    #[tokio::test]
    async fn a_token_without_kid_uses_the_only_fitting_key() {
        let v = verifier().await;
        let der = std::fs::read(fixture("ec-a.der")).unwrap();
        let token = encode(&Header::new(Algorithm::ES256), &claims(), &EncodingKey::from_ec_der(&der)).unwrap();
        assert!(v.verify(&token).await.is_ok());
    }
}
