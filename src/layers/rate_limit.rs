//! RateLimit: calls over a principal's, a session's or a tool's rate get a clear error with
//! a retry hint. Counted in the state store (GCRA), so the limits hold across replicas. Just
//! inside the audit log: refused bursts are recorded, and they cost no policy work.

use super::gate::Gate;
use crate::error::Error;
use crate::policy::Decision;
use crate::policy::stack::ToolCall;
use crate::session::store::RateVerdict;
use futures::FutureExt;
use futures::future::BoxFuture;
use tower::Layer;

#[derive(Clone, Copy, Default)]
pub struct RateLimitLayer;

impl<S> Layer<S> for RateLimitLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate::new(inner, rate_limit)
    }
}

fn rate_limit(call: ToolCall) -> BoxFuture<'static, Result<ToolCall, super::check::ShortCircuit>> {
    async move {
        let session = call.session.audit_handle().to_string();
        let limits =
            call.policy.rate_limits(call.session.principal(), &call.roles, &session, &call.upstream, &call.tool.name);
        let store = call.session.shared().store.clone();
        for applied in limits {
            let verdict = match store.rate_check(&applied.key, &applied.limit.quota()).await {
                Ok(v) => v,
                Err(e) => return Err(Err(Error::from(e))),
            };
            let RateVerdict::Limited { retry_after } = verdict else { continue };
            let decision = Decision {
                allowed: false,
                rule: applied.rule.clone(),
                reason: format!(
                    "rate limit for this {} exceeded ({}); retry in {:.1} s",
                    applied.scope,
                    applied.limit.describe(),
                    retry_after.as_secs_f64()
                ),
            };
            if let Err(d) = call.enforce("rate_limit", decision) {
                return Err(Err(Error::RateLimited { rule: d.rule, reason: d.reason, retry_after }));
            }
        }
        Ok(call)
    }
    .boxed()
}
