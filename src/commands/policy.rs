//! `tollgate policy check` and `tollgate policy explain`: validate policy files, and show which
//! rule decides a call and why — the same functions the live layers use.

use crate::layers::validate_arguments::{ArgumentsVerdict, check_arguments};
use crate::policy::schema::SchemaCache;
use crate::policy::{Decision, Policy, Roles, ToolDefinition};
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Loads a directory, or a list of files (schemas resolve from the first file's directory).
pub fn load(paths: &[PathBuf]) -> Result<Policy, String> {
    match paths {
        [] => Policy::load_dir(Path::new("policies")),
        [one] if one.is_dir() => Policy::load_dir(one),
        files => {
            let base = files[0].parent().map(Path::to_path_buf).unwrap_or_default();
            Policy::load_files(files, &base)
        }
    }
}

/// What the call would meet, layer by layer; the final line says allow or deny and why.
pub fn explain(
    policy: &Policy,
    roles: &Roles,
    upstream: &str,
    tool: &str,
    read_only_hint: Option<bool>,
    args: &Value,
) -> (bool, String) {
    let mut out = String::new();
    let _ = writeln!(out, "policy {}; upstream {upstream:?}, tool {tool:?}", policy.version);
    if !roles.is_empty() {
        let _ = writeln!(out, "as an identity with roles {:?}", roles.to_vec());
    }
    let dry_run = policy.dry_run(roles, upstream);
    if dry_run {
        let _ = writeln!(out, "dry run: denials are recorded as would_deny and the call goes through");
    }
    let definition = ToolDefinition::new(tool, read_only_hint, None, "");
    let mut verdict: Option<Decision> = None;
    let mut step = |layer: &str, d: Decision| {
        let word = if d.allowed { "allow" } else { "deny " };
        let _ = writeln!(out, "{layer:<10} {word}  rule {}  — {}", d.rule, d.reason);
        if !d.allowed && verdict.is_none() {
            verdict = Some(d);
        }
    };
    step("allowlist", policy.allowlist(roles, upstream, tool));
    step("read_only", policy.read_only(roles, upstream, &definition));
    let arguments = match check_arguments(policy, roles, upstream, &definition, args, &SchemaCache::default()) {
        ArgumentsVerdict::Valid { rule } => Decision {
            allowed: true,
            rule,
            reason: "arguments valid (against the pinned schema and guards; the upstream's own schema is checked live)"
                .into(),
        },
        ArgumentsVerdict::Invalid { rule, problems } => Decision { allowed: false, rule, reason: problems.join("; ") },
        ArgumentsVerdict::Unusable { rule, reason } => Decision { allowed: false, rule, reason },
    };
    step("arguments", arguments);
    match policy.timeout(roles, upstream, tool) {
        Some(t) => {
            let _ = writeln!(out, "timeout    {} ms", t.as_millis());
        }
        None => {
            let _ = writeln!(out, "timeout    the gateway default (gateway.request_timeout_secs)");
        }
    }
    let allowed = match &verdict {
        None => {
            let _ = writeln!(out, "=> ALLOW");
            true
        }
        Some(d) if dry_run => {
            let _ = writeln!(out, "=> ALLOW (dry run; would deny by {})", d.rule);
            true
        }
        Some(d) => {
            let _ = writeln!(out, "=> DENY by {}", d.rule);
            false
        }
    };
    (allowed, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn explain_names_the_deciding_rule() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), "[[upstream]]\nname = \"fs\"\nallow = [\"*\"]\n").unwrap();
        let policy = load(&[dir.path().to_path_buf()]).unwrap();
        let (allowed, text) = explain(&policy, &Roles::none(), "fs", "write_file", Some(false), &json!({}));
        assert!(!allowed);
        assert!(text.contains("=> DENY by p.toml:fs:read_only"), "{text}");
        let (allowed, text) = explain(&policy, &Roles::none(), "fs", "read_file", Some(true), &json!({}));
        assert!(allowed, "{text}");
    }
}
