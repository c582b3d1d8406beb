//! Requests an upstream sends the client (sampling, elicitation, roots) pass only when the
//! client declared the capability they need and the policy grants that kind to the upstream.
//! Anything else is answered by the gateway at once with a clear error (the upstream is not
//! left waiting), logged, counted and audited; the client never sees it.

use crate::policy::{Decision, Policy};
use serde_json::Value;

/// The client capability a server-to-client request needs, with the method as a static name
/// (for metric labels). `None`: not a request the gateway gates (e.g. `ping`, answered here).
pub fn capability_needed(method: &str) -> Option<(&'static str, &'static str)> {
    match method {
        "sampling/createMessage" => Some(("sampling/createMessage", "sampling")),
        "elicitation/create" => Some(("elicitation/create", "elicitation")),
        "roots/list" => Some(("roots/list", "roots")),
        _ => None,
    }
}

/// Whether `upstream`'s request needing `capability` may reach a client that declared
/// `client_capabilities`: the client must have declared it, and the policy must grant it.
pub fn decide(capability: &str, client_capabilities: Option<&Value>, policy: &Policy, upstream: &str) -> Decision {
    let declared = client_capabilities.and_then(|c| c.get(capability)).is_some_and(|c| !c.is_null());
    if !declared {
        return Decision {
            allowed: false,
            rule: format!("client-capability:{capability}"),
            reason: format!(
                "the client did not declare the {capability} capability, so the gateway does not pass on this request"
            ),
        };
    }
    policy.server_request(upstream, capability)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(text: &str) -> Policy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), text).unwrap();
        Policy::load_dir(dir.path()).unwrap()
    }

    #[test]
    fn undeclared_capabilities_are_refused_whatever_the_policy() {
        let open = Policy::annotations_only(false);
        let caps = json!({"roots": {}});
        assert!(decide("roots", Some(&caps), &open, "up").allowed);
        let refused = decide("sampling", Some(&caps), &open, "up");
        assert!(!refused.allowed);
        assert_eq!(refused.rule, "client-capability:sampling");
        assert!(!decide("roots", None, &open, "up").allowed, "no client hello: nothing declared");
    }

    #[test]
    fn the_policy_can_withhold_a_declared_capability_from_one_upstream() {
        let p = policy(
            "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\nserver_requests = [\"roots\"]\n\
             [[upstream]]\nname = \"other\"\nallow = [\"*\"]\n",
        );
        let caps = json!({"sampling": {}, "roots": {}});
        assert!(decide("roots", Some(&caps), &p, "up").allowed);
        let refused = decide("sampling", Some(&caps), &p, "up");
        assert_eq!((refused.allowed, refused.rule.as_str()), (false, "p.toml:up:server_requests"));
        assert!(decide("sampling", Some(&caps), &p, "other").allowed, "no server_requests: as declared");
        assert_eq!(capability_needed("elicitation/create"), Some(("elicitation/create", "elicitation")));
        assert_eq!(capability_needed("ping"), None);
    }

    #[test]
    fn unknown_kinds_are_a_policy_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), "[[upstream]]\nname = \"up\"\nserver_requests = [\"smapling\"]\n")
            .unwrap();
        let e = Policy::load_dir(dir.path()).unwrap_err();
        assert!(e.contains("server_requests") && e.contains("smapling"), "{e}");
    }
}
