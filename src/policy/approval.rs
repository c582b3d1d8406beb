//! Which calls need a person's approval before they run (pure; the waiting happens in
//! `layers::require_approval` and `session::approvals`).

use super::{Decision, Policy, Roles, glob};
use serde_json::Value;

impl Policy {
    /// `Some(decision)` (not allowed, naming the rule) if this call must wait for a person.
    pub fn approval(&self, roles: &Roles, upstream: &str, tool: &str, arguments: &Value) -> Option<Decision> {
        let (r, t) = self.tool_rules(roles, upstream, tool)?;
        let rule = format!("{}:{}:tool:{}:approval", r.file, r.label(), t.name);
        if t.approval {
            return Some(Decision::deny(rule, format!("{tool} needs a person's approval for every call")));
        }
        for (arg, globs) in &t.approval_when {
            let values: Vec<&str> = match arguments.get(arg) {
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
                _ => continue,
            };
            for value in values {
                if let Some(g) = globs.iter().find(|g| glob::matches(g, value)) {
                    return Some(Decision::deny(
                        format!("{rule}_when:{arg}"),
                        format!("{tool} needs a person's approval when {arg} matches {g:?}"),
                    ));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::{Policy, Roles};
    use serde_json::json;

    fn policy(text: &str) -> Policy {
        Policy::from_text_for_tests(text)
    }

    #[test]
    fn tools_and_argument_patterns_can_need_approval() {
        let p = policy(
            "[[upstream]]\nname = \"fs\"\nallow = [\"*\"]\n\
             [[upstream.tool]]\nname = \"delete_*\"\napproval = true\n\
             [[upstream.tool]]\nname = \"write_file\"\napproval_when = { path = [\"/etc/*\", \"*.env\"] }\n",
        );
        assert_eq!(
            p.approval(&Roles::none(), "fs", "delete_file", &json!({})).unwrap().rule,
            "p.toml:fs:tool:delete_*:approval"
        );
        let d = p.approval(&Roles::none(), "fs", "write_file", &json!({"path": "/srv/app/.env"})).unwrap();
        assert_eq!(d.rule, "p.toml:fs:tool:write_file:approval_when:path");
        assert!(p.approval(&Roles::none(), "fs", "write_file", &json!({"path": "/srv/app/readme"})).is_none());
        assert!(p.approval(&Roles::none(), "fs", "write_file", &json!({"path": ["/tmp/x", "/etc/passwd"]})).is_some());
        assert!(p.approval(&Roles::none(), "fs", "read_file", &json!({"path": "/etc/passwd"})).is_none());
    }

    #[test]
    fn both_forms_at_once_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.toml"),
            "[[upstream]]\nname = \"fs\"\n[[upstream.tool]]\nname = \"w\"\napproval = true\napproval_when = { p = [\"*\"] }\n",
        )
        .unwrap();
        assert!(Policy::load_dir(dir.path()).unwrap_err().contains("not both"));
    }
}
