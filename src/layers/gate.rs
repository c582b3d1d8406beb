//! The shape shared by the layers that may wait before deciding (a paused session, a human
//! approval, a rate limit kept in the store): an async admission step that hands the call on,
//! or answers it at once.

use super::check::ShortCircuit;
use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::policy::stack::ToolCall;
use futures::future::BoxFuture;
use std::task::{Context, Poll};
use tower::Service;

/// `Ok(call)`: the call goes on; `Err(reply)`: answer with it now.
pub type AdmitFn = fn(ToolCall) -> BoxFuture<'static, Result<ToolCall, ShortCircuit>>;

#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    admit: AdmitFn,
}

impl<S> Gate<S> {
    pub fn new(inner: S, admit: AdmitFn) -> Gate<S> {
        Gate { inner, admit }
    }
}

impl<S> Service<ToolCall> for Gate<S>
where
    S: Service<ToolCall, Response = Frame, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Frame;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Frame, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: ToolCall) -> Self::Future {
        // The service that was polled ready goes into the future; a clone stays for next time.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let admit = self.admit;
        Box::pin(async move {
            match admit(call).await {
                Ok(call) => inner.call(call).await,
                Err(reply) => reply,
            }
        })
    }
}
