//! `[[upstream]]`: one MCP server behind the gateway, its transport, and how it is isolated.
//!
//! Credentials for an upstream (`headers`, `env`) may be secret references (`env:NAME`,
//! `file:PATH`), resolved only when a connection starts; a credential-looking name never takes a
//! plain literal, so the config file never holds the secret.

use super::memory::Builtin;
use crate::secrets::{SecretValue, names_a_credential};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a stdio child inherits from the gateway's environment when the config says nothing:
/// enough to find programs, a home for caches, and locale/time zone. Nothing else (API keys,
/// cloud credentials, the gateway's own settings) crosses unless listed in `inherit_env` or set
/// in `env`.
pub const DEFAULT_INHERIT_ENV: &[&str] =
    &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];

/// Headers the gateway sets itself on every upstream request; a configured one would be sent
/// twice or would break the protocol.
const MANAGED_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "accept",
    "connection",
    "transfer-encoding",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
];

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

/// OS resource limits for a stdio child (`setrlimit` before it runs; inherited by what it
/// spawns). Each is off unless set.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProcessLimits {
    /// Writable private memory (heap, stacks) in MiB: `RLIMIT_DATA`. Address-space limits
    /// (`RLIMIT_AS`) are not used: Node and other JITs reserve gigabytes of address space they
    /// never touch and would not start under any useful value.
    pub memory_mb: Option<u64>,
    /// CPU time in seconds (`RLIMIT_CPU`): SIGXCPU at the limit, SIGKILL a second later.
    pub cpu_secs: Option<u64>,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
}

impl ProcessLimits {
    pub fn is_empty(&self) -> bool {
        *self == ProcessLimits::default()
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    /// stdio upstream: the program to spawn.
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment of the child on top of what it inherits (values may be secret references).
    #[serde(default)]
    pub env: BTreeMap<String, SecretValue>,
    /// Variables the child inherits from the gateway besides [`DEFAULT_INHERIT_ENV`]; exact
    /// names, or a prefix ending in `*` (`"LC_*"`).
    #[serde(default)]
    pub inherit_env: Vec<String>,
    /// Working directory of the child (relative to the config file). Default: the gateway's.
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub limits: ProcessLimits,
    /// Streamable HTTP upstream: the MCP endpoint URL.
    pub url: Option<String>,
    /// Sent with every request to this upstream only (values may be secret references).
    #[serde(default)]
    pub headers: BTreeMap<String, SecretValue>,
    /// PEM certificates trusted for this `https` upstream besides the system's roots (a private
    /// CA); relative to the config file.
    pub ca_file: Option<PathBuf>,
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
            tool_prefix: Some(String::new()),
            required: true,
            ..UpstreamConfig::default()
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

    /// Makes paths in this block independent of the gateway's working directory: `file:`
    /// references and `cwd` resolve from the config file's directory.
    pub fn anchor(&mut self, base: &Path) {
        for v in self.env.values_mut().chain(self.headers.values_mut()) {
            v.anchor(base);
        }
        for path in [&mut self.cwd, &mut self.ca_file].into_iter().flatten() {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// Whether the gateway's variable `name` crosses into this upstream's child.
    pub fn inherits(&self, name: &str) -> bool {
        DEFAULT_INHERIT_ENV.contains(&name)
            || self.inherit_env.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => p == name,
            })
    }

    /// Checks this block; `key` names it in errors (`upstream[0] (name = "fs")`).
    pub(super) fn validate(&self, key: &str) -> Result<(), String> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
            return Err(format!("{key}: name must be non-empty and use only A-Z a-z 0-9 _ -"));
        }
        match (&self.command, &self.url) {
            (Some(_), Some(_)) => return Err(format!("{key}: set either `command` (stdio) or `url` (HTTP), not both")),
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
            }
            _ => {}
        }
        let stdio_only = !self.args.is_empty()
            || !self.env.is_empty()
            || self.cwd.is_some()
            || !self.inherit_env.is_empty()
            || !self.limits.is_empty();
        if self.command.is_none() && stdio_only {
            return Err(format!(
                "{key}: args, env, inherit_env, cwd and limits only apply to stdio upstreams (with `command`)"
            ));
        }
        if self.url.is_none() && (!self.headers.is_empty() || self.ca_file.is_some()) {
            return Err(format!("{key}: headers and ca_file only apply to HTTP upstreams (with `url`)"));
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(format!("{key}: env {name:?} is not a valid variable name"));
            }
            check_not_a_bare_secret(key, "env", name, value)?;
        }
        for pattern in &self.inherit_env {
            let body = pattern.strip_suffix('*').unwrap_or(pattern);
            if body.is_empty() || !body.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "{key}: inherit_env {pattern:?}: use variable names (A-Z a-z 0-9 _), optionally ending in * for a prefix"
                ));
            }
        }
        for (name, value) in &self.headers {
            let Ok(header) = http::HeaderName::from_bytes(name.as_bytes()) else {
                return Err(format!("{key}: headers {name:?} is not a valid HTTP header name"));
            };
            if MANAGED_HEADERS.contains(&header.as_str()) {
                return Err(format!("{key}: headers {name:?} is set by the gateway itself; remove it"));
            }
            if let SecretValue::Literal { text, .. } = value
                && http::HeaderValue::from_str(text).is_err()
            {
                return Err(format!("{key}: headers {name:?}: the value is not a valid HTTP header value"));
            }
            check_not_a_bare_secret(key, "headers", name, value)?;
        }
        for (what, v) in [
            ("memory_mb", self.limits.memory_mb),
            ("cpu_secs", self.limits.cpu_secs),
            ("open_files", self.limits.open_files),
        ] {
            if v == Some(0) {
                return Err(format!("{key}: limits.{what} must be at least 1"));
            }
        }
        if self.limits.memory_mb.is_some_and(|m| m < 16) {
            return Err(format!("{key}: limits.memory_mb below 16 leaves no room to start a program"));
        }
        if self.limits.open_files.is_some_and(|n| n < 16) {
            return Err(format!("{key}: limits.open_files below 16 leaves no room for stdio and libraries"));
        }
        Ok(())
    }
}

/// A credential-looking name with a plain literal would put a secret in the config file.
fn check_not_a_bare_secret(key: &str, table: &str, name: &str, value: &SecretValue) -> Result<(), String> {
    // `literal:` is how a config says "this is not a secret" (TOKENIZERS_PARALLELISM = "literal:false").
    if !value.is_reference() && names_a_credential(name) && !value.written_as_literal() {
        return Err(format!(
            "{key}: {table} {name:?} looks like a credential; write \"env:NAME\" or \"file:PATH\" so the secret \
             stays out of the config (or \"literal:…\" if the value is not secret)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "/etc/tg/t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn references_and_cwd_resolve_from_the_config_directory() {
        let c = parse(
            "[[upstream]]\nname = \"a\"\ncommand = \"x\"\ncwd = \"work\"\nenv = { API_TOKEN = \"file:tok\", MODE = \"fast\" }\n",
        )
        .unwrap();
        let u = &c.upstreams[0];
        assert_eq!(u.cwd.as_deref(), Some(Path::new("/etc/tg/work")));
        assert_eq!(u.env["API_TOKEN"], SecretValue::File("/etc/tg/tok".into()));
        assert_eq!(u.env["MODE"], SecretValue::literal("fast"));
        assert!(!format!("{c:?}").contains("fast"), "Debug of a config shows no values");
    }

    #[test]
    fn credentials_must_be_references() {
        let e =
            parse("[[upstream]]\nname = \"a\"\nurl = \"http://h/mcp\"\nheaders = { Authorization = \"Bearer abc\" }\n")
                .unwrap_err();
        assert!(e.contains("looks like a credential") && !e.contains("abc"), "{e}");
        let e = parse("[[upstream]]\nname = \"a\"\ncommand = \"x\"\nenv = { GITHUB_TOKEN = \"ghp_x\" }\n").unwrap_err();
        assert!(e.contains("GITHUB_TOKEN") && !e.contains("ghp_x"), "{e}");
        parse("[[upstream]]\nname = \"a\"\ncommand = \"x\"\nenv = { TOKENIZERS_PARALLELISM = \"literal:false\" }\n")
            .unwrap();
        parse("[[upstream]]\nname = \"a\"\nurl = \"http://h/mcp\"\nheaders = { Authorization = \"env:UP_TOKEN\" }\n")
            .unwrap();
        let e =
            parse("[[upstream]]\nname = \"a\"\nurl = \"http://h/mcp\"\nheaders = { X-Key = \"env:\" }\n").unwrap_err();
        assert!(e.contains("env:NAME"), "{e}");
    }

    #[test]
    fn headers_are_checked() {
        let e = parse("[[upstream]]\nname = \"a\"\nurl = \"http://h/mcp\"\nheaders = { \"Mcp-Session-Id\" = \"x\" }\n")
            .unwrap_err();
        assert!(e.contains("set by the gateway"), "{e}");
        let e =
            parse("[[upstream]]\nname = \"a\"\nurl = \"http://h/mcp\"\nheaders = { \"a b\" = \"x\" }\n").unwrap_err();
        assert!(e.contains("not a valid HTTP header name"), "{e}");
    }

    #[test]
    fn stdio_isolation_settings_are_checked() {
        let ok = "[[upstream]]\nname = \"a\"\ncommand = \"x\"\ninherit_env = [\"NODE_OPTIONS\", \"LC_*\"]\n\
                  [upstream.limits]\nmemory_mb = 256\ncpu_secs = 60\nopen_files = 256\n";
        let c = parse(ok).unwrap();
        let u = &c.upstreams[0];
        assert!(u.inherits("PATH") && u.inherits("NODE_OPTIONS") && u.inherits("LC_TIME"));
        assert!(!u.inherits("AWS_SECRET_ACCESS_KEY") && !u.inherits("NODE_EXTRA"));
        assert_eq!(u.limits.memory_mb, Some(256));
        let e = parse("[[upstream]]\nname = \"a\"\ncommand = \"x\"\ninherit_env = [\"A=B\"]\n").unwrap_err();
        assert!(e.contains("inherit_env"), "{e}");
        let e = parse("[[upstream]]\nname = \"a\"\ncommand = \"x\"\n[upstream.limits]\nmemory_mb = 0\n").unwrap_err();
        assert!(e.contains("limits.memory_mb"), "{e}");
        let e = parse("[[upstream]]\nname = \"a\"\ncommand = \"x\"\n[upstream.limits]\nrss = 1\n").unwrap_err();
        assert!(e.contains("rss"), "{e}");
        let e =
            parse("[[upstream]]\nname = \"a\"\nurl = \"http://h/mcp\"\n[upstream.limits]\ncpu_secs = 1\n").unwrap_err();
        assert!(e.contains("only apply to stdio"), "{e}");
    }
}
