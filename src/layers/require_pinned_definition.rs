//! RequirePinnedDefinition: a tool whose definition changed since it was pinned (a possible rug
//! pull) is refused until an operator approves the new definition. Decided on the local copy
//! of the pins; only a call it would refuse asks the store (an approval given elsewhere).

use super::gate::Gate;
use crate::error::Error;
use crate::policy::Decision;
use crate::policy::stack::ToolCall;
use futures::FutureExt;
use futures::future::BoxFuture;
use tower::Layer;

#[derive(Clone, Copy, Default)]
pub struct RequirePinnedDefinitionLayer;

impl<S> Layer<S> for RequirePinnedDefinitionLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate::new(inner, require_pinned_definition)
    }
}

fn require_pinned_definition(call: ToolCall) -> BoxFuture<'static, Result<ToolCall, super::check::ShortCircuit>> {
    async move {
        let pins = call.session.pins();
        let verdict = match pins.check(&call.upstream, &call.tool.name, &call.tool.digest) {
            Ok(()) => Ok(()),
            Err(_) => match pins.recheck(&call.upstream, &call.tool.name, &call.tool.digest).await {
                Ok(v) => v,
                Err(e) => return Err(Err(Error::from(e))),
            },
        };
        let decision = match verdict {
            Ok(()) => Decision { allowed: true, rule: "pin".into(), reason: "definition matches its pin".into() },
            Err(pinned) => {
                call.trail.set_pinned_digest(pinned.clone());
                Decision {
                allowed: false,
                rule: "pin:changed".into(),
                reason: format!(
                    "the definition of {} changed since it was pinned ({}… → {}…); an operator must approve it with `tollgate pins approve {} {}`",
                    call.public_name,
                    &pinned[..pinned.len().min(12)],
                    &call.tool.digest[..call.tool.digest.len().min(12)],
                    call.upstream,
                    call.tool.name
                ),
                }
            }
        };
        match call.enforce("pin", decision) {
            Ok(()) => Ok(call),
            Err(d) => Err(Err(Error::ToolDefinitionChanged { rule: d.rule, reason: d.reason })),
        }
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::*;
    use crate::policy::ToolDefinition;

    #[tokio::test]
    async fn a_definition_that_differs_from_its_pin_is_refused() {
        let policy = crate::policy::Policy::annotations_only(false);
        let pinned = call_with(&policy, ToolDefinition::new("t", Some(true), None, "digest-a"), json!({}));
        pinned.session.pins().observe("up", "t", "digest-a");
        let (reply, forwarded) = run(RequirePinnedDefinitionLayer, pinned).await;
        assert!(reply.is_ok() && forwarded == 1);
        let changed = call_with(&policy, ToolDefinition::new("t", Some(true), None, "digest-b"), json!({}));
        changed.session.pins().observe("up", "t", "digest-a");
        changed.session.pins().observe("up", "t", "digest-b");
        let (reply, forwarded) = run(RequirePinnedDefinitionLayer, changed).await;
        assert_eq!(reply.unwrap_err().code(), -31006);
        assert_eq!(forwarded, 0);
    }
}
