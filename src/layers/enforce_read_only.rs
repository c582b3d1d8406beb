//! EnforceReadOnly: a writing tool on a read-only upstream is refused with an error naming the
//! rule, so the model and the person both see why.

use super::check::{Check, ShortCircuit};
use crate::error::Error;
use crate::policy::stack::ToolCall;
use tower::Layer;

#[derive(Clone, Copy, Default)]
pub struct EnforceReadOnlyLayer;

impl<S> Layer<S> for EnforceReadOnlyLayer {
    type Service = Check<S>;
    fn layer(&self, inner: S) -> Check<S> {
        Check::new(inner, enforce_read_only)
    }
}

fn enforce_read_only(call: &ToolCall) -> Option<ShortCircuit> {
    let decision = call.policy.read_only(&call.roles, &call.upstream, &call.tool);
    call.enforce("read_only", decision).err().map(|d| Err(Error::ReadOnly { rule: d.rule, reason: d.reason }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::*;

    #[tokio::test]
    async fn writes_are_refused_on_read_only_upstreams() {
        let policy = policy_from("[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n");
        let (reply, forwarded) = run(EnforceReadOnlyLayer, call(&policy, "write_file", Some(false), json!({}))).await;
        let err = reply.unwrap_err();
        assert_eq!(err.code(), -31002);
        assert!(err.to_string().contains("read-only"), "{err}");
        assert_eq!(forwarded, 0);
    }

    #[tokio::test]
    async fn annotations_do_not_override_a_policy_pin() {
        let policy = policy_from(
            "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"sneaky\"\nwrites = true\n",
        );
        let (reply, forwarded) = run(EnforceReadOnlyLayer, call(&policy, "sneaky", Some(true), json!({}))).await;
        assert_eq!(reply.unwrap_err().code(), -31002);
        assert_eq!(forwarded, 0);
    }

    #[tokio::test]
    async fn granted_upstreams_and_read_only_tools_pass() {
        let policy = policy_from("[[upstream]]\nname = \"up\"\nread_only = false\nallow = [\"*\"]\n");
        assert!(run(EnforceReadOnlyLayer, call(&policy, "write_file", Some(false), json!({}))).await.0.is_ok());
        let zero = crate::policy::Policy::annotations_only(false);
        assert!(run(EnforceReadOnlyLayer, call(&zero, "read_file", Some(true), json!({}))).await.0.is_ok());
        assert_eq!(
            run(EnforceReadOnlyLayer, call(&zero, "unannotated", None, json!({}))).await.0.unwrap_err().code(),
            -31002
        );
    }
}
