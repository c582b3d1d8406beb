//! The policy files as written (`policies/*.toml`): serde types and validation with errors that
//! name the file, the key and the fix. `compile` turns them into a [`super::Policy`].

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Decisions are computed and audited ("would deny") but calls go through.
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamRules>,
    /// What is removed from upstream output (default: secrets, terminal escapes, invisible Unicode).
    pub redaction: Option<super::redaction::RedactionConfig>,
    /// Limits per principal and per session (per tool: `rate_limit` on a tool).
    pub rate_limits: Option<super::rate::RateLimits>,
    /// What sink calls meet in a session that read from an untrusted source.
    pub taint: Option<super::taint::TaintRules>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Per-call deadline for tools with no `timeout_ms` of their own.
    pub timeout_ms: Option<u64>,
    /// Largest tool output passed to the client; larger output is withheld with a clear error.
    pub max_output_bytes: Option<usize>,
    /// Hide (and refuse calls to) tools whose definition looks poisoned (see
    /// `policy::description`). Off by default: such tools are listed, with a warning and a metric.
    pub quarantine_flagged_tools: Option<bool>,
    /// Refuse calls whose arguments carry a secret (the redaction rule set's secret rules):
    /// credentials should not travel to tools. A tool's own setting overrides this.
    pub refuse_secret_arguments: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamRules {
    /// Upstream name (from the config) or a glob over names.
    pub name: String,
    /// Only identities holding one of these roles are governed by this block; others fall through
    /// to the next block naming the upstream (none left: the upstream is hidden from them).
    /// Omitted: everyone.
    pub roles: Option<Vec<String>>,
    /// Safe default: an upstream is read-only unless its policy grants writes.
    #[serde(default = "yes")]
    pub read_only: bool,
    /// On a read-only upstream, identities holding one of these roles may still call tools that write.
    #[serde(default)]
    pub write_roles: Vec<String>,
    #[serde(default)]
    pub dry_run: bool,
    /// Tool-name globs that are allowed; a tool not matched here (or by a `[[upstream.tool]]`) is hidden.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Tool-name globs that are always hidden and refused, even if allowed above.
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default, rename = "tool")]
    pub tools: Vec<ToolRules>,
    /// Which requests this upstream may send the client: of `sampling`, `elicitation`, `roots`.
    /// Omitted: whichever the client declared. Any other is refused and audited, never forwarded.
    pub server_requests: Option<Vec<String>>,
}

/// The server-to-client requests `server_requests` can grant, by client capability.
pub const SERVER_REQUEST_KINDS: [&str; 3] = ["sampling", "elicitation", "roots"];

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRules {
    /// Tool name (the upstream's own, not the namespaced one) or a glob. Listing a tool allows it.
    pub name: String,
    /// Only identities holding one of these roles see and may call the tool; hidden from others.
    pub roles: Option<Vec<String>>,
    /// Pins the classification: upstream annotations are hints, this is the operator's word.
    pub writes: Option<bool>,
    pub timeout_ms: Option<u64>,
    pub max_output_bytes: Option<usize>,
    /// A JSON Schema file (relative to the policy directory) that replaces the tool's inputSchema.
    pub schema: Option<PathBuf>,
    pub paths: Option<PathGuard>,
    pub urls: Option<UrlGuard>,
    /// Every call needs a person's approval (admin API / CLI, or the person at the client).
    #[serde(default)]
    pub approval: bool,
    /// Approval only when a string argument matches: argument name → globs over its value
    /// (`*` matches any run of characters, `/` included).
    #[serde(default)]
    pub approval_when: std::collections::BTreeMap<String, Vec<String>>,
    /// Calls to this tool per principal.
    pub rate_limit: Option<super::rate::RateLimit>,
    /// Reading from this tool taints the session (web pages, files, mail: text an attacker may write).
    #[serde(default)]
    pub untrusted_source: bool,
    /// This tool can send data out or act (send, write, execute): in a tainted session it needs
    /// approval (or is refused, per `[taint] sinks`).
    #[serde(default)]
    pub sink: bool,
    /// Regexes (syntax of the `regex` crate: linear time) no string argument may match, e.g.
    /// shell metacharacters for a tool that runs commands: `['[;&|`$<>]', '\n']`.
    #[serde(default)]
    pub deny_arg_patterns: Vec<String>,
    /// Overrides `[defaults] refuse_secret_arguments` for this tool.
    pub refuse_secret_arguments: Option<bool>,
}

/// Path arguments must stay under one of `roots` after normalisation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathGuard {
    /// Top-level argument names holding a path (or an array of paths).
    pub args: Vec<String>,
    pub roots: Vec<PathBuf>,
}

/// URL arguments must point at one of `hosts` (exact, or `*.example.com`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlGuard {
    pub args: Vec<String>,
    pub hosts: Vec<String>,
}

impl PolicyFile {
    /// Checks what serde cannot; `Err` names the key and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.defaults.timeout_ms == Some(0) {
            return Err("defaults.timeout_ms: must be at least 1".into());
        }
        for (i, u) in self.upstreams.iter().enumerate() {
            let key = format!("upstream[{i}] (name = {:?})", u.name);
            if u.name.is_empty() {
                return Err(format!("{key}: name must not be empty (use \"*\" for every upstream)"));
            }
            check_roles(&format!("{key}.roles"), u.roles.as_deref())?;
            check_roles(&format!("{key}.write_roles"), Some(&u.write_roles).filter(|w| !w.is_empty()).map(|w| &w[..]))?;
            if !u.read_only && !u.write_roles.is_empty() {
                return Err(format!(
                    "{key}: write_roles only matters on a read-only upstream; remove it or remove read_only = false"
                ));
            }
            if let Some(kind) = u.server_requests.iter().flatten().find(|k| !SERVER_REQUEST_KINDS.contains(&k.as_str()))
            {
                return Err(format!("{key}.server_requests: unknown kind {kind:?} (use {SERVER_REQUEST_KINDS:?})"));
            }
            for pattern in u.allow.iter().chain(&u.deny) {
                if pattern.is_empty() {
                    return Err(format!("{key}: empty tool pattern in allow/deny"));
                }
            }
            for (j, t) in u.tools.iter().enumerate() {
                let tkey = format!("{key}.tool[{j}] (name = {:?})", t.name);
                if t.name.is_empty() {
                    return Err(format!("{tkey}: name must not be empty"));
                }
                check_roles(&format!("{tkey}.roles"), t.roles.as_deref())?;
                if t.timeout_ms == Some(0) {
                    return Err(format!("{tkey}: timeout_ms must be at least 1"));
                }
                if let Some(p) = &t.paths {
                    if p.args.is_empty() || p.roots.is_empty() {
                        return Err(format!("{tkey}.paths: needs at least one arg name and one root"));
                    }
                    if let Some(r) = p.roots.iter().find(|r| !r.is_absolute()) {
                        return Err(format!("{tkey}.paths: root {} must be an absolute path", r.display()));
                    }
                }
                if let Some(u) = &t.urls
                    && (u.args.is_empty() || u.hosts.is_empty())
                {
                    return Err(format!("{tkey}.urls: needs at least one arg name and one host"));
                }
                for pattern in &t.deny_arg_patterns {
                    regex::Regex::new(pattern)
                        .map_err(|e| format!("{tkey}.deny_arg_patterns: {pattern:?} is not a valid regex: {e}"))?;
                }
                if t.approval && !t.approval_when.is_empty() {
                    return Err(format!(
                        "{tkey}: set either approval = true (every call) or approval_when (matching calls), not both"
                    ));
                }
                if let Some((arg, _)) = t.approval_when.iter().find(|(_, globs)| globs.is_empty()) {
                    return Err(format!("{tkey}.approval_when.{arg}: list at least one pattern"));
                }
            }
        }
        Ok(())
    }
}

/// A role list must name at least one role, and no empty one (`roles = []` would hide the rule
/// from everyone, which is never what was meant).
fn check_roles(key: &str, roles: Option<&[String]>) -> Result<(), String> {
    match roles {
        Some([]) => Err(format!("{key}: list at least one role, or remove it to apply to everyone")),
        Some(roles) if roles.iter().any(|r| r.trim().is_empty()) => Err(format!("{key}: a role name is empty")),
        _ => Ok(()),
    }
}
