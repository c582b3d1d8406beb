//! The ONLY place the order of the per-call policy layers is set.
//!
//! Every `tools/call` is a [`ToolCall`] passed through this stack, outermost first, down to
//! [`ForwardToUpstream`]. Each line says why the layer sits where it does.

use super::trail::Trail;
use super::{Decision, Policy, Roles, ToolDefinition};
use crate::audit::sink::AuditLog;
use crate::error::Error;
use crate::jsonrpc::{self, Frame};
use crate::layers::audit_log::{Admission, AuditLogLayer};
use crate::layers::{
    enforce_read_only::EnforceReadOnlyLayer, hold_while_paused::HoldWhilePausedLayer, rate_limit::RateLimitLayer,
    redact_output::RedactOutputLayer, require_allowlisted::RequireAllowlistedLayer,
    require_approval::RequireApprovalLayer, require_pinned_definition::RequirePinnedDefinitionLayer,
    timeout::TimeoutLayer, validate_arguments::ValidateArgumentsLayer,
};
use crate::session::Session;
use crate::transport::upstream::RelatedSink;
use futures::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};

/// One tool call on its way upstream, with everything the policy layers decide on.
pub struct ToolCall {
    pub session: Arc<Session>,
    /// Index of the upstream that serves the tool.
    pub slot: usize,
    /// The upstream's configured name.
    pub upstream: String,
    /// The name the client used (namespaced).
    pub public_name: String,
    /// What the upstream listed for this tool (annotations, schema, digest).
    pub tool: Arc<ToolDefinition>,
    /// `params.arguments` as sent (`{}` when absent).
    pub arguments: Value,
    /// The policy this call is decided by, fixed when the call starts.
    pub policy: Arc<Policy>,
    /// The roles of the identity that made this request (the principal is the session's).
    pub roles: Roles,
    /// Decisions taken so far, for the audit record.
    pub trail: Arc<Trail>,
    /// The request as the upstream will see it: the upstream's own tool name, the client's id.
    pub frame: Frame,
    pub related: Option<RelatedSink>,
    /// Set by the audit layer: the admission record is written just before the upstream hop.
    pub admission: Option<Arc<Admission>>,
    /// Size and estimated tokens of the client's `arguments` (see `crate::cost`).
    pub input: crate::cost::Measure,
}

impl ToolCall {
    /// A call to a tool no upstream lists: refused by `RequireAllowlisted`, never forwarded.
    pub fn is_unknown(&self) -> bool {
        self.slot == crate::session::UNKNOWN_SLOT
    }

    /// Applies one decision: allowed passes; denied passes only in dry run (recorded as
    /// "would_deny"); the trail records it either way.
    pub fn enforce(&self, layer: &'static str, decision: Decision) -> Result<(), Decision> {
        if decision.allowed {
            self.trail.record(layer, "allow", &decision);
            Ok(())
        } else if self.policy.dry_run(&self.roles, &self.upstream) {
            tracing::info!(upstream = %self.upstream, tool = %self.public_name, rule = %decision.rule, "dry run: would deny");
            self.trail.record(layer, "would_deny", &decision);
            Ok(())
        } else {
            self.trail.record(layer, "deny", &decision);
            Err(decision)
        }
    }
}

/// A tool-execution error the model can act on (MCP: `isError: true` in a result).
pub fn tool_error(text: &str) -> Frame {
    let result = serde_json::json!({ "content": [{ "type": "text", "text": text }], "isError": true });
    Frame::parse(jsonrpc::result("0", &result.to_string())).expect("a built result is a valid frame")
}

/// The reply is the upstream's response frame (any id; the session restores the client's).
pub type ToolCallService = BoxCloneSyncService<ToolCall, Frame, Error>;

/// Builds the stack; see ARCHITECTURE.md "Policy stack" for the whole order.
pub fn build(default_timeout: Duration, audit: Option<Arc<AuditLog>>) -> ToolCallService {
    let stack = ServiceBuilder::new()
        // Outermost: records every outcome, denials included, and sees only redacted output.
        .layer(AuditLogLayer::new(audit))
        // Lifecycle before policy: a paused session holds calls (in order) and a stopped one
        // refuses them, whatever the policy would say. One small store read per call.
        .layer(HoldWhilePausedLayer)
        // Before any policy work: a flood is refused at the cost of one store call per limit.
        .layer(RateLimitLayer)
        // Cheap set membership first: a hidden tool costs nothing more and answers like an unknown one.
        .layer(RequireAllowlistedLayer)
        // Is this still the tool that was pinned? A changed definition must not be decided on.
        .layer(RequirePinnedDefinitionLayer)
        // Still a lookup, no parsing: writes on a read-only upstream stop before any argument work.
        .layer(EnforceReadOnlyLayer)
        // A person is only asked about calls that policy would otherwise let run.
        .layer(RequireApprovalLayer)
        // Schema and path/URL guards: the costliest check, only for calls that may run at all.
        .layer(ValidateArgumentsLayer::default())
        // Outside the timeout and the upstream: every byte from upstream passes it, errors included.
        .layer(RedactOutputLayer)
        // Right around the upstream hop, so policy work does not eat the tool's deadline.
        .layer(TimeoutLayer::new(default_timeout))
        .service(ForwardToUpstream);
    BoxCloneSyncService::new(stack)
}

/// The innermost service: sends the call to its upstream.
#[derive(Clone, Copy)]
pub struct ForwardToUpstream;

impl Service<ToolCall> for ForwardToUpstream {
    type Response = Frame;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Frame, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: ToolCall) -> Self::Future {
        Box::pin(async move {
            if call.is_unknown() {
                // Defence in depth: RequireAllowlisted refuses these first.
                return Err(Error::UnknownTool(call.public_name));
            }
            // No admission record, no action.
            if let Some(admission) = &call.admission {
                admission.admit(&call).await?;
            }
            // From here the upstream may act on the call, so its price applies.
            call.trail.mark_forwarded();
            call.session.forward_to(call.slot, &call.frame, call.related).await
        })
    }
}

/// For layer tests: admits like [`ForwardToUpstream`], then answers `ok` without an upstream.
#[cfg(test)]
#[derive(Clone, Copy)]
pub struct ForwardToUpstreamForTests;

#[cfg(test)]
impl Service<ToolCall> for ForwardToUpstreamForTests {
    type Response = Frame;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Frame, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: ToolCall) -> Self::Future {
        Box::pin(async move {
            if let Some(admission) = &call.admission {
                admission.admit(&call).await?;
            }
            call.trail.mark_forwarded();
            Ok(Frame::parse(jsonrpc::result("1", r#"{"content":[{"type":"text","text":"ok"}]}"#)).expect("valid"))
        })
    }
}
