//! The shape shared by the layers that decide before the call moves on: run a check on the
//! [`ToolCall`]; pass it inward, or answer at once with the check's reply.

use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::policy::stack::ToolCall;
use futures::future::{BoxFuture, FutureExt};
use std::task::{Context, Poll};
use tower::Service;

/// What a check concludes when the call must not go on: a reply (e.g. a tool error the model
/// can correct) or an error.
pub type ShortCircuit = Result<Frame, Error>;

/// `None`: the call goes on; `Some(reply)`: answer with it now.
pub type CheckFn = fn(&ToolCall) -> Option<ShortCircuit>;

#[derive(Clone)]
pub struct Check<S> {
    inner: S,
    check: CheckFn,
}

impl<S> Check<S> {
    pub fn new(inner: S, check: CheckFn) -> Check<S> {
        Check { inner, check }
    }
}

impl<S> Service<ToolCall> for Check<S>
where
    S: Service<ToolCall, Response = Frame, Error = Error> + Send,
    S::Future: Send + 'static,
{
    type Response = Frame;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Frame, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: ToolCall) -> Self::Future {
        match (self.check)(&call) {
            None => self.inner.call(call).boxed(),
            Some(reply) => futures::future::ready(reply).boxed(),
        }
    }
}
