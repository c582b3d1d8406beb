//! RequireApproval: a call the policy marks as needing a person waits here until someone
//! approves or denies it (or the deadline denies it). After the allowlist and read-only checks,
//! so nobody is asked about a call that could not run anyway; before argument validation's
//! cost is irrelevant next to a human's, but a person should only see calls policy allows.

use super::gate::Gate;
use crate::error::Error;
use crate::policy::Decision;
use crate::policy::stack::ToolCall;
use crate::policy::trail::ApprovalTrail;
use crate::session::approvals::ApprovalAsk;
use futures::FutureExt;
use futures::future::BoxFuture;
use tower::Layer;

#[derive(Clone, Copy, Default)]
pub struct RequireApprovalLayer;

impl<S> Layer<S> for RequireApprovalLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate::new(inner, require_approval)
    }
}

fn require_approval(call: ToolCall) -> BoxFuture<'static, Result<ToolCall, super::check::ShortCircuit>> {
    async move {
        let Some(pending) = call.policy.approval(&call.upstream, &call.tool.name, &call.arguments) else {
            return Ok(call);
        };
        if call.policy.dry_run(&call.upstream) {
            call.trail.record("approval", "would_deny", &pending);
            return Ok(call);
        }
        let mut shown = call.arguments.clone();
        call.policy.redactor().redact_json(&mut shown);
        let ask = ApprovalAsk {
            upstream: &call.upstream,
            tool: &call.public_name,
            arguments: shown,
            rule: &pending.rule,
            reason: &pending.reason,
            related: call.related.clone(),
        };
        let (id, decision) = match call.session.await_approval(ask).await {
            Ok(answer) => answer,
            Err(e) => {
                call.trail.record("approval", "deny", &pending);
                return Err(Err(e));
            }
        };
        call.trail.set_approval(ApprovalTrail {
            id: id.clone(),
            approved: decision.approved,
            by: decision.by.clone(),
            at_ms: decision.at_ms,
        });
        let verdict = Decision {
            allowed: decision.approved,
            rule: pending.rule.clone(),
            reason: format!("{} by {}", if decision.approved { "approved" } else { "denied" }, decision.by),
        };
        if decision.approved {
            call.trail.record("approval", "allow", &verdict);
            return Ok(call);
        }
        call.trail.record("approval", "deny", &verdict);
        let why = decision.reason.map(|r| format!(": {r}")).unwrap_or_default();
        Err(Err(Error::ApprovalDenied {
            rule: pending.rule,
            reason: format!("{} was not approved (approval {id}, denied by {}{why})", call.public_name, decision.by),
        }))
    }
    .boxed()
}
