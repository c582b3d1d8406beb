//! Per-call policy. Pure decisions live in this module's files; `stack` assembles the tower
//! layers (in `crate::layers`) that apply them to every `tools/call`.
//!
//! A [`Policy`] is immutable once compiled; a reload builds a new one and swaps it in whole
//! (see [`handle`]), so a call sees one consistent policy from its first layer to its last.

pub mod approval;
pub mod arg_content;
pub mod args;
pub mod description;
pub mod file;
pub mod glob;
pub mod handle;
pub mod listing;
pub mod rate;
pub mod redaction;
pub mod roles;
pub mod schema;
pub mod stack;
pub mod taint;
pub mod tool;
pub mod trail;

use file::{Defaults, PolicyFile, ToolRules, UpstreamRules};
use redaction::{RedactionConfig, Redactor};
pub use roles::Roles;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
pub use tool::ToolDefinition;

/// See [`Policy::argument_content_rules`].
pub struct ArgumentContentRules<'a> {
    pub refuse_secrets: bool,
    /// The rule id and the patterns, when the tool has any.
    pub patterns: Option<(String, Vec<&'a regex::Regex>)>,
}

/// The rule id of a tool hidden because its definition was flagged (`quarantine_flagged_tools`).
pub const QUARANTINE_RULE: &str = "quarantine:description";

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

impl SourcedRules {
    /// The block's name in rule ids: its upstream pattern, plus its roles when it is limited to
    /// some (`fs[admin,ops]`), so a decision names the role rule that made it.
    pub(crate) fn label(&self) -> String {
        match &self.rules.roles {
            Some(roles) => format!("{}[{}]", self.rules.name, roles.join(",")),
            None => self.rules.name.clone(),
        }
    }

    /// Does this block govern an identity holding `roles`?
    fn applies_to(&self, roles: &Roles) -> bool {
        self.rules.roles.as_deref().is_none_or(|wanted| roles.first_of(wanted).is_some())
    }
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
    /// Every tool's `deny_arg_patterns`, compiled once, by pattern text.
    arg_patterns: HashMap<String, regex::Regex>,
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
            arg_patterns: HashMap::new(),
        }
    }

    /// Whether a change at `path` can change what [`Policy::load_dir`] reads from `dir`, this
    /// policy having been loaded from there: a policy file, a schema this policy pins, any JSON
    /// file or anything under `schemas/` (a schema the policy being edited may pin next), or the
    /// directory itself. Other files kept there (an audit log, written twice per call) do not.
    pub fn depends_on(&self, dir: &Path, path: &Path) -> bool {
        // Reported under another spelling of the directory (a symlink): assume it does.
        let Ok(rest) = path.strip_prefix(dir) else { return true };
        rest.as_os_str().is_empty()
            || (rest.parent() == Some(Path::new("")) && is_policy_file(rest))
            || rest.starts_with("schemas")
            || rest.extension().is_some_and(|x| x == "json")
            || self.schemas.contains_key(rest)
    }

    /// Loads every `*.toml` in `dir` (sorted by name). Pinned schemas resolve relative to `dir`.
    pub fn load_dir(dir: &Path) -> Result<Policy, String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: cannot read the policy directory: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_policy_file(p))
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
        let mut arg_patterns = HashMap::new();
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
            if file.defaults.quarantine_flagged_tools.is_some() {
                defaults.quarantine_flagged_tools = file.defaults.quarantine_flagged_tools;
            }
            if file.defaults.refuse_secret_arguments.is_some() {
                defaults.refuse_secret_arguments = file.defaults.refuse_secret_arguments;
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
                    for pattern in &tool.deny_arg_patterns {
                        let compiled = regex::Regex::new(pattern).map_err(|e| format!("{name}: {e}"))?;
                        arg_patterns.insert(pattern.clone(), compiled);
                    }
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
        let version = crate::hex::encode(&hasher.finalize()[..8]);
        let redactor = Arc::new(Redactor::new(&redaction)?);
        Ok(Policy {
            version,
            mode: Mode::Files(rules),
            defaults,
            schemas,
            redactor,
            rate_limits,
            taint_rules,
            arg_patterns,
        })
    }

    /// The first block that names `upstream` and applies to `roles`: the one every decision for
    /// this identity and upstream is taken from.
    fn rules_for(&self, roles: &Roles, upstream: &str) -> Option<&SourcedRules> {
        match &self.mode {
            Mode::Files(rules) => rules.iter().find(|r| glob::matches(&r.rules.name, upstream) && r.applies_to(roles)),
            Mode::Annotations { .. } => None,
        }
    }

    pub(crate) fn tool_rules(&self, roles: &Roles, upstream: &str, tool: &str) -> Option<(&SourcedRules, &ToolRules)> {
        let r = self.rules_for(roles, upstream)?;
        r.rules.tools.iter().find(|t| glob::matches(&t.name, tool)).map(|t| (r, t))
    }

    /// The redaction rules for everything upstreams send back.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// With `quarantine_flagged_tools`, a tool whose definition looks poisoned is hidden and
    /// refused (rule `quarantine:description`); `None` when the tool may be offered.
    pub fn quarantine(&self, tool: &ToolDefinition) -> Option<Decision> {
        if !self.defaults.quarantine_flagged_tools.unwrap_or(false) || tool.flags.is_empty() {
            return None;
        }
        Some(Decision::deny(
            QUARANTINE_RULE,
            format!("{}'s definition looks like it carries hidden instructions ({})", tool.name, tool.flags.join(", ")),
        ))
    }

    /// May `upstream` send the client a request that needs the client capability `kind`
    /// (`sampling`, `elicitation`, `roots`)? Decided by the first block naming the upstream,
    /// whatever its roles: the upstream asks, not an identity. No `server_requests`: allowed
    /// (the client's declared capabilities still apply).
    pub fn server_request(&self, upstream: &str, kind: &str) -> Decision {
        let Mode::Files(all) = &self.mode else {
            return Decision::allow("default:client-capabilities", "no policy files");
        };
        let Some(block) = all.iter().find(|r| glob::matches(&r.rules.name, upstream)) else {
            return Decision::allow("default:client-capabilities", "no policy block names the upstream");
        };
        let rule = format!("{}:{}:server_requests", block.file, block.label());
        match &block.rules.server_requests {
            Some(granted) if !granted.iter().any(|g| g == kind) => Decision::deny(
                rule,
                format!("the policy does not let upstream {upstream:?} send {kind} requests to the client"),
            ),
            _ => Decision::allow(rule, "allowed"),
        }
    }

    /// Whether the policy for `upstream` is in dry-run (decisions audited, not enforced).
    pub fn dry_run(&self, roles: &Roles, upstream: &str) -> bool {
        self.rules_for(roles, upstream).is_some_and(|r| r.dry_run)
    }

    /// Is `tool` of `upstream` visible and callable at all for an identity holding `roles`?
    /// (The same answer for `tools/list` filtering and `tools/call` enforcement.)
    pub fn allowlist(&self, roles: &Roles, upstream: &str, tool: &str) -> Decision {
        let rules = match &self.mode {
            Mode::Annotations { .. } => {
                return Decision::allow("default:annotations", "no policy files: every tool is listed");
            }
            Mode::Files(all) => match self.rules_for(roles, upstream) {
                Some(r) => r,
                None if all.iter().any(|r| glob::matches(&r.rules.name, upstream)) => {
                    return Decision::deny(
                        "default:no-role-rule",
                        format!("no policy block for upstream {upstream:?} applies to this identity's roles"),
                    );
                }
                None => {
                    return Decision::deny(
                        "default:no-upstream-rule",
                        format!("no policy mentions upstream {upstream:?}"),
                    );
                }
            },
        };
        let label = rules.label();
        let id = |kind: &str, pattern: &str| format!("{}:{label}:{kind}:{pattern}", rules.file);
        if let Some(p) = rules.rules.deny.iter().find(|p| glob::matches(p, tool)) {
            return Decision::deny(id("deny", p), format!("{tool} matches deny pattern {p:?}"));
        }
        // A tool limited to some roles: its entry decides, before any broad allow pattern.
        if let Some(t) = rules.rules.tools.iter().find(|t| glob::matches(&t.name, tool))
            && let Some(wanted) = &t.roles
        {
            let rule = format!("{}:roles", id("tool", &t.name));
            return match roles.first_of(wanted) {
                Some(role) => Decision::allow(rule, format!("{tool} is granted to role {role:?}")),
                None => Decision::deny(rule, format!("{tool} is limited to roles {wanted:?}")),
            };
        }
        if let Some(p) = rules.rules.allow.iter().find(|p| glob::matches(p, tool)) {
            return Decision::allow(id("allow", p), format!("{tool} matches allow pattern {p:?}"));
        }
        if let Some(t) = rules.rules.tools.iter().find(|t| glob::matches(&t.name, tool)) {
            return Decision::allow(id("tool", &t.name), format!("{tool} has a [[upstream.tool]] entry {:?}", t.name));
        }
        Decision::deny(format!("{}:{label}:not-allowlisted", rules.file), format!("{tool} is not on the allowlist"))
    }

    /// Does `tool` write? The policy's pin wins; otherwise only a `readOnlyHint: true`
    /// annotation makes a tool count as read-only.
    pub fn writes(&self, roles: &Roles, upstream: &str, tool: &ToolDefinition) -> (bool, String) {
        if let Some((r, t)) = self.tool_rules(roles, upstream, &tool.name)
            && let Some(w) = t.writes
        {
            return (w, format!("{}:{}:tool:{}:writes", r.file, r.label(), t.name));
        }
        (tool.read_only_hint != Some(true), "annotation:readOnlyHint".into())
    }

    /// Read-only enforcement: a writing tool on a read-only upstream is refused, unless the
    /// identity holds one of the upstream's `write_roles`.
    pub fn read_only(&self, roles: &Roles, upstream: &str, tool: &ToolDefinition) -> Decision {
        let (writes, classified_by) = self.writes(roles, upstream, tool);
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
            Mode::Files(_) => match self.rules_for(roles, upstream) {
                Some(r) if !r.rules.read_only => {
                    Decision::allow(format!("{}:{}:read_only=false", r.file, r.label()), "the policy grants writes")
                }
                Some(r) if roles.first_of(&r.rules.write_roles).is_some() => {
                    let role = roles.first_of(&r.rules.write_roles).unwrap_or_default();
                    Decision::allow(
                        format!("{}:{}:write_roles:{role}", r.file, r.label()),
                        format!("role {role:?} is granted writes"),
                    )
                }
                Some(r) => Decision::deny(
                    format!("{}:{}:read_only", r.file, r.label()),
                    if r.rules.write_roles.is_empty() {
                        format!(
                            "{} writes and upstream {upstream} is read-only (set read_only = false in its policy to grant writes)",
                            tool.name
                        )
                    } else {
                        format!(
                            "{} writes and upstream {upstream} is read-only except for roles {:?}",
                            tool.name, r.rules.write_roles
                        )
                    },
                ),
                None => {
                    Decision::deny("default:read-only", format!("{} writes and no policy grants writes", tool.name))
                }
            },
        }
    }

    /// The deadline for one call, if the policy sets one.
    pub fn timeout(&self, roles: &Roles, upstream: &str, tool: &str) -> Option<Duration> {
        self.tool_rules(roles, upstream, tool)
            .and_then(|(_, t)| t.timeout_ms)
            .or(self.defaults.timeout_ms)
            .map(Duration::from_millis)
    }

    pub fn max_output_bytes(&self, roles: &Roles, upstream: &str, tool: &str) -> Option<usize> {
        self.tool_rules(roles, upstream, tool).and_then(|(_, t)| t.max_output_bytes).or(self.defaults.max_output_bytes)
    }

    /// The operator's schema for `tool`, replacing the upstream's `inputSchema`.
    pub fn pinned_schema(&self, roles: &Roles, upstream: &str, tool: &str) -> Option<Arc<Value>> {
        let (_, t) = self.tool_rules(roles, upstream, tool)?;
        self.schemas.get(t.schema.as_ref()?).cloned()
    }

    /// Path and URL argument guards for `tool`, with the rule id that set them.
    /// What the strings in a call's arguments must not contain: the tool's compiled deny
    /// patterns (with its rule id prefix) and whether secrets refuse the call.
    pub fn argument_content_rules(&self, roles: &Roles, upstream: &str, tool: &str) -> ArgumentContentRules<'_> {
        let entry = self.tool_rules(roles, upstream, tool);
        let refuse_secrets = entry
            .and_then(|(_, t)| t.refuse_secret_arguments)
            .or(self.defaults.refuse_secret_arguments)
            .unwrap_or(false);
        let patterns = entry
            .map(|(r, t)| {
                let rule = format!("{}:{}:tool:{}:deny_arg_patterns", r.file, r.label(), t.name);
                let compiled = t.deny_arg_patterns.iter().filter_map(|p| self.arg_patterns.get(p)).collect();
                (rule, compiled)
            })
            .filter(|(_, compiled): &(String, Vec<&regex::Regex>)| !compiled.is_empty());
        ArgumentContentRules { refuse_secrets, patterns }
    }

    pub fn guards(&self, roles: &Roles, upstream: &str, tool: &str) -> Option<(String, &ToolRules)> {
        let (r, t) = self.tool_rules(roles, upstream, tool)?;
        (t.paths.is_some() || t.urls.is_some()).then(|| (format!("{}:{}:tool:{}", r.file, r.label(), t.name), t))
    }
}

impl Policy {
    /// A policy from one file's text (`p.toml`), for unit tests across the crate.
    #[cfg(test)]
    pub(crate) fn from_text_for_tests(text: &str) -> Policy {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("p.toml"), text).expect("write policy");
        Policy::load_dir(dir.path()).expect("valid policy")
    }
}

/// A policy file (read from the top of the policy directory).
fn is_policy_file(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_policy_reads_is_a_dependency() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pinned")).unwrap();
        std::fs::write(dir.path().join("pinned/args.schema"), r#"{"type":"object"}"#).unwrap();
        std::fs::write(
            dir.path().join("p.toml"),
            "[[upstream]]\nname = \"a\"\nallow = [\"t\"]\n[[upstream.tool]]\nname = \"t\"\nschema = \"pinned/args.schema\"\n",
        )
        .unwrap();
        let p = Policy::load_dir(dir.path()).unwrap();
        let d = dir.path();
        for yes in ["p.toml", "new.toml", "pinned/args.schema", "schemas/get-sum.json", "schemas", "other.json", ""] {
            assert!(p.depends_on(d, &d.join(yes)), "{yes}");
        }
        for no in ["audit.jsonl", "audit.jsonl.3", "p.toml.swp", "notes/p.toml", "README.md", "pinned/other"] {
            assert!(!p.depends_on(d, &d.join(no)), "{no}");
        }
        assert!(p.depends_on(d, Path::new("/elsewhere/p.toml")), "another spelling of the directory");
    }

    fn tool(name: &str, ro: Option<bool>) -> ToolDefinition {
        ToolDefinition::new(name, ro, None, "d")
    }

    fn policy(text: &str) -> Policy {
        Policy::from_text_for_tests(text)
    }

    #[test]
    fn zero_config_trusts_only_read_only_annotations() {
        let p = Policy::annotations_only(false);
        assert!(p.allowlist(&Roles::none(), "u", "write_file").allowed);
        assert!(p.read_only(&Roles::none(), "u", &tool("read_file", Some(true))).allowed);
        assert!(!p.read_only(&Roles::none(), "u", &tool("write_file", Some(false))).allowed);
        assert!(!p.read_only(&Roles::none(), "u", &tool("unannotated", None)).allowed);
        assert!(Policy::annotations_only(true).read_only(&Roles::none(), "u", &tool("write_file", None)).allowed);
    }

    #[test]
    fn allowlist_deny_wins_and_unlisted_is_hidden() {
        let p = policy("[[upstream]]\nname = \"fs\"\nallow = [\"read_*\", \"list_*\"]\ndeny = [\"read_secret*\"]\n");
        assert!(p.allowlist(&Roles::none(), "fs", "read_file").allowed);
        let d = p.allowlist(&Roles::none(), "fs", "read_secrets");
        assert!(!d.allowed);
        assert_eq!(d.rule, "p.toml:fs:deny:read_secret*");
        assert_eq!(p.allowlist(&Roles::none(), "fs", "write_file").rule, "p.toml:fs:not-allowlisted");
        assert!(!p.allowlist(&Roles::none(), "other", "read_file").allowed);
    }

    #[test]
    fn upstreams_are_read_only_unless_granted_and_pins_beat_annotations() {
        let p = policy(
            "[[upstream]]\nname = \"fs\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"delete_file\"\nwrites = true\n\
             [[upstream]]\nname = \"rw\"\nread_only = false\nallow = [\"*\"]\n",
        );
        // The upstream claims delete_file is read-only; the policy pins it as writing.
        let d = p.read_only(&Roles::none(), "fs", &tool("delete_file", Some(true)));
        assert!(!d.allowed);
        assert_eq!(d.rule, "p.toml:fs:read_only");
        assert!(p.read_only(&Roles::none(), "fs", &tool("read_file", Some(true))).allowed);
        assert!(p.read_only(&Roles::none(), "rw", &tool("write_file", None)).allowed);
    }

    #[test]
    fn timeouts_fall_back_to_defaults() {
        let p = policy(
            "[defaults]\ntimeout_ms = 1000\n[[upstream]]\nname = \"*\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"slow\"\ntimeout_ms = 50\n",
        );
        assert_eq!(p.timeout(&Roles::none(), "x", "slow"), Some(Duration::from_millis(50)));
        assert_eq!(p.timeout(&Roles::none(), "x", "fast"), Some(Duration::from_millis(1000)));
    }

    #[test]
    fn role_blocks_tool_roles_and_write_roles_decide_per_identity() {
        let p = policy(
            "[[upstream]]\nname = \"fs\"\nroles = [\"admin\"]\nread_only = false\nallow = [\"*\"]\n\
             [[upstream]]\nname = \"fs\"\nallow = [\"read_*\", \"write_*\"]\nwrite_roles = [\"editor\"]\n\
             [[upstream.tool]]\nname = \"read_secrets\"\nroles = [\"auditor\"]\n\
             [[upstream]]\nname = \"ops\"\nroles = [\"admin\"]\nallow = [\"*\"]\n",
        );
        let (admin, nobody) = (Roles::new(["admin"]), Roles::none());
        let (editor, auditor) = (Roles::new(["editor"]), Roles::new(["auditor"]));
        // The first block that applies to the identity decides, and its id names the role rule.
        let d = p.allowlist(&admin, "fs", "delete_file");
        assert!(d.allowed);
        assert_eq!(d.rule, "p.toml:fs[admin]:allow:*");
        assert_eq!(p.read_only(&admin, "fs", &tool("delete_file", None)).rule, "p.toml:fs[admin]:read_only=false");
        // Without the role, the general block: fewer tools, read-only.
        assert!(!p.allowlist(&nobody, "fs", "delete_file").allowed);
        assert!(p.allowlist(&nobody, "fs", "read_file").allowed);
        assert_eq!(p.read_only(&nobody, "fs", &tool("write_file", None)).rule, "p.toml:fs:read_only");
        let d = p.read_only(&editor, "fs", &tool("write_file", None));
        assert!(d.allowed);
        assert_eq!(d.rule, "p.toml:fs:write_roles:editor");
        // A tool limited to a role is hidden from others even though an allow pattern matches it.
        let d = p.allowlist(&nobody, "fs", "read_secrets");
        assert!(!d.allowed);
        assert_eq!(d.rule, "p.toml:fs:tool:read_secrets:roles");
        assert!(p.allowlist(&auditor, "fs", "read_secrets").allowed);
        // An upstream only a role block names is hidden from everyone else.
        assert_eq!(p.allowlist(&nobody, "ops", "x").rule, "default:no-role-rule");
        assert!(p.allowlist(&admin, "ops", "x").allowed);
    }

    #[test]
    fn role_lists_must_name_roles() {
        for bad in [
            "[[upstream]]\nname = \"fs\"\nroles = []\n",
            "[[upstream]]\nname = \"fs\"\nwrite_roles = [\"\"]\n",
            "[[upstream]]\nname = \"fs\"\n[[upstream.tool]]\nname = \"t\"\nroles = []\n",
            "[[upstream]]\nname = \"fs\"\nread_only = false\nwrite_roles = [\"a\"]\n",
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("p.toml"), bad).unwrap();
            let e = Policy::load_dir(dir.path()).unwrap_err();
            assert!(e.contains("roles"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_policies_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.toml"), "[[upstream]]\nname = \"x\"\nalow = []\n").unwrap();
        let e = Policy::load_dir(dir.path()).unwrap_err();
        assert!(e.contains("bad.toml") && e.contains("alow"), "{e}");
    }
}
