//! Per-call policy. Pure decisions live in this module's files; `stack` assembles the tower
//! layers (in `crate::layers`) that apply them to every `tools/call`.
//!
//! A [`Policy`] is immutable once compiled; a reload builds a new one and swaps it in whole
//! (see [`handle`]), so a call sees one consistent policy from its first layer to its last.

pub mod approval;
pub mod args;
pub mod description;
pub mod file;
pub mod glob;
pub mod handle;
pub mod rate;
pub mod redaction;
pub mod schema;
pub mod stack;
pub mod taint;
pub mod tool;
pub mod trail;

use file::{Defaults, PolicyFile, ToolRules, UpstreamRules};
use redaction::{RedactionConfig, Redactor};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
pub use tool::ToolDefinition;

/// What one policy check concluded, and which rule said so (stored in the audit record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub rule: String,
    pub reason: String,
}

impl Decision {
    fn allow(rule: impl Into<String>, reason: impl Into<String>) -> Decision {
        Decision { allowed: true, rule: rule.into(), reason: reason.into() }
    }
    fn deny(rule: impl Into<String>, reason: impl Into<String>) -> Decision {
        Decision { allowed: false, rule: rule.into(), reason: reason.into() }
    }
}

/// One upstream's rules with where they came from (for rule ids).
#[derive(Debug, Clone)]
pub(crate) struct SourcedRules {
    pub(crate) file: String,
    pub(crate) rules: UpstreamRules,
    dry_run: bool,
}

#[derive(Debug, Clone)]
enum Mode {
    /// No policy files: trust read-only annotations only (the zero-config stdio wrapper).
    Annotations {
        allow_writes: bool,
    },
    Files(Vec<SourcedRules>),
}

#[derive(Debug, Clone)]
pub struct Policy {
    /// Digest of the policy sources; recorded with every audited call.
    pub version: String,
    mode: Mode,
    defaults: Defaults,
    /// Pinned argument schemas by (file-relative) path.
    schemas: HashMap<PathBuf, Arc<Value>>,
    redactor: Arc<Redactor>,
    /// The `[rate_limits]` in force and the file that set them (a later file's replace an earlier one's).
    rate_limits: (rate::RateLimits, String),
    /// `[taint]`: what tainted sessions meet at sinks (the last file that sets it wins).
    taint_rules: taint::TaintRules,
}

impl Policy {
    /// The policy with no files: tools annotated `readOnlyHint: true` are allowed, every other
    /// tool is refused unless `allow_writes`.
    pub fn annotations_only(allow_writes: bool) -> Policy {
        let version = if allow_writes { "annotations+writes" } else { "annotations" };
        Policy {
            version: version.into(),
            mode: Mode::Annotations { allow_writes },
            defaults: Defaults::default(),
            schemas: HashMap::new(),
            redactor: Arc::new(Redactor::new(&RedactionConfig::default()).expect("built-in rules compile")),
            rate_limits: Default::default(),
            taint_rules: Default::default(),
        }
    }

    /// Loads every `*.toml` in `dir` (sorted by name). Pinned schemas resolve relative to `dir`.
    pub fn load_dir(dir: &Path) -> Result<Policy, String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: cannot read the policy directory: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!(
                "{}: no *.toml policy files (remove the policy setting to use the annotation-only default)",
                dir.display()
            ));
        }
        Policy::load_files(&files, dir)
    }

    /// Loads and validates `files` in order; a later file's defaults override an earlier one's.
    pub fn load_files(files: &[PathBuf], schema_dir: &Path) -> Result<Policy, String> {
        let mut hasher = Sha256::new();
        let mut rules = Vec::new();
        let mut defaults = Defaults::default();
        let mut schemas = HashMap::new();
        let mut redaction = RedactionConfig::default();
        let mut rate_limits = (rate::RateLimits::default(), String::new());
        let mut taint_rules = taint::TaintRules::default();
        for path in files {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
            hasher.update(name.as_bytes());
            hasher.update(text.as_bytes());
            let file: PolicyFile = toml::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
            file.validate().map_err(|e| format!("{name}: {e}"))?;
            if file.defaults.timeout_ms.is_some() {
                defaults.timeout_ms = file.defaults.timeout_ms;
            }
            if file.defaults.max_output_bytes.is_some() {
                defaults.max_output_bytes = file.defaults.max_output_bytes;
            }
            if let Some(r) = &file.redaction {
                Redactor::new(r).map_err(|e| format!("{name}: {e}"))?;
                redaction = r.clone();
            }
            let short = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or(name.clone());
            if let Some(t) = file.taint {
                taint_rules = t;
            }
            if let Some(limits) = file.rate_limits {
                rate_limits = (limits, short.clone());
            }
            for upstream in &file.upstreams {
                for tool in &upstream.tools {
                    if let Some(schema) = &tool.schema {
                        let full = schema_dir.join(schema);
                        let text = std::fs::read_to_string(&full)
                            .map_err(|e| format!("{name}: tool {:?}: schema {}: {e}", tool.name, full.display()))?;
                        let value: Value = serde_json::from_str(&text).map_err(|e| {
                            format!("{name}: tool {:?}: schema {} is not JSON: {e}", tool.name, full.display())
                        })?;
                        schema::compile(&value)
                            .map_err(|e| format!("{name}: tool {:?}: schema {}: {e}", tool.name, full.display()))?;
                        hasher.update(text.as_bytes());
                        schemas.insert(schema.clone(), Arc::new(value));
                    }
                }
                rules.push(SourcedRules {
                    file: short.clone(),
                    rules: upstream.clone(),
                    dry_run: file.dry_run || upstream.dry_run,
                });
            }
        }
        let version: String = hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
        let redactor = Arc::new(Redactor::new(&redaction)?);
        Ok(Policy { version, mode: Mode::Files(rules), defaults, schemas, redactor, rate_limits, taint_rules })
    }

    fn rules_for(&self, upstream: &str) -> Option<&SourcedRules> {
        match &self.mode {
            Mode::Files(rules) => rules.iter().find(|r| glob::matches(&r.rules.name, upstream)),
            Mode::Annotations { .. } => None,
        }
    }

    pub(crate) fn tool_rules(&self, upstream: &str, tool: &str) -> Option<(&SourcedRules, &ToolRules)> {
        let r = self.rules_for(upstream)?;
        r.rules.tools.iter().find(|t| glob::matches(&t.name, tool)).map(|t| (r, t))
    }

    /// The redaction rules for everything upstreams send back.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Whether the policy for `upstream` is in dry-run (decisions audited, not enforced).
    pub fn dry_run(&self, upstream: &str) -> bool {
        self.rules_for(upstream).is_some_and(|r| r.dry_run)
    }

    /// Is `tool` of `upstream` visible and callable at all? (The same answer for `tools/list`
    /// filtering and `tools/call` enforcement.)
    pub fn allowlist(&self, upstream: &str, tool: &str) -> Decision {
        let rules = match &self.mode {
            Mode::Annotations { .. } => {
                return Decision::allow("default:annotations", "no policy files: every tool is listed");
            }
            Mode::Files(_) => match self.rules_for(upstream) {
                Some(r) => r,
                None => {
                    return Decision::deny(
                        "default:no-upstream-rule",
                        format!("no policy mentions upstream {upstream:?}"),
                    );
                }
            },
        };
        let id = |kind: &str, pattern: &str| format!("{}:{}:{kind}:{pattern}", rules.file, rules.rules.name);
        if let Some(p) = rules.rules.deny.iter().find(|p| glob::matches(p, tool)) {
            return Decision::deny(id("deny", p), format!("{tool} matches deny pattern {p:?}"));
        }
        if let Some(p) = rules.rules.allow.iter().find(|p| glob::matches(p, tool)) {
            return Decision::allow(id("allow", p), format!("{tool} matches allow pattern {p:?}"));
        }
        if let Some(t) = rules.rules.tools.iter().find(|t| glob::matches(&t.name, tool)) {
            return Decision::allow(id("tool", &t.name), format!("{tool} has a [[upstream.tool]] entry {:?}", t.name));
        }
        Decision::deny(
            format!("{}:{}:not-allowlisted", rules.file, rules.rules.name),
            format!("{tool} is not on the allowlist"),
        )
    }

    /// Does `tool` write? The policy's pin wins; otherwise only a `readOnlyHint: true`
    /// annotation makes a tool count as read-only.
    pub fn writes(&self, upstream: &str, tool: &ToolDefinition) -> (bool, String) {
        if let Some((r, t)) = self.tool_rules(upstream, &tool.name)
            && let Some(w) = t.writes
        {
            return (w, format!("{}:{}:tool:{}:writes", r.file, r.rules.name, t.name));
        }
        (tool.read_only_hint != Some(true), "annotation:readOnlyHint".into())
    }

    /// Read-only enforcement: a writing tool on a read-only upstream is refused.
    pub fn read_only(&self, upstream: &str, tool: &ToolDefinition) -> Decision {
        let (writes, classified_by) = self.writes(upstream, tool);
        if !writes {
            return Decision::allow(classified_by, format!("{} does not write", tool.name));
        }
        match &self.mode {
            Mode::Annotations { allow_writes: true } => {
                Decision::allow("default:allow-writes", "--allow-writes grants writes")
            }
            Mode::Annotations { allow_writes: false } => Decision::deny(
                "default:read-only",
                format!(
                    "{} may write (not annotated readOnlyHint: true) and no policy grants writes; start with --allow-writes or add a policy",
                    tool.name
                ),
            ),
            Mode::Files(_) => match self.rules_for(upstream) {
                Some(r) if !r.rules.read_only => {
                    Decision::allow(format!("{}:{}:read_only=false", r.file, r.rules.name), "the policy grants writes")
                }
                Some(r) => Decision::deny(
                    format!("{}:{}:read_only", r.file, r.rules.name),
                    format!(
                        "{} writes and upstream {upstream} is read-only (set read_only = false in its policy to grant writes)",
                        tool.name
                    ),
                ),
                None => {
                    Decision::deny("default:read-only", format!("{} writes and no policy grants writes", tool.name))
                }
            },
        }
    }

    /// The deadline for one call, if the policy sets one.
    pub fn timeout(&self, upstream: &str, tool: &str) -> Option<Duration> {
        self.tool_rules(upstream, tool)
            .and_then(|(_, t)| t.timeout_ms)
            .or(self.defaults.timeout_ms)
            .map(Duration::from_millis)
    }

    pub fn max_output_bytes(&self, upstream: &str, tool: &str) -> Option<usize> {
        self.tool_rules(upstream, tool).and_then(|(_, t)| t.max_output_bytes).or(self.defaults.max_output_bytes)
    }

    /// The operator's schema for `tool`, replacing the upstream's `inputSchema`.
    pub fn pinned_schema(&self, upstream: &str, tool: &str) -> Option<Arc<Value>> {
        let (_, t) = self.tool_rules(upstream, tool)?;
        self.schemas.get(t.schema.as_ref()?).cloned()
    }

    /// Path and URL argument guards for `tool`, with the rule id that set them.
    pub fn guards(&self, upstream: &str, tool: &str) -> Option<(String, &ToolRules)> {
        let (r, t) = self.tool_rules(upstream, tool)?;
        (t.paths.is_some() || t.urls.is_some()).then(|| (format!("{}:{}:tool:{}", r.file, r.rules.name, t.name), t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, ro: Option<bool>) -> ToolDefinition {
        ToolDefinition::new(name, ro, None, "d")
    }

    fn policy(text: &str) -> Policy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), text).unwrap();
        Policy::load_dir(dir.path()).unwrap()
    }

    #[test]
    fn zero_config_trusts_only_read_only_annotations() {
        let p = Policy::annotations_only(false);
        assert!(p.allowlist("u", "write_file").allowed);
        assert!(p.read_only("u", &tool("read_file", Some(true))).allowed);
        assert!(!p.read_only("u", &tool("write_file", Some(false))).allowed);
        assert!(!p.read_only("u", &tool("unannotated", None)).allowed);
        assert!(Policy::annotations_only(true).read_only("u", &tool("write_file", None)).allowed);
    }

    #[test]
    fn allowlist_deny_wins_and_unlisted_is_hidden() {
        let p = policy("[[upstream]]\nname = \"fs\"\nallow = [\"read_*\", \"list_*\"]\ndeny = [\"read_secret*\"]\n");
        assert!(p.allowlist("fs", "read_file").allowed);
        let d = p.allowlist("fs", "read_secrets");
        assert!(!d.allowed);
        assert_eq!(d.rule, "p.toml:fs:deny:read_secret*");
        assert_eq!(p.allowlist("fs", "write_file").rule, "p.toml:fs:not-allowlisted");
        assert!(!p.allowlist("other", "read_file").allowed);
    }

    #[test]
    fn upstreams_are_read_only_unless_granted_and_pins_beat_annotations() {
        let p = policy(
            "[[upstream]]\nname = \"fs\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"delete_file\"\nwrites = true\n\
             [[upstream]]\nname = \"rw\"\nread_only = false\nallow = [\"*\"]\n",
        );
        // The upstream claims delete_file is read-only; the policy pins it as writing.
        let d = p.read_only("fs", &tool("delete_file", Some(true)));
        assert!(!d.allowed);
        assert_eq!(d.rule, "p.toml:fs:read_only");
        assert!(p.read_only("fs", &tool("read_file", Some(true))).allowed);
        assert!(p.read_only("rw", &tool("write_file", None)).allowed);
    }

    #[test]
    fn timeouts_fall_back_to_defaults() {
        let p = policy(
            "[defaults]\ntimeout_ms = 1000\n[[upstream]]\nname = \"*\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"slow\"\ntimeout_ms = 50\n",
        );
        assert_eq!(p.timeout("x", "slow"), Some(Duration::from_millis(50)));
        assert_eq!(p.timeout("x", "fast"), Some(Duration::from_millis(1000)));
    }

    #[test]
    fn bad_policies_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.toml"), "[[upstream]]\nname = \"x\"\nalow = []\n").unwrap();
        let e = Policy::load_dir(dir.path()).unwrap_err();
        assert!(e.contains("bad.toml") && e.contains("alow"), "{e}");
    }
}
