//! Process settings from TOML, validated once at startup into runtime values.
//!
//! Errors name the file, the key and what to change: a bad file stops startup.

pub mod auth;
pub mod cost;
pub mod memory;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod upstream;

pub use auth::{AuthConfig, AuthMode};
pub use cost::{CostConfig, PriceConfig};
pub use memory::{Builtin, MemoryConfig};
use serde::Deserialize;
pub use server::{ServerConfig, TlsConfig};
pub use state::{AdminConfig, ApprovalsConfig, SessionsConfig, StoreBackend, StoreConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;
pub use telemetry::{OtlpProtocol, TelemetryConfig};
pub use upstream::{DEFAULT_INHERIT_ENV, ProcessLimits, ProtocolChoice, UpstreamConfig};

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
    /// Who may use the HTTP endpoint. Without this section only a loopback listener starts, and
    /// then without authentication (local development).
    pub auth: Option<AuthConfig>,
    /// Token estimate and prices for cost attribution.
    #[serde(default)]
    pub cost: CostConfig,
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

fn default_separator() -> String {
    "__".into()
}
fn default_request_timeout() -> u64 {
    300
}
fn default_grace() -> u64 {
    10
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
        for u in &mut config.upstreams {
            u.anchor(&config.base_dir);
        }
        if let Some(tls) = &mut config.server.tls {
            tls.anchor(&config.base_dir);
        }
        config.validate().map_err(|message| ConfigError { file: file.into(), message })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        self.server.validate()?;
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
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        self.cost.validate()?;
        self.telemetry.validate()?;
        let mut names = std::collections::HashSet::new();
        let mut prefixes = std::collections::HashSet::new();
        for (i, u) in self.upstreams.iter().enumerate() {
            let key = format!("upstream[{i}] (name = {:?})", u.name);
            u.validate(&key)?;
            if !names.insert(&u.name) {
                return Err(format!("{key}: another upstream already has this name"));
            }
            if !prefixes.insert(u.prefix()) {
                return Err(format!(
                    "{key}: tool_prefix {:?} is used by another upstream; give each upstream its own prefix",
                    u.prefix()
                ));
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
