//! RequireApproval: a call the policy marks as needing a person — by rule, or because it is a
//! sink in a session tainted by an untrusted source — waits here until someone approves or
//! denies it (or the deadline denies it). After the allowlist and read-only checks,
//! so nobody is asked about a call that could not run anyway; before argument validation's
//! cost is irrelevant next to a human's, but a person should only see calls policy allows.

use super::gate::Gate;
use crate::error::Error;
use crate::jsonrpc::raw_object::raw;
use crate::jsonrpc::{self, Frame, RawObject};
use crate::policy::Decision;
use crate::policy::stack::ToolCall;
use crate::policy::taint::SinkVerdict;
use crate::policy::trail::ApprovalTrail;
use crate::session::approvals::{APPROVAL_INPUT, ApprovalAsk};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;
use tower::Layer;

#[derive(Clone, Copy, Default)]
pub struct RequireApprovalLayer;

impl<S> Layer<S> for RequireApprovalLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate::new(inner, require_approval)
    }
}

/// `params.requestState` and `params.inputResponses` of a 2026-07-28 retry.
fn input_fields(frame: &Frame) -> (Option<String>, Option<Value>) {
    #[derive(serde::Deserialize)]
    struct P {
        #[serde(rename = "requestState")]
        request_state: Option<String>,
        #[serde(rename = "inputResponses")]
        input_responses: Option<Value>,
    }
    match frame.params_as::<P>() {
        Ok(p) => (p.request_state, p.input_responses),
        Err(_) => (None, None),
    }
}

/// The request without the gateway's own round-trip fields (other `inputResponses` stay: they
/// answer the upstream's questions).
fn without_input_fields(frame: &Frame) -> Frame {
    let Ok(mut params) = RawObject::parse(frame.params().unwrap_or("{}")) else { return frame.clone() };
    params.remove("requestState");
    if let Some(responses) = params.remove("inputResponses")
        && let Ok(mut responses) = RawObject::parse(responses.get())
    {
        responses.remove(APPROVAL_INPUT);
        if !responses.0.is_empty() {
            params.set("inputResponses", raw(&responses));
        }
    }
    frame.with_params(&params.to_json())
}

fn result_frame(result: &str) -> Frame {
    Frame::parse(jsonrpc::result("0", result)).expect("a built result is a valid frame")
}

fn require_approval(mut call: ToolCall) -> BoxFuture<'static, Result<ToolCall, super::check::ShortCircuit>> {
    async move {
        let mut pending = call.policy.approval(&call.roles, &call.upstream, &call.tool.name, &call.arguments);
        // Data-flow rule: in a session that read untrusted data, a sink needs a person too (or is
        // refused). The session's taint is only looked up for sinks.
        if pending.is_none() && call.policy.is_sink(&call.roles, &call.upstream, &call.tool.name) {
            let taint = match call.session.taint().await {
                Ok(t) => t,
                Err(e) => return Err(Err(e)),
            };
            match call.policy.sink(&call.roles, &call.upstream, &call.tool.name, taint.as_ref()) {
                SinkVerdict::Allow => {}
                SinkVerdict::NeedsApproval(d) => pending = Some(d),
                SinkVerdict::Deny(d) => {
                    if let Err(d) = call.enforce("taint", d) {
                        return Err(Err(Error::PolicyDenied { rule: d.rule, reason: d.reason }));
                    }
                }
            }
        }
        let Some(pending) = pending else { return Ok(call) };
        if call.policy.dry_run(&call.roles, &call.upstream) {
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
        let answered = if call.session.approves_through_input_required() {
            let args_digest = crate::policy::tool::digest(&call.arguments);
            let (request_state, responses) = input_fields(&call.frame);
            match request_state {
                // First round: the question goes back to the client as the call's result.
                None => {
                    call.trail.record("approval", "pending", &pending);
                    return Err(match call.session.ask_through_input_required(ask, &args_digest).await {
                        Ok(result) => Ok(result_frame(&result)),
                        Err(e) => Err(e),
                    });
                }
                Some(token) => {
                    let answer = call
                        .session
                        .answer_through_input_required(&token, responses.as_ref(), &call.public_name, &args_digest)
                        .await;
                    if answer.is_ok() {
                        // The upstream sees the call as if the gateway had never asked.
                        call.frame = without_input_fields(&call.frame);
                    }
                    answer
                }
            }
        } else {
            call.session.await_approval(ask).await
        };
        let (id, decision) = match answered {
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
