//! RequirePinnedDefinition: a tool whose definition changed since it was pinned (a possible rug
//! pull) is refused until an operator approves the new definition.

use super::check::{Check, ShortCircuit};
use crate::error::Error;
use crate::policy::Decision;
use crate::policy::stack::ToolCall;
use tower::Layer;

#[derive(Clone, Copy, Default)]
pub struct RequirePinnedDefinitionLayer;

impl<S> Layer<S> for RequirePinnedDefinitionLayer {
    type Service = Check<S>;
    fn layer(&self, inner: S) -> Check<S> {
        Check::new(inner, require_pinned_definition)
    }
}

fn require_pinned_definition(call: &ToolCall) -> Option<ShortCircuit> {
    let decision = match call.session.pins().check(&call.upstream, &call.tool.name, &call.tool.digest) {
        Ok(()) => Decision { allowed: true, rule: "pin".into(), reason: "definition matches its pin".into() },
        Err(pinned) => Decision {
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
        },
    };
    call.enforce("pin", decision).err().map(|d| Err(Error::ToolDefinitionChanged { rule: d.rule, reason: d.reason }))
}
