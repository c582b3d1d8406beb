//! HoldWhilePaused: an operator's pause holds new tool calls (released in order on resume, or
//! failed after `sessions.pause_max_wait_secs`); a stopped session refuses them. Just inside
//! the audit log, so held, timed-out and refused calls are all recorded.

use super::gate::Gate;
use crate::policy::stack::ToolCall;
use futures::FutureExt;
use tower::Layer;

#[derive(Clone, Copy, Default)]
pub struct HoldWhilePausedLayer;

impl<S> Layer<S> for HoldWhilePausedLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate::new(inner, |call: ToolCall| {
            async move {
                match call.session.wait_until_active().await {
                    Ok(()) => Ok(call),
                    Err(e) => Err(Err(e)),
                }
            }
            .boxed()
        })
    }
}
