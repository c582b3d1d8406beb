//! The ONLY place the order of the per-call policy layers is set.
//!
//! Every `tools/call` is a [`ToolCall`] passed through this stack, outermost first, down to
//! [`ForwardToUpstream`]. The policy layers (audit, rate limit, allowlist, read-only, approval,
//! argument validation, redaction, timeout) plug in here, one line each with the reason for
//! its place.

use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::session::Session;
use crate::transport::upstream::RelatedSink;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};

/// One tool call on its way upstream.
pub struct ToolCall {
    pub session: Arc<Session>,
    /// Index of the upstream that serves the tool.
    pub slot: usize,
    /// The name the client used (namespaced).
    pub public_name: String,
    /// The request as the upstream will see it: the upstream's own tool name, the client's id.
    pub frame: Frame,
    pub related: Option<RelatedSink>,
}

/// The reply is the upstream's response frame (gateway id; the session restores the client's).
pub type ToolCallService = BoxCloneSyncService<ToolCall, Frame, Error>;

/// Builds the stack. Order matters; see ARCHITECTURE.md "Why the stack order".
pub fn build() -> ToolCallService {
    let stack = ServiceBuilder::new()
        // (policy layers arrive here in the policy-stack issue, outermost first)
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
        Box::pin(async move { call.session.forward_to(call.slot, &call.frame, call.related).await })
    }
}
