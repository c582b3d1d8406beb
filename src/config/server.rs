//! `[server]`: the downstream listener and the limits that keep what one client can make the
//! gateway hold (memory, tasks, connections, processes) bounded.
//!
//! Every limit has a safe default. Worst cases they imply, with the defaults: request bodies in
//! memory at most `max_buffered_body_bytes` (64 MiB) in total; at most `max_connections` (512)
//! connections, each with at most `max_header_bytes` of headers buffered; at most
//! `max_sessions` (256) HTTP sessions, each with its own upstream connections.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Loopback by default: exposing the gateway on a network is an explicit choice.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_path")]
    pub path: String,
    /// Host header values accepted (port ignored); `"*"` accepts any. Guards against DNS rebinding.
    #[serde(default = "default_hosts")]
    pub allowed_hosts: Vec<String>,
    /// Origins accepted besides loopback ones (`http://localhost:*` etc.); `"*"` accepts any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Browser origins that get CORS headers (and preflight answers). Empty: no CORS at all, so
    /// a browser page on another origin cannot read replies. Each must be an exact origin.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// All request bodies being read or handled at once share this many bytes; past it a
    /// request gets 503 (a flood of large bodies cannot grow memory without bound).
    #[serde(default = "default_max_buffered")]
    pub max_buffered_body_bytes: usize,
    /// Request line plus headers; more gets 431.
    #[serde(default = "default_max_header")]
    pub max_header_bytes: usize,
    /// A request's headers must arrive within this long after their first byte (slowloris).
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout_secs: u64,
    /// A request's body must arrive within this long after its headers; else 408.
    #[serde(default = "default_body_timeout")]
    pub body_read_timeout_secs: u64,
    /// A connection waiting for a client for this long is closed: no request started on a
    /// keep-alive connection, or the client stopped reading what the gateway sends.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Open connections; a few more get a 503 and are closed, beyond that they are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// POST requests handled at once, across all sessions; more get 503 with a JSON-RPC error.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight_requests: usize,
    /// Requests in flight on one stdio or 2025-11-25 session; more get a JSON-RPC error at once.
    /// (Stateless 2026-07-28 clients share sessions; `max_in_flight_requests` bounds them.)
    #[serde(default = "default_max_per_session")]
    pub max_in_flight_per_session: usize,
    /// HTTP sessions (2025-11-25 and 2026-07-28 conversations) alive at once; each may start
    /// upstream processes, so a new one past this gets 503.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// A 2025-11-25 session with no traffic for this long is closed and its upstreams stopped.
    #[serde(default = "default_idle")]
    pub session_idle_timeout_secs: u64,
    /// Serve HTTPS with this certificate and key (PEM). Without it: plain HTTP (loopback, or
    /// behind a TLS-terminating proxy).
    pub tls: Option<TlsConfig>,
}

/// A certificate chain and its private key, PEM files relative to the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TlsConfig {
    pub fn anchor(&mut self, base: &Path) {
        for p in [&mut self.cert_file, &mut self.key_file] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_path() -> String {
    "/mcp".into()
}
fn default_hosts() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]
}
fn default_max_body() -> usize {
    4 * 1024 * 1024
}
fn default_max_buffered() -> usize {
    64 * 1024 * 1024
}
/// Node's default; far above what an MCP client sends (a few short headers and a session id).
fn default_max_header() -> usize {
    16 * 1024
}
/// Apache's `mod_reqtimeout` and HAProxy's anti-DoS example use 5–20 s for the same thing.
fn default_header_timeout() -> u64 {
    10
}
fn default_body_timeout() -> u64 {
    30
}
fn default_idle_timeout() -> u64 {
    60
}
/// Leaves file descriptors for upstream processes under the common 1024 soft limit.
fn default_max_connections() -> usize {
    512
}
fn default_max_in_flight() -> usize {
    256
}
fn default_max_per_session() -> usize {
    128
}
fn default_max_sessions() -> usize {
    256
}
fn default_idle() -> u64 {
    3600
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            path: default_path(),
            allowed_hosts: default_hosts(),
            allowed_origins: Vec::new(),
            cors_allowed_origins: Vec::new(),
            max_body_bytes: default_max_body(),
            max_buffered_body_bytes: default_max_buffered(),
            max_header_bytes: default_max_header(),
            header_read_timeout_secs: default_header_timeout(),
            body_read_timeout_secs: default_body_timeout(),
            idle_timeout_secs: default_idle_timeout(),
            max_connections: default_max_connections(),
            max_in_flight_requests: default_max_in_flight(),
            max_in_flight_per_session: default_max_per_session(),
            max_sessions: default_max_sessions(),
            session_idle_timeout_secs: default_idle(),
            tls: None,
        }
    }
}

impl ServerConfig {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_secs)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if !self.path.starts_with('/') {
            return Err(format!("server.path = {:?}: must start with '/'", self.path));
        }
        if self.max_body_bytes < 1024 {
            return Err("server.max_body_bytes: must be at least 1024".into());
        }
        if self.max_buffered_body_bytes < self.max_body_bytes {
            return Err(format!(
                "server.max_buffered_body_bytes = {}: must be at least max_body_bytes ({}), or no body that large could be read",
                self.max_buffered_body_bytes, self.max_body_bytes
            ));
        }
        // hyper needs room for a request line and a few headers; below this nothing works.
        if !(4096..=1024 * 1024).contains(&self.max_header_bytes) {
            return Err("server.max_header_bytes: must be between 4096 and 1048576".into());
        }
        for (key, secs) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
        ] {
            if secs == 0 {
                return Err(format!("server.{key}: must be at least 1"));
            }
        }
        for (key, n) in [
            ("max_connections", self.max_connections),
            ("max_in_flight_requests", self.max_in_flight_requests),
            ("max_in_flight_per_session", self.max_in_flight_per_session),
            ("max_sessions", self.max_sessions),
        ] {
            if n == 0 {
                return Err(format!("server.{key}: must be at least 1"));
            }
        }
        for origin in &self.cors_allowed_origins {
            let exact = origin.parse::<http::Uri>().ok().is_some_and(|u| {
                matches!(u.scheme_str(), Some("http") | Some("https"))
                    && u.host().is_some()
                    && u.path_and_query().is_none_or(|p| p.as_str() == "/" || p.as_str().is_empty())
            });
            // A wildcard would let any page read replies; a trailing slash never matches an Origin.
            if origin == "*" || !exact || origin.ends_with('/') {
                return Err(format!(
                    "server.cors_allowed_origins: {origin:?} is not an exact origin like \"https://app.example\" (no \"*\", no path)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "/etc/tg/t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn limits_have_safe_defaults() {
        let s = parse("").unwrap().server;
        assert_eq!((s.max_header_bytes, s.header_read_timeout_secs, s.max_connections), (16384, 10, 512));
        assert!(s.cors_allowed_origins.is_empty() && s.tls.is_none());
        assert!(s.max_buffered_body_bytes >= s.max_body_bytes);
    }

    #[test]
    fn limits_are_validated() {
        for (text, key) in [
            ("[server]\nmax_connections = 0\n", "max_connections"),
            ("[server]\nidle_timeout_secs = 0\n", "idle_timeout_secs"),
            ("[server]\nmax_header_bytes = 100\n", "max_header_bytes"),
            ("[server]\nmax_body_bytes = 2000000\nmax_buffered_body_bytes = 1000000\n", "max_buffered_body_bytes"),
            ("[server]\ncors_allowed_origins = [\"*\"]\n", "cors_allowed_origins"),
            ("[server]\ncors_allowed_origins = [\"https://app.example/\"]\n", "cors_allowed_origins"),
            ("[server]\ncors_allowed_origins = [\"app.example\"]\n", "cors_allowed_origins"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
        parse("[server]\ncors_allowed_origins = [\"https://app.example\", \"http://localhost:5173\"]\n").unwrap();
    }

    #[test]
    fn tls_files_resolve_from_the_config_directory() {
        let c = parse("[server.tls]\ncert_file = \"cert.pem\"\nkey_file = \"/k/key.pem\"\n").unwrap();
        let tls = c.server.tls.unwrap();
        assert_eq!(tls.cert_file, std::path::Path::new("/etc/tg/cert.pem"));
        assert_eq!(tls.key_file, std::path::Path::new("/k/key.pem"));
    }
}
