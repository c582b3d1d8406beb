//! Data-flow rules: tools marked as untrusted sources (web fetch, reading files or mail) taint
//! the session that reads them; tools marked as sinks (sending, writing, executing) then need a
//! person's approval, or are refused — so text injected through a tool's output cannot quietly
//! exfiltrate data through another tool. Pure decisions; the mark is kept with the session.

use super::{Decision, Policy, Roles};
use crate::session::store::Taint;
use serde::Deserialize;

/// What a sink call meets once its session is tainted.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SinkAction {
    /// A person must approve the call (see `RequireApproval`).
    #[default]
    Approval,
    /// The call is refused.
    Deny,
}

/// `[taint]` in a policy file.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TaintRules {
    #[serde(default)]
    pub sinks: SinkAction,
}

/// What the data-flow rules say about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkVerdict {
    /// Not a sink, or the session is clean.
    Allow,
    NeedsApproval(Decision),
    Deny(Decision),
}

impl Policy {
    /// The rule that marks `tool` as an untrusted source, if one does.
    pub fn untrusted_source(&self, roles: &Roles, upstream: &str, tool: &str) -> Option<String> {
        let (r, t) = self.tool_rules(roles, upstream, tool)?;
        t.untrusted_source.then(|| format!("{}:{}:tool:{}:untrusted_source", r.file, r.rules.name, t.name))
    }

    /// Whether `tool` is a sink (cheap; the session's taint is only looked up for sinks).
    pub fn is_sink(&self, roles: &Roles, upstream: &str, tool: &str) -> bool {
        self.tool_rules(roles, upstream, tool).is_some_and(|(_, t)| t.sink)
    }

    /// The data-flow decision for a call to `tool` in a session with `taint`.
    pub fn sink(&self, roles: &Roles, upstream: &str, tool: &str, taint: Option<&Taint>) -> SinkVerdict {
        let (Some((r, t)), Some(taint)) = (self.tool_rules(roles, upstream, tool), taint) else {
            return SinkVerdict::Allow;
        };
        if !t.sink {
            return SinkVerdict::Allow;
        }
        let rule = format!("{}:{}:tool:{}:sink", r.file, r.rules.name, t.name);
        let why = format!(
            "{tool} is a sink and this session read untrusted data from {}/{} (rule {})",
            taint.upstream, taint.tool, taint.rule
        );
        match self.taint_rules.sinks {
            SinkAction::Approval => SinkVerdict::NeedsApproval(Decision::deny(rule, format!("{why}: needs approval"))),
            SinkAction::Deny => SinkVerdict::Deny(Decision::deny(rule, format!("{why}: refused"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::from_text_for_tests(text)
    }

    const RULES: &str = "[[upstream]]\nname = \"web\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"fetch\"\nuntrusted_source = true\n\
                         [[upstream]]\nname = \"mail\"\nread_only = false\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"send\"\nsink = true\n";

    fn none() -> Roles {
        Roles::none()
    }

    fn taint() -> Taint {
        Taint {
            upstream: "web".into(),
            tool: "fetch".into(),
            at_ms: 1,
            rule: "p.toml:web:tool:fetch:untrusted_source".into(),
        }
    }

    #[test]
    fn sinks_need_approval_only_once_the_session_is_tainted() {
        let p = policy(RULES);
        assert_eq!(
            p.untrusted_source(&none(), "web", "fetch").as_deref(),
            Some("p.toml:web:tool:fetch:untrusted_source")
        );
        assert!(p.untrusted_source(&none(), "mail", "send").is_none());
        assert!(p.is_sink(&none(), "mail", "send") && !p.is_sink(&none(), "web", "fetch"));
        assert_eq!(p.sink(&none(), "mail", "send", None), SinkVerdict::Allow);
        match p.sink(&none(), "mail", "send", Some(&taint())) {
            SinkVerdict::NeedsApproval(d) => assert_eq!(d.rule, "p.toml:mail:tool:send:sink"),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.sink(&none(), "mail", "read", Some(&taint())), SinkVerdict::Allow);
    }

    #[test]
    fn sinks_can_be_refused_outright() {
        let p = policy(&format!("[taint]\nsinks = \"deny\"\n{RULES}"));
        assert!(matches!(p.sink(&none(), "mail", "send", Some(&taint())), SinkVerdict::Deny(_)));
    }
}
