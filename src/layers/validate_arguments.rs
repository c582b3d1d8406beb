//! ValidateArguments: arguments must fit the tool's input schema (or the policy's pinned one),
//! and guarded path/URL arguments must stay inside their roots/hosts. Violations come back as a
//! tool error listing each one with its JSON pointer, so the model can correct the call (the
//! MCP spec's guidance for argument errors). An unusable schema fails the call closed.

use super::check::ShortCircuit;
use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::policy::args;
use crate::policy::schema::{self, SchemaCache};
use crate::policy::stack::{ToolCall, tool_error};
use crate::policy::{Decision, Policy, Roles, ToolDefinition, file::ToolRules};
use futures::future::{BoxFuture, FutureExt};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

#[derive(Clone, Default)]
pub struct ValidateArgumentsLayer {
    cache: Arc<SchemaCache>,
}

impl<S> Layer<S> for ValidateArgumentsLayer {
    type Service = ValidateArguments<S>;
    fn layer(&self, inner: S) -> ValidateArguments<S> {
        ValidateArguments { inner, cache: self.cache.clone() }
    }
}

#[derive(Clone)]
pub struct ValidateArguments<S> {
    inner: S,
    cache: Arc<SchemaCache>,
}

impl<S> Service<ToolCall> for ValidateArguments<S>
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
        match self.check(&call) {
            None => self.inner.call(call).boxed(),
            Some(reply) => futures::future::ready(reply).boxed(),
        }
    }
}

/// The outcome of checking one call's arguments.
pub enum ArgumentsVerdict {
    Valid {
        rule: String,
    },
    /// Violations the model can correct (each `pointer: message`).
    Invalid {
        rule: String,
        problems: Vec<String>,
    },
    /// The schema itself cannot be used: fail closed.
    Unusable {
        rule: String,
        reason: String,
    },
}

/// Checks `args` of `tool` against the pinned or listed schema and the policy's guards.
/// Shared by the layer and `tollgate policy explain`.
pub fn check_arguments(
    policy: &Policy,
    roles: &Roles,
    upstream: &str,
    tool: &ToolDefinition,
    args: &Value,
    cache: &SchemaCache,
) -> ArgumentsVerdict {
    let pinned = policy.pinned_schema(roles, upstream, &tool.name);
    let (schema, source) = match (&pinned, &tool.input_schema) {
        (Some(s), _) => (Some(s.as_ref()), "schema:pinned"),
        (None, Some(s)) => (Some(s), "schema:inputSchema"),
        (None, None) => (None, "schema:none"),
    };
    let mut problems = Vec::new();
    if let Some(schema) = schema {
        // A listed tool's digest covers its inputSchema; pinned schemas are keyed by content.
        let compiled = if pinned.is_none() && !tool.digest.is_empty() {
            cache.get_keyed(&tool.digest, schema)
        } else {
            cache.get(schema)
        };
        match compiled.as_ref() {
            Ok(validator) => problems.extend(
                schema::violations(validator, args).into_iter().map(|v| format!("{}: {}", v.pointer, v.message)),
            ),
            Err(e) => return ArgumentsVerdict::Unusable { rule: source.into(), reason: format!("the tool's {e}") },
        }
    }
    let mut rule = source.to_string();
    if let Some((guard_rule, rules)) = policy.guards(roles, upstream, &tool.name) {
        let found = guard_problems(rules, args);
        if !found.is_empty() {
            rule = guard_rule;
        }
        problems.extend(found);
    }
    if problems.is_empty() { ArgumentsVerdict::Valid { rule } } else { ArgumentsVerdict::Invalid { rule, problems } }
}

impl<S> ValidateArguments<S> {
    fn check(&self, call: &ToolCall) -> Option<ShortCircuit> {
        // Content the policy refuses outright (secrets, deny patterns) before schema work.
        if let Some(denied) = crate::policy::arg_content::check(
            &call.policy,
            &call.roles,
            &call.upstream,
            &call.tool.name,
            &call.arguments,
        ) && let Err(d) = call.enforce("arguments", denied)
        {
            return Some(Err(Error::PolicyDenied { rule: d.rule, reason: d.reason }));
        }
        match check_arguments(&call.policy, &call.roles, &call.upstream, &call.tool, &call.arguments, &self.cache) {
            ArgumentsVerdict::Valid { rule } => {
                let _ = call.enforce("arguments", Decision { allowed: true, rule, reason: "arguments valid".into() });
                None
            }
            ArgumentsVerdict::Unusable { rule, reason } => call
                .enforce("arguments", Decision { allowed: false, rule, reason })
                .err()
                .map(|d| Err(Error::PolicyDenied { rule: d.rule, reason: d.reason })),
            ArgumentsVerdict::Invalid { rule, problems } => {
                let text = format!("Invalid arguments for tool {}:\n- {}", call.public_name, problems.join("\n- "));
                let d = Decision { allowed: false, rule, reason: text.clone() };
                call.enforce("arguments", d).err().map(|_| Ok(tool_error(&text)))
            }
        }
    }
}

/// Path and URL guard violations, as `/<arg>: reason` lines.
fn guard_problems(rules: &ToolRules, arguments: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let strings = |name: &str| -> Vec<String> {
        match arguments.get(name) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    };
    if let Some(paths) = &rules.paths {
        let roots: Vec<PathBuf> =
            paths.roots.iter().map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone())).collect();
        for name in &paths.args {
            for raw in strings(name) {
                let checked = args::check_path(&raw, &paths.roots).and_then(|p| {
                    // Follow symlinks as far as the path exists, then check the real location.
                    args::check_path(&resolve_existing(&p).display().to_string(), &roots)
                });
                if let Err(e) = checked {
                    out.push(format!("/{name}: {e}"));
                }
            }
        }
    }
    if let Some(urls) = &rules.urls {
        for name in &urls.args {
            for raw in strings(name) {
                if let Err(e) = args::check_url(&raw, &urls.hosts) {
                    out.push(format!("/{name}: {e}"));
                }
            }
        }
    }
    out
}

/// The real path of the deepest existing ancestor of `path`, with the rest appended.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name().map(|f| f.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut real = std::fs::canonicalize(&existing).unwrap_or(existing);
    for part in rest.into_iter().rev() {
        real.push(part);
    }
    real
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::*;

    fn schema() -> Value {
        json!({"type":"object","properties":{"path":{"type":"string"},"n":{"type":"integer"}},"required":["path"],"additionalProperties":false})
    }

    #[tokio::test]
    async fn violations_come_back_as_a_tool_error_listing_pointers() {
        let policy = policy_from("[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n");
        let c = call_with_schema(&policy, "read", schema(), json!({"n": "x", "extra": 1}));
        let (reply, forwarded) = run(ValidateArgumentsLayer::default(), c).await;
        assert_eq!(forwarded, 0);
        let frame = reply.unwrap();
        let result: Value = serde_json::from_str(frame.result().unwrap()).unwrap();
        assert_eq!(result["isError"], true);
        let text = result["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("/n:") && text.contains("extra") && text.contains("path"), "{text}");
    }

    #[tokio::test]
    async fn valid_arguments_pass() {
        let policy = policy_from("[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n");
        let c = call_with_schema(&policy, "read", schema(), json!({"path": "/x", "n": 1}));
        assert_eq!(run(ValidateArgumentsLayer::default(), c).await.1, 1);
    }

    #[tokio::test]
    async fn path_guard_refuses_traversal_and_symlink_escape() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let policy = policy_from(&format!(
            "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"read\"\npaths = {{ args = [\"path\"], roots = [{:?}] }}\n",
            root.path()
        ));
        let root_s = root.path().display().to_string();
        for bad in [format!("{root_s}/../etc/passwd"), "/etc/passwd".to_string(), format!("{root_s}/link/secret.txt")] {
            let c = call_with_schema(&policy, "read", schema(), json!({ "path": bad }));
            let (reply, forwarded) = run(ValidateArgumentsLayer::default(), c).await;
            assert_eq!(forwarded, 0, "{bad} must not be forwarded");
            assert!(reply.unwrap().as_str().contains("isError"));
        }
        let ok = call_with_schema(&policy, "read", schema(), json!({ "path": format!("{root_s}/notes/a.txt") }));
        assert_eq!(run(ValidateArgumentsLayer::default(), ok).await.1, 1);
    }

    #[tokio::test]
    async fn an_unusable_schema_fails_closed() {
        let policy = policy_from("[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n");
        let c = call_with_schema(&policy, "read", json!({"$ref": "http://169.254.169.254/x"}), json!({}));
        let (reply, forwarded) = run(ValidateArgumentsLayer::default(), c).await;
        assert_eq!(forwarded, 0);
        assert_eq!(reply.unwrap_err().code(), -31001);
    }
}
