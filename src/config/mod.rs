//! Process settings from TOML, validated once at startup into runtime values.
//!
//! Errors name the file, the key and what to change: a bad file stops startup.

pub mod memory;
pub mod state;
pub mod telemetry;

pub use memory::{Builtin, MemoryConfig};
use serde::Deserialize;
pub use state::{AdminConfig, ApprovalsConfig, SessionsConfig, StoreBackend, StoreConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
pub use telemetry::{OtlpProtocol, TelemetryConfig};

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub gateway: GatewayConfig,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Removed: pins now live in the state store. Kept only to say so clearly.
    pub pins: Option<toml::Value>,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub sessions: SessionsConfig,
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// Without this section there is no admin API (and the sessions/approvals CLI cannot reach
    /// this gateway).
    pub admin: Option<AdminConfig>,
    #[serde(default)]
    pub memory: MemoryConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Directory of the config file; relative paths in it resolve from here.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Where the per-call policy comes from.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Directory of `*.toml` policy files (relative to the config file). Without one, only tools
    /// annotated `readOnlyHint: true` are allowed.
    pub dir: Option<PathBuf>,
    /// Without a policy directory: allow tools that may write too.
    #[serde(default)]
    pub allow_writes: bool,
    /// Reload the policy when its files change (default on).
    #[serde(default = "default_true")]
    pub watch: bool,
}

/// The audit log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// JSON-lines file (relative to the config file). Without one, calls are not audited.
    pub file: Option<PathBuf>,
    /// Rotate when the file reaches this size; the hash chain continues in the next file.
    #[serde(default = "default_audit_max")]
    pub max_bytes: u64,
}

fn default_audit_max() -> u64 {
    64 * 1024 * 1024
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { file: None, max_bytes: default_audit_max() }
    }
}

impl AuditConfig {
    pub fn resolved_file(&self, base: &Path) -> Option<PathBuf> {
        self.file.as_ref().map(|d| if d.is_absolute() { d.clone() } else { base.join(d) })
    }
}

fn default_true() -> bool {
    true
}

impl PolicyConfig {
    pub fn resolved_dir(&self, base: &Path) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| if d.is_absolute() { d.clone() } else { base.join(d) })
    }
}

/// The downstream Streamable HTTP listener.
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
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// A 2025-11-25 session with no traffic for this long is closed and its upstreams stopped.
    #[serde(default = "default_idle")]
    pub session_idle_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Joins an upstream's prefix and a tool or prompt name: `fs__read_file`.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Upper bound for any request to an upstream (the policy timeout is per tool, later).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// How long shutdown waits for in-flight calls before failing them.
    #[serde(default = "default_grace")]
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum ProtocolChoice {
    /// Probe `server/discover`, fall back to `initialize`.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "2025-11-25")]
    Stateful,
    #[serde(rename = "2026-07-28")]
    Stateless,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    /// stdio upstream: the program to spawn.
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// Streamable HTTP upstream: the MCP endpoint URL.
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub protocol: ProtocolChoice,
    /// Prefix for this upstream's tool and prompt names; defaults to `name`; `""` for none.
    pub tool_prefix: Option<String>,
    /// Fail closed: a session cannot start while this upstream is down. Default: fail open.
    #[serde(default)]
    pub required: bool,
    /// Served inside the gateway (long-term memory). Never read from TOML, so a config file cannot
    /// declare an upstream without a transport by accident; `[memory]` adds this one.
    #[serde(skip)]
    pub builtin: Option<Builtin>,
}

impl UpstreamConfig {
    pub fn prefix(&self) -> &str {
        self.tool_prefix.as_deref().unwrap_or(&self.name)
    }
    /// An upstream for `tollgate stdio -- CMD ARGS`: transparent names, fail closed.
    pub fn from_command(command: &[String]) -> UpstreamConfig {
        UpstreamConfig {
            name: "upstream".into(),
            command: Some(command[0].clone()),
            args: command[1..].to_vec(),
            env: BTreeMap::new(),
            cwd: None,
            url: None,
            headers: BTreeMap::new(),
            protocol: ProtocolChoice::Auto,
            tool_prefix: Some(String::new()),
            required: true,
            builtin: None,
        }
    }
    pub fn describe(&self) -> String {
        if let Some(Builtin::Memory { .. }) = self.builtin {
            return "built-in memory".into();
        }
        match (&self.command, &self.url) {
            (Some(c), _) => format!("stdio `{c}`"),
            (_, Some(u)) => format!("http {u}"),
            _ => "unconfigured".into(),
        }
    }
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("valid")
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
fn default_idle() -> u64 {
    3600
}
fn default_separator() -> String {
    "__".into()
}
fn default_request_timeout() -> u64 {
    300
}
fn default_grace() -> u64 {
    10
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            path: default_path(),
            allowed_hosts: default_hosts(),
            allowed_origins: Vec::new(),
            max_body_bytes: default_max_body(),
            session_idle_timeout_secs: default_idle(),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            separator: default_separator(),
            request_timeout_secs: default_request_timeout(),
            shutdown_grace_secs: default_grace(),
        }
    }
}

impl GatewayConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// A config that could not be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError { file: file.clone(), message: format!("cannot read: {e}") })?;
        Config::parse(&text, &file)
    }

    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError { file: file.into(), message: e.to_string() })?;
        config.base_dir = Path::new(file).parent().map(Path::to_path_buf).unwrap_or_default();
        config.validate().map_err(|message| ConfigError { file: file.into(), message })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if !self.server.path.starts_with('/') {
            return Err(format!("server.path = {:?}: must start with '/'", self.server.path));
        }
        if self.server.max_body_bytes < 1024 {
            return Err("server.max_body_bytes: must be at least 1024".into());
        }
        if self.gateway.separator.is_empty()
            || !self.gateway.separator.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(format!(
                "gateway.separator = {:?}: use one or more of A-Z a-z 0-9 _ - . (MCP tool-name characters)",
                self.gateway.separator
            ));
        }
        if self.gateway.request_timeout_secs == 0 {
            return Err("gateway.request_timeout_secs: must be at least 1".into());
        }
        if self.pins.is_some() {
            return Err("[pins]: tool pins now live in the state store ([store]); remove the [pins] section and \
                        manage them with `tollgate pins list|approve` (through the admin API)"
                .into());
        }
        self.store.validate()?;
        if let Some(admin) = &self.admin {
            admin.validate()?;
        }
        self.approvals.validate()?;
        self.memory.validate()?;
        self.telemetry.validate()?;
        let mut names = std::collections::HashSet::new();
        let mut prefixes = std::collections::HashSet::new();
        for (i, u) in self.upstreams.iter().enumerate() {
            let key = format!("upstream[{i}] (name = {:?})", u.name);
            if u.name.is_empty() || !u.name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
                return Err(format!("{key}: name must be non-empty and use only A-Z a-z 0-9 _ -"));
            }
            if !names.insert(&u.name) {
                return Err(format!("{key}: another upstream already has this name"));
            }
            if !prefixes.insert(u.prefix()) {
                return Err(format!(
                    "{key}: tool_prefix {:?} is used by another upstream; give each upstream its own prefix",
                    u.prefix()
                ));
            }
            match (&u.command, &u.url) {
                (Some(_), Some(_)) => {
                    return Err(format!("{key}: set either `command` (stdio) or `url` (HTTP), not both"));
                }
                (None, None) => return Err(format!("{key}: set `command` (stdio upstream) or `url` (HTTP upstream)")),
                (Some(c), None) if c.is_empty() => return Err(format!("{key}: command is empty")),
                (None, Some(url)) => {
                    let ok = url
                        .parse::<http::Uri>()
                        .ok()
                        .is_some_and(|u| matches!(u.scheme_str(), Some("http") | Some("https")) && u.host().is_some());
                    if !ok {
                        return Err(format!("{key}: url = {url:?} is not an http(s) URL"));
                    }
                    if url.starts_with("https") {
                        return Err(format!(
                            "{key}: https upstreams are not supported by this build yet; use http on loopback or a TLS sidecar"
                        ));
                    }
                }
                _ => {}
            }
            if u.command.is_none() && (!u.args.is_empty() || !u.env.is_empty() || u.cwd.is_some()) {
                return Err(format!("{key}: args, env and cwd only apply to stdio upstreams (with `command`)"));
            }
            if u.url.is_none() && !u.headers.is_empty() {
                return Err(format!("{key}: headers only apply to HTTP upstreams (with `url`)"));
            }
        }
        if self.memory.enabled && (names.contains(&self.memory.name) || prefixes.contains(self.memory.name.as_str())) {
            return Err(format!(
                "memory.name = {:?}: an upstream already uses this name or tool_prefix; set [memory] name to another",
                self.memory.name
            ));
        }
        Ok(())
    }

    /// The configured upstreams, plus the built-in ones the config enables (memory last, so it is
    /// never the fallback route for methods no upstream claims).
    pub fn all_upstreams(&self) -> Vec<UpstreamConfig> {
        let mut all = self.upstreams.clone();
        all.extend(self.memory.upstream());
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe() {
        let c = Config::parse("", "t.toml").unwrap();
        assert!(c.server.listen.ip().is_loopback());
        assert_eq!(c.gateway.separator, "__");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::parse("[server]\nlisten = \"127.0.0.1:1\"\nlistn = 3\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("t.toml"), "{e}");
        assert!(e.to_string().contains("listn"), "{e}");
    }

    #[test]
    fn upstream_needs_exactly_one_transport() {
        let e = Config::parse("[[upstream]]\nname = \"a\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("upstream[0]"), "{e}");
        let e = Config::parse("[[upstream]]\nname = \"a\"\ncommand = \"x\"\nurl = \"http://h/mcp\"\n", "t.toml")
            .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
    }

    #[test]
    fn memory_is_off_by_default_and_adds_a_builtin_upstream_when_enabled() {
        let c = Config::parse("", "t.toml").unwrap();
        assert!(c.all_upstreams().is_empty());
        let c = Config::parse("[memory]\nenabled = true\n", "t.toml").unwrap();
        let all = c.all_upstreams();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name, "memory");
        assert_eq!(all[0].builtin, Some(Builtin::Memory { max_value_bytes: 64 * 1024 }));
        assert_eq!(all[0].describe(), "built-in memory");
    }

    #[test]
    fn memory_settings_are_checked() {
        let e = Config::parse("[memory]\nenabled = true\nttl = 3\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("ttl"), "{e}");
        let e = Config::parse("[memory]\nname = \"a b\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("memory.name"), "{e}");
        let e = Config::parse("[memory]\nmax_value_bytes = 0\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("memory.max_value_bytes"), "{e}");
        let clash = "[memory]\nenabled = true\n[[upstream]]\nname = \"memory\"\ncommand = \"x\"\n";
        let e = Config::parse(clash, "t.toml").unwrap_err();
        assert!(e.to_string().contains("memory.name"), "{e}");
        let clash = "[memory]\nenabled = true\n[[upstream]]\nname = \"a\"\ncommand = \"x\"\ntool_prefix = \"memory\"\n";
        assert!(Config::parse(clash, "t.toml").unwrap_err().to_string().contains("memory.name"));
    }

    #[test]
    fn a_builtin_upstream_cannot_be_written_in_toml() {
        let e = Config::parse("[[upstream]]\nname = \"a\"\nbuiltin = \"memory\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("builtin"), "{e}");
    }

    #[test]
    fn prefixes_must_be_distinct() {
        let text = "[[upstream]]\nname = \"a\"\ncommand = \"x\"\n[[upstream]]\nname = \"b\"\ncommand = \"y\"\ntool_prefix = \"a\"\n";
        assert!(Config::parse(text, "t.toml").unwrap_err().to_string().contains("tool_prefix"));
    }
}
