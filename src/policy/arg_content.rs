//! What a call's string arguments must not carry: secrets (the redaction rule set's secret
//! rules, with `refuse_secret_arguments`) and matches of a tool's `deny_arg_patterns` (e.g.
//! shell metacharacters for a tool that runs commands). Refused outright (-31001 with the rule
//! id), not as a correctable tool error: the model should not learn to rephrase around them.
//! Reasons name the argument's JSON pointer and the rule, never the value.

use super::redaction::{INVISIBLE_UNICODE, TERMINAL_ESCAPE};
use super::{Decision, Policy, Roles};
use serde_json::Value;

/// Redaction rules that find something other than a credential (not a reason to refuse).
const NOT_SECRETS: [&str; 5] = [TERMINAL_ESCAPE, INVISIBLE_UNICODE, "email", "credit-card", "phone"];

/// The first rule the arguments break, as a denial; `None` when they break none.
pub fn check(policy: &Policy, roles: &Roles, upstream: &str, tool: &str, args: &Value) -> Option<Decision> {
    let rules = policy.argument_content_rules(roles, upstream, tool);
    if let Some((rule, patterns)) = &rules.patterns {
        let mut found = None;
        walk_strings(args, &mut String::new(), &mut |pointer, text| {
            if found.is_none()
                && let Some(p) = patterns.iter().find(|p| p.is_match(text))
            {
                found = Some(format!("argument {pointer} matches the refused pattern {:?}", p.as_str()));
            }
        });
        if let Some(reason) = found {
            return Some(Decision { allowed: false, rule: rule.clone(), reason: format!("{tool}: {reason}") });
        }
    }
    if rules.refuse_secrets {
        let mut copy = args.clone();
        let report = policy.redactor().redact_json(&mut copy);
        if let Some(secret) = report.by_rule.keys().find(|r| !NOT_SECRETS.contains(&r.as_str())) {
            return Some(Decision {
                allowed: false,
                rule: format!("arguments:secret:{secret}"),
                reason: format!(
                    "{tool}: an argument carries what looks like a secret ({secret}); secrets are not sent to tools"
                ),
            });
        }
    }
    None
}

/// Calls `f(pointer, text)` for every string value under `value`.
fn walk_strings(value: &Value, pointer: &mut String, f: &mut impl FnMut(&str, &str)) {
    match value {
        Value::String(text) => f(if pointer.is_empty() { "/" } else { pointer }, text),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                walk_strings(item, pointer, f);
                pointer.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, member) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                walk_strings(member, pointer, f);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXEC: &str = "[[upstream]]\nname = \"sh\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"run\"\n\
                        deny_arg_patterns = ['[;&|`$<>]', '\\n']\n";

    #[test]
    fn shell_metacharacters_refuse_an_exec_style_call_and_plain_arguments_pass() {
        let p = Policy::from_text_for_tests(EXEC);
        let none = Roles::none();
        assert!(check(&p, &none, "sh", "run", &json!({"cmd": "ls -la /tmp"})).is_none());
        for bad in ["ls; rm -rf ~", "$(curl x)", "`id`", "a\nrm -rf /", "a && b", "cat </etc/shadow"] {
            let d = check(&p, &none, "sh", "run", &json!({"args": ["-l", bad]})).expect(bad);
            assert_eq!(d.rule, "p.toml:sh:tool:run:deny_arg_patterns");
            assert!(d.reason.contains("/args/1") && !d.reason.contains(bad), "{}", d.reason);
        }
        assert!(check(&p, &none, "sh", "other", &json!({"cmd": "a; b"})).is_none(), "only the named tool");
    }

    #[test]
    fn secrets_in_arguments_refuse_the_call_only_when_asked() {
        let args = json!({"note": "my key is AKIAIOSFODNN7EXAMPLE", "color": "\u{1b}[31mred"});
        let open = Policy::from_text_for_tests("[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n");
        assert!(check(&open, &Roles::none(), "up", "t", &args).is_none());
        let strict = Policy::from_text_for_tests(
            "[defaults]\nrefuse_secret_arguments = true\n[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n\
             [[upstream.tool]]\nname = \"login\"\nrefuse_secret_arguments = false\n",
        );
        let d = check(&strict, &Roles::none(), "up", "t", &args).unwrap();
        assert_eq!(d.rule, "arguments:secret:aws-access-key");
        assert!(!d.reason.contains("AKIA"), "{}", d.reason);
        assert!(check(&strict, &Roles::none(), "up", "t", &json!({"color": "\u{1b}[31mred"})).is_none());
        assert!(check(&strict, &Roles::none(), "up", "login", &args).is_none(), "the tool's own setting wins");
    }

    #[test]
    fn an_invalid_pattern_is_a_policy_error() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[[upstream]]\nname = \"sh\"\n[[upstream.tool]]\nname = \"run\"\ndeny_arg_patterns = ['(']\n";
        std::fs::write(dir.path().join("p.toml"), text).unwrap();
        let e = Policy::load_dir(dir.path()).unwrap_err();
        assert!(e.contains("deny_arg_patterns"), "{e}");
    }
}
