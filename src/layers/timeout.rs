//! Timeout: each call gets the policy's deadline for its tool (or the default). On expiry the
//! inner future is dropped, which sends `notifications/cancelled` to the upstream, and the
//! client gets a clear error; the upstream connection stays usable.

use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::policy::stack::ToolCall;
use futures::future::{BoxFuture, FutureExt};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

#[derive(Clone, Copy)]
pub struct TimeoutLayer {
    default: Duration,
}

impl TimeoutLayer {
    pub fn new(default: Duration) -> TimeoutLayer {
        TimeoutLayer { default }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout { inner, default: self.default }
    }
}

#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    default: Duration,
}

impl<S> Service<ToolCall> for Timeout<S>
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
        let after = call.policy.timeout(&call.roles, &call.upstream, &call.tool.name).unwrap_or(self.default);
        let upstream = call.upstream.clone();
        let inner = self.inner.call(call);
        async move {
            match tokio::time::timeout(after, inner).await {
                Ok(reply) => reply,
                Err(_) => Err(Error::UpstreamTimeout { upstream, after }),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::*;

    #[tokio::test(start_paused = true)]
    async fn the_policy_deadline_applies_per_tool() {
        let policy = policy_from(
            "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"slow\"\ntimeout_ms = 100\n",
        );
        let c = call(&policy, "slow", Some(true), json!({}));
        let started = tokio::time::Instant::now();
        let reply = run_with(TimeoutLayer::new(Duration::from_secs(60)), c, Duration::from_secs(5)).await;
        assert_eq!(reply.unwrap_err().code(), -31004);
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        let c = call(&policy, "other", Some(true), json!({}));
        assert!(run_with(TimeoutLayer::new(Duration::from_secs(60)), c, Duration::from_secs(5)).await.is_ok());
    }
}
