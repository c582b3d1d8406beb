//! Who is calling the downstream HTTP endpoint: an API key, an OAuth 2.1 bearer JWT, or (only
//! when the config says so, or on a loopback listener without `[auth]`) nobody in particular.
//!
//! The result is an [`Identity`]: the principal a session is bound to and the roles policy
//! decides with. Credentials come only from the `Authorization` header (never the query string)
//! and are never forwarded upstream: upstream requests are built from the gateway's own config.

pub mod api_key;
pub mod challenge;
pub mod jwks;
pub mod jwt;
pub mod metadata;

use crate::config::{AuthMode, Config};
use crate::policy::Roles;
use api_key::ApiKeys;
use jwks::{Jwks, Source};
use jwt::JwtVerifier;
use metadata::ResourceMetadata;
use std::net::SocketAddr;
use std::time::Duration;

/// The principal of every caller when authentication is off.
pub const ANONYMOUS: &str = "anonymous";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub principal: String,
    pub roles: Roles,
}

/// Why a request was not let in; the transport turns it into 400/401/403 with a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No credentials at all: 401 with a bare challenge (where to find the metadata).
    Missing,
    /// Credentials in a form we never accept (two `Authorization` headers, a token in the URL): 400.
    Malformed(&'static str),
    /// Credentials that did not verify: 401 `invalid_token`.
    Invalid(String),
    /// A valid identity without the roles the endpoint requires: 403 `insufficient_scope`.
    InsufficientScope(String),
}

enum Mode {
    /// Everyone is [`ANONYMOUS`] with no roles.
    Open,
    Required {
        api_keys: ApiKeys,
        jwt: Option<JwtVerifier>,
        required_roles: Vec<String>,
    },
}

pub struct Authenticator {
    mode: Mode,
    /// Served (and pointed at by challenges) when tokens come from an authorization server.
    metadata: Option<ResourceMetadata>,
}

impl Authenticator {
    /// No authentication: every caller is anonymous.
    pub fn open() -> Authenticator {
        Authenticator { mode: Mode::Open, metadata: None }
    }

    /// Refuses a network-facing listener without an `[auth]` section: exposing an
    /// unauthenticated gateway must be written down (`mode = "none"`). Checked before binding.
    pub fn check_listener(config: &Config, listen: SocketAddr) -> anyhow::Result<()> {
        if config.auth.is_none() && !listen.ip().is_loopback() {
            anyhow::bail!(
                "server.listen = {listen} is not loopback and the config has no [auth] section: add \
                 [[auth.api_key]] entries or [auth.jwt] (see config.example.toml), or write [auth] mode = \"none\" \
                 to serve without authentication"
            );
        }
        Ok(())
    }

    /// From `[auth]`, for the listener bound at `listen` (on loopback its address makes the
    /// default resource URL, so port 0 works).
    pub async fn from_config(config: &Config, listen: SocketAddr) -> anyhow::Result<Authenticator> {
        Authenticator::check_listener(config, listen)?;
        let Some(auth) = &config.auth else {
            tracing::warn!(
                %listen,
                "no [auth] section: HTTP callers are not authenticated (allowed on loopback only, for local use)"
            );
            return Ok(Authenticator::open());
        };
        if auth.mode == AuthMode::None {
            tracing::warn!(%listen, "[auth] mode = \"none\": HTTP callers are not authenticated");
            return Ok(Authenticator::open());
        }
        let resource = match &auth.resource {
            Some(r) => r.clone(),
            None if listen.ip().is_loopback() => format!("http://{listen}{}", config.server.path),
            None if auth.jwt.is_some() => anyhow::bail!(
                "auth.resource: set this gateway's public URL (e.g. \"https://mcp.example.com/mcp\"); tokens must name \
                 it as their audience, and a non-loopback listener cannot guess it"
            ),
            None => format!("http://{listen}{}", config.server.path),
        };
        let jwt = match &auth.jwt {
            Some(j) => {
                let source = match (j.resolved_jwks_file(&config.base_dir), &j.jwks_url) {
                    (Some(path), _) => Source::File(path),
                    (None, Some(url)) => {
                        Source::Url { url: url.clone(), http: jwks_client(j.resolved_jwks_ca_file(&config.base_dir))? }
                    }
                    (None, None) => anyhow::bail!("auth.jwt: set jwks_file or jwks_url"),
                };
                let jwks = Jwks::load(
                    source,
                    Duration::from_secs(j.jwks_min_refresh_secs),
                    Duration::from_secs(j.jwks_max_age_secs),
                )
                .await
                .map_err(|e| anyhow::anyhow!("auth.jwt: {e}"))?;
                let audience = j.audience.clone().unwrap_or_else(|| resource.clone());
                Some(JwtVerifier::new(j, audience, jwks))
            }
            None => None,
        };
        let metadata = auth.jwt.as_ref().map(|j| {
            let scopes = auth.scopes_supported.clone().unwrap_or_else(|| auth.required_roles.clone());
            ResourceMetadata::new(&resource, &config.server.path, &j.authorization_servers(), &scopes)
        });
        if let Some(m) = &metadata {
            tracing::info!(resource = %m.resource, metadata = %m.url, "OAuth protected resource");
        }
        Ok(Authenticator {
            mode: Mode::Required {
                api_keys: ApiKeys::from_config(&auth.api_keys),
                jwt,
                required_roles: auth.required_roles.clone(),
            },
            metadata,
        })
    }

    /// Whether requests need credentials at all.
    pub fn is_open(&self) -> bool {
        matches!(self.mode, Mode::Open)
    }

    pub fn metadata(&self) -> Option<&ResourceMetadata> {
        self.metadata.as_ref()
    }

    /// The caller behind a request's `Authorization` header (all of them: several are refused)
    /// and query string.
    pub async fn authenticate<'a>(
        &self,
        authorization: impl Iterator<Item = &'a [u8]>,
        query: Option<&str>,
    ) -> Result<Identity, Rejection> {
        let Mode::Required { api_keys, jwt, required_roles } = &self.mode else {
            return Ok(Identity { principal: ANONYMOUS.into(), roles: Roles::none() });
        };
        if query.is_some_and(|q| q.split('&').any(|p| p.split('=').next() == Some("access_token"))) {
            // RFC 6750 §2.3 allows it; the MCP spec forbids it (tokens in URLs end up in logs).
            return Err(Rejection::Malformed("access tokens are accepted only in the Authorization header"));
        }
        let mut headers = authorization;
        let Some(value) = headers.next() else { return Err(Rejection::Missing) };
        if headers.next().is_some() {
            return Err(Rejection::Malformed("more than one Authorization header"));
        }
        let token = match bearer_token(value) {
            Some(t) => t,
            // Another scheme (Basic, …): as if none was sent, so the client learns ours.
            None => return Err(Rejection::Missing),
        };
        let (principal, roles) = match api_keys.verify(token) {
            Some(found) => found,
            None => match jwt {
                Some(v) => v.verify(token).await.map_err(|e| Rejection::Invalid(e.to_string()))?,
                None => return Err(Rejection::Invalid("unknown API key".into())),
            },
        };
        let missing = roles.missing(required_roles);
        if !missing.is_empty() {
            return Err(Rejection::InsufficientScope(required_roles.join(" ")));
        }
        Ok(Identity { principal, roles })
    }
}

/// The client for a JWKS URL: redirects are not followed, so a loopback URL (the only plain-http
/// kind config accepts) cannot hand the key fetch to another host.
fn jwks_client(ca_file: Option<std::path::PathBuf>) -> anyhow::Result<reqwest::Client> {
    crate::transport::client_tls::builder_with_roots(ca_file.as_deref(), "auth.jwt.jwks_ca_file")
        .map_err(anyhow::Error::msg)?
        .build()
        .map_err(|e| anyhow::anyhow!("building the JWKS HTTP client: {e}"))
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive, RFC 7235).
fn bearer_token(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(char::is_whitespace))
        .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::tests::{claims, sign};
    use jsonwebtoken::Algorithm;

    async fn authenticator(extra: &str) -> Authenticator {
        let dir = env!("CARGO_MANIFEST_DIR");
        let text = format!(
            "[auth]\nrequired_roles = [\"mcp\"]\n\
             [[auth.api_key]]\nprincipal = \"ci-bot\"\nsha256 = {:?}\nroles = [\"mcp\", \"reader\"]\n\
             [[auth.api_key]]\nprincipal = \"no-roles\"\nsha256 = {:?}\n\
             [auth.jwt]\nissuer = \"https://as.example\"\njwks_file = \"{dir}/fixtures/auth/jwks.json\"\n{extra}",
            api_key::hash_key("ci-bot-key-0123456789"),
            api_key::hash_key("no-roles-key-0123456789"),
        );
        let config = Config::parse(&text, "t.toml").unwrap();
        Authenticator::from_config(&config, "127.0.0.1:8080".parse().unwrap()).await.unwrap()
    }

    async fn auth(a: &Authenticator, headers: &[&str]) -> Result<Identity, Rejection> {
        a.authenticate(headers.iter().map(|h| h.as_bytes()), None).await
    }

    #[tokio::test]
    async fn api_keys_and_tokens_both_identify_callers() {
        let a = authenticator("").await;
        let id = auth(&a, &["Bearer ci-bot-key-0123456789"]).await.unwrap();
        assert_eq!(id.principal, "ci-bot");
        assert!(id.roles.contains("reader"));
        let token = sign("rsa-a", Algorithm::RS256, &claims());
        let id = auth(&a, &[&format!("bearer {token}")]).await.unwrap();
        assert_eq!(id.principal, "https://as.example#alice");
        // The resource defaults to the loopback listener's URL, which is the tokens' audience.
        assert_eq!(a.metadata().unwrap().resource, "http://127.0.0.1:8080/mcp");
    }

    #[tokio::test]
    async fn missing_malformed_invalid_and_insufficient_are_told_apart() {
        let a = authenticator("").await;
        assert_eq!(auth(&a, &[]).await, Err(Rejection::Missing));
        assert_eq!(auth(&a, &["Basic Zm9vOmJhcg=="]).await, Err(Rejection::Missing));
        assert!(matches!(auth(&a, &["Bearer a", "Bearer b"]).await, Err(Rejection::Malformed(_))));
        assert!(matches!(auth(&a, &["Bearer wrong-key-0123456789"]).await, Err(Rejection::Invalid(_))));
        assert_eq!(
            auth(&a, &["Bearer no-roles-key-0123456789"]).await,
            Err(Rejection::InsufficientScope("mcp".into()))
        );
        let q =
            a.authenticate(["Bearer ci-bot-key-0123456789".as_bytes()].into_iter(), Some("x=1&access_token=abc")).await;
        assert!(matches!(q, Err(Rejection::Malformed(_))));
        let mut expired = claims();
        expired["exp"] = serde_json::json!(jwt::tests::now() - 3600);
        let e = auth(&a, &[&format!("Bearer {}", sign("rsa-a", Algorithm::RS256, &expired))]).await;
        assert_eq!(e, Err(Rejection::Invalid("the token has expired".into())));
    }

    #[tokio::test]
    async fn no_auth_section_is_open_on_loopback_and_refused_elsewhere() {
        let config = Config::parse("", "t.toml").unwrap();
        let open = Authenticator::from_config(&config, "127.0.0.1:1".parse().unwrap()).await;
        assert!(open.unwrap().is_open());
        let e = Authenticator::from_config(&config, "0.0.0.0:8080".parse().unwrap()).await.err().unwrap();
        assert!(e.to_string().contains("mode = \"none\""), "{e}");
        let config = Config::parse("[auth]\nmode = \"none\"\n", "t.toml").unwrap();
        let a = Authenticator::from_config(&config, "0.0.0.0:8080".parse().unwrap()).await;
        assert_eq!(auth(&a.unwrap(), &[]).await.unwrap().principal, ANONYMOUS);
    }

    #[tokio::test]
    async fn a_network_listener_with_tokens_needs_its_resource_url() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let text = format!("[auth.jwt]\nissuer = \"https://as\"\njwks_file = \"{dir}/fixtures/auth/jwks.json\"\n");
        let config = Config::parse(&text, "t.toml").unwrap();
        let e = Authenticator::from_config(&config, "0.0.0.0:8080".parse().unwrap()).await.err().unwrap();
        assert!(e.to_string().contains("auth.resource"), "{e}");
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        assert_eq!(bearer_token(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer_token(b"BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Bearer a b"), None);
        assert_eq!(bearer_token(b"Token abc"), None);
        assert_eq!(bearer_token(&[0xff, 0xfe]), None);
    }
}
