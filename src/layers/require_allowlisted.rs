//! RequireAllowlisted: a tool the policy does not allow answers exactly like an unknown tool,
//! so a hidden tool's existence is not revealed.

use super::check::{Check, ShortCircuit};
use crate::error::Error;
use crate::policy::stack::ToolCall;
use tower::Layer;

#[derive(Clone, Copy, Default)]
pub struct RequireAllowlistedLayer;

impl<S> Layer<S> for RequireAllowlistedLayer {
    type Service = Check<S>;
    fn layer(&self, inner: S) -> Check<S> {
        Check::new(inner, require_allowlisted)
    }
}

fn require_allowlisted(call: &ToolCall) -> Option<ShortCircuit> {
    let decision = call.policy.allowlist(&call.roles, &call.upstream, &call.tool.name);
    call.enforce("allowlist", decision).err().map(|_| Err(Error::UnknownTool(call.public_name.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::*;

    #[tokio::test]
    async fn hidden_tools_answer_like_unknown_ones_and_never_reach_upstream() {
        let policy = policy_from("[[upstream]]\nname = \"up\"\nallow = [\"echo\"]\n");
        let (reply, forwarded) = run(RequireAllowlistedLayer, call(&policy, "delete", Some(false), json!({}))).await;
        assert_eq!(reply.unwrap_err().code(), -32602);
        assert_eq!(forwarded, 0);
        let (reply, forwarded) = run(RequireAllowlistedLayer, call(&policy, "echo", Some(true), json!({}))).await;
        assert!(reply.is_ok());
        assert_eq!(forwarded, 1);
    }

    #[tokio::test]
    async fn dry_run_records_would_deny_and_lets_the_call_through() {
        let policy = policy_from("dry_run = true\n[[upstream]]\nname = \"up\"\nallow = [\"echo\"]\n");
        let c = call(&policy, "delete", Some(false), json!({}));
        let trail = c.trail.clone();
        let (reply, forwarded) = run(RequireAllowlistedLayer, c).await;
        assert!(reply.is_ok());
        assert_eq!(forwarded, 1);
        assert_eq!(trail.deciding().unwrap().decision, "would_deny");
    }
}
