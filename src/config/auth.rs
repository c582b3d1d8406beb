//! `[auth]`: who may use the downstream HTTP endpoint (static API keys, OAuth 2.1 bearer JWTs,
//! or explicitly nobody), and who stdio calls are attributed to.
//!
//! Only digests of API keys are written here; JWT keys come from a JWKS file or URL.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every HTTP request needs an API key or a valid token.
    #[default]
    Required,
    /// No authentication on the HTTP endpoint: every caller is `anonymous`. Must be written out.
    None,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub mode: AuthMode,
    /// This gateway's resource URL (RFC 8707 / RFC 9728): the audience tokens must name and what
    /// the Protected Resource Metadata says. Default on a loopback listener:
    /// `http://<bound address><server.path>`; required elsewhere.
    pub resource: Option<String>,
    /// Roles (or scopes) every caller must hold to use the endpoint at all; a valid identity
    /// without them gets 403 `insufficient_scope`.
    #[serde(default)]
    pub required_roles: Vec<String>,
    /// Scopes to publish in the Protected Resource Metadata (default: `required_roles`).
    pub scopes_supported: Option<Vec<String>>,
    /// Who stdio-mode calls are attributed to (default `os:$USER`).
    pub stdio_principal: Option<String>,
    /// The roles of the stdio principal.
    #[serde(default)]
    pub stdio_roles: Vec<String>,
    #[serde(default, rename = "api_key")]
    pub api_keys: Vec<ApiKeyConfig>,
    pub jwt: Option<JwtConfig>,
}

/// One static API key, presented as `Authorization: Bearer <key>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    pub principal: String,
    /// Hex SHA-256 of the key (`tollgate auth hash-key < keyfile`); never the key itself.
    pub sha256: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// OAuth 2.1 access tokens (JWTs) from one authorization server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The `aud` tokens must carry (default: `[auth] resource`).
    pub audience: Option<String>,
    /// A JWKS document on disk (relative to the config file); re-read when a token names an
    /// unknown key id.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL, fetched at start, cached, and fetched again on an unknown key id.
    pub jwks_url: Option<String>,
    /// PEM certificates trusted for an `https` `jwks_url` besides the system's roots (a private
    /// CA); relative to the config file.
    pub jwks_ca_file: Option<PathBuf>,
    /// Accepted signature algorithms. HS* (shared secrets) and `none` are never accepted.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// The claim roles are read from: a space-separated string (`scope`) or an array of strings
    /// (`roles`); dots reach into objects (`realm_access.roles`).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Put before `sub` to make the principal (default `<issuer>#`), so subjects of different
    /// issuers never collide.
    pub principal_prefix: Option<String>,
    /// Authorization servers listed in the Protected Resource Metadata (default: `[issuer]`).
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// An unknown key id triggers a JWKS reload at most this often.
    #[serde(default = "default_min_refresh")]
    pub jwks_min_refresh_secs: u64,
    /// Keys fetched from a URL are fetched again after this long.
    #[serde(default = "default_max_age")]
    pub jwks_max_age_secs: u64,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}
fn default_leeway() -> u64 {
    30
}
fn default_roles_claim() -> String {
    "scope".into()
}
fn default_min_refresh() -> u64 {
    30
}
fn default_max_age() -> u64 {
    3600
}

/// Signature algorithms a JWKS (public keys) can verify.
pub const ASYMMETRIC_ALGORITHMS: &[&str] =
    &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

impl JwtConfig {
    pub fn principal_prefix(&self) -> String {
        self.principal_prefix.clone().unwrap_or_else(|| format!("{}#", self.issuer))
    }

    pub fn authorization_servers(&self) -> Vec<String> {
        if self.authorization_servers.is_empty() {
            vec![self.issuer.clone()]
        } else {
            self.authorization_servers.clone()
        }
    }

    pub fn resolved_jwks_file(&self, base: &Path) -> Option<PathBuf> {
        self.jwks_file.as_ref().map(|f| base.join(f))
    }

    pub fn resolved_jwks_ca_file(&self, base: &Path) -> Option<PathBuf> {
        self.jwks_ca_file.as_ref().map(|f| base.join(f))
    }

    fn validate(&self) -> Result<(), String> {
        if self.issuer.trim().is_empty() {
            return Err("auth.jwt.issuer: must not be empty".into());
        }
        match (&self.jwks_file, &self.jwks_url) {
            (Some(_), Some(_)) => return Err("auth.jwt: set either jwks_file or jwks_url, not both".into()),
            (None, None) => return Err("auth.jwt: set jwks_file (a JWKS document) or jwks_url".into()),
            (None, Some(url)) => check_jwks_url(url)?,
            (Some(_), None) => {}
        }
        if self.algorithms.is_empty() {
            return Err("auth.jwt.algorithms: list at least one (e.g. [\"RS256\", \"ES256\"])".into());
        }
        for alg in &self.algorithms {
            if alg.starts_with("HS") {
                return Err(format!(
                    "auth.jwt.algorithms: {alg:?} uses a shared secret; only public-key algorithms verify against a JWKS"
                ));
            }
            if !ASYMMETRIC_ALGORITHMS.contains(&alg.as_str()) {
                return Err(format!("auth.jwt.algorithms: {alg:?} is not one of {ASYMMETRIC_ALGORITHMS:?}"));
            }
        }
        if self.leeway_secs > 300 {
            return Err("auth.jwt.leeway_secs: at most 300 (clock skew, not a grace period)".into());
        }
        if self.roles_claim.trim().is_empty() {
            return Err("auth.jwt.roles_claim: must not be empty (e.g. \"scope\" or \"roles\")".into());
        }
        for a in &self.authorization_servers {
            check_url("auth.jwt.authorization_servers", a)?;
        }
        Ok(())
    }
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), String> {
        match self.mode {
            AuthMode::None if !self.api_keys.is_empty() || self.jwt.is_some() => {
                return Err("[auth]: mode = \"none\" turns authentication off, but API keys or [auth.jwt] are \
                            configured; remove one or the other"
                    .into());
            }
            AuthMode::Required if self.api_keys.is_empty() && self.jwt.is_none() => {
                return Err("[auth]: add [[auth.api_key]] entries or an [auth.jwt] section, or set mode = \"none\" \
                            to serve without authentication"
                    .into());
            }
            _ => {}
        }
        if let Some(r) = &self.resource {
            check_url("auth.resource", r)?;
        }
        check_roles("auth.required_roles", &self.required_roles)?;
        check_roles("auth.stdio_roles", &self.stdio_roles)?;
        if self.stdio_principal.as_ref().is_some_and(|p| p.trim().is_empty()) {
            return Err("auth.stdio_principal: must not be empty".into());
        }
        let mut digests = std::collections::HashSet::new();
        for (i, k) in self.api_keys.iter().enumerate() {
            let key = format!("auth.api_key[{i}] (principal = {:?})", k.principal);
            if k.principal.trim().is_empty() {
                return Err(format!("{key}: principal must not be empty"));
            }
            if k.sha256.len() != 64 || !k.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "{key}: sha256 must be 64 hex digits (the SHA-256 of the key: `tollgate auth hash-key < keyfile`)"
                ));
            }
            if !digests.insert(k.sha256.to_ascii_lowercase()) {
                return Err(format!("{key}: another API key has the same digest"));
            }
            check_roles(&format!("{key}.roles"), &k.roles)?;
        }
        if let Some(jwt) = &self.jwt {
            jwt.validate()?;
        }
        Ok(())
    }
}

fn check_roles(key: &str, roles: &[String]) -> Result<(), String> {
    match roles.iter().find(|r| r.trim().is_empty() || r.contains(char::is_whitespace)) {
        Some(r) => Err(format!("{key}: {r:?} is not a role name (no spaces, not empty)")),
        None => Ok(()),
    }
}

fn check_url(key: &str, url: &str) -> Result<(), String> {
    let ok = url
        .parse::<http::Uri>()
        .ok()
        .is_some_and(|u| matches!(u.scheme_str(), Some("http") | Some("https")) && u.host().is_some());
    if !ok || url.contains('#') {
        return Err(format!("{key}: {url:?} is not an http(s) URL without a fragment"));
    }
    Ok(())
}

/// Keys fetched over plain HTTP could be swapped by anyone on the path, so `http://` is only for
/// loopback (a local IdP or a TLS-terminating sidecar).
fn check_jwks_url(url: &str) -> Result<(), String> {
    check_url("auth.jwt.jwks_url", url)?;
    let uri: http::Uri = url.parse().map_err(|_| format!("auth.jwt.jwks_url: {url:?} is not a URL"))?;
    if uri.scheme_str() == Some("https") {
        return Ok(());
    }
    let host = uri.host().unwrap_or_default();
    if !matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1") {
        return Err(format!(
            "auth.jwt.jwks_url = {url:?}: plain http is only accepted on loopback (keys fetched over the network must \
             be protected by TLS)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(text: &str) -> String {
        Config::parse(text, "t.toml").unwrap_err().to_string()
    }

    const KEY: &str = "[[auth.api_key]]\nprincipal = \"p\"\nsha256 = \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"\n";

    #[test]
    fn modes_must_be_coherent() {
        assert!(err("[auth]\n").contains("mode = \"none\""), "{}", err("[auth]\n"));
        assert!(err(&format!("[auth]\nmode = \"none\"\n{KEY}")).contains("turns authentication off"));
        assert!(Config::parse(&format!("[auth]\n{KEY}"), "t.toml").is_ok());
        assert!(Config::parse("[auth]\nmode = \"none\"\n", "t.toml").is_ok());
    }

    #[test]
    fn api_keys_hold_digests_not_keys() {
        let e = err("[[auth.api_key]]\nprincipal = \"p\"\nsha256 = \"my-secret-key\"\n");
        assert!(e.contains("auth.api_key[0]") && e.contains("64 hex digits"), "{e}");
        assert!(!e.contains("my-secret-key"), "the value is not echoed: {e}");
        assert!(err(&format!("{KEY}{KEY}")).contains("same digest"));
        assert!(err(&format!("{KEY}roles = [\"a b\"]\n")).contains("not a role name"));
    }

    #[test]
    fn jwt_settings_refuse_shared_secrets_and_unprotected_key_urls() {
        let jwt = |extra: &str| format!("[auth.jwt]\nissuer = \"https://as\"\n{extra}");
        assert!(err(&jwt("jwks_file = \"k.json\"\nalgorithms = [\"HS256\"]\n")).contains("shared secret"));
        assert!(err(&jwt("jwks_file = \"k.json\"\nalgorithms = [\"none\"]\n")).contains("not one of"));
        assert!(err(&jwt("")).contains("jwks_file"));
        assert!(err(&jwt("jwks_file = \"k\"\njwks_url = \"http://127.0.0.1/k\"\n")).contains("not both"));
        assert!(Config::parse(&jwt("jwks_url = \"https://as/jwks\"\n"), "t.toml").is_ok());
        assert!(err(&jwt("jwks_url = \"http://as.example/jwks\"\n")).contains("loopback"));
        assert!(Config::parse(&jwt("jwks_url = \"http://127.0.0.1:9/jwks\"\n"), "t.toml").is_ok());
        assert!(err(&jwt("jwks_file = \"k\"\nleeway_secs = 3600\n")).contains("leeway_secs"));
        assert!(
            err(&format!("[auth]\nresource = \"not a url\"\n{}", jwt("jwks_file = \"k\"\n"))).contains("auth.resource")
        );
    }
}
