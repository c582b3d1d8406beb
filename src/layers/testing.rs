//! Test helpers for layers: a policy from TOML text, a `ToolCall` without a live upstream, and
//! an inner "upstream" service that counts calls and answers after an optional delay.

use crate::error::Error;
use crate::jsonrpc::{self, Frame};
use crate::policy::stack::ToolCall;
use crate::policy::{Policy, ToolDefinition};
use crate::session::{Session, Shared};
use serde_json::Value;
pub use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt, service_fn};

pub fn policy_from(text: &str) -> Arc<Policy> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    Arc::new(Policy::load_dir(dir.path()).unwrap())
}

fn session() -> Arc<Session> {
    Session::new(Arc::new(Shared::for_tests()), "test".into())
}

pub fn call_with(policy: &Policy, tool: ToolDefinition, args: Value) -> ToolCall {
    let params = json!({"name": tool.name, "arguments": args});
    ToolCall {
        session: session(),
        slot: 0,
        upstream: "up".into(),
        public_name: format!("up__{}", tool.name),
        tool: Arc::new(tool),
        arguments: args,
        policy: Arc::new(policy.clone()),
        roles: crate::policy::Roles::none(),
        trail: Default::default(),
        frame: Frame::parse(jsonrpc::request("1", "tools/call", Some(&params.to_string()))).unwrap(),
        related: None,
        admission: None,
        input: Default::default(),
    }
}

pub fn call(policy: &Policy, tool: &str, read_only_hint: Option<bool>, args: Value) -> ToolCall {
    call_with(policy, ToolDefinition::new(tool, read_only_hint, None, "digest"), args)
}

pub fn call_with_schema(policy: &Policy, tool: &str, schema: Value, args: Value) -> ToolCall {
    call_with(policy, ToolDefinition::new(tool, Some(true), Some(schema), "digest"), args)
}

/// Runs `call` through `layer` over an upstream that answers `{"content":[…"ok"…]}` after `delay`.
pub async fn run_with<L>(layer: L, call: ToolCall, delay: Duration) -> Result<Frame, Error>
where
    L: Layer<tower::util::BoxCloneSyncService<ToolCall, Frame, Error>>,
    L::Service: Service<ToolCall, Response = Frame, Error = Error>,
{
    run_counting(layer, call, delay).await.0
}

/// Runs `call` through `layer`; returns the reply and how many calls reached the upstream.
pub async fn run<L>(layer: L, call: ToolCall) -> (Result<Frame, Error>, usize)
where
    L: Layer<tower::util::BoxCloneSyncService<ToolCall, Frame, Error>>,
    L::Service: Service<ToolCall, Response = Frame, Error = Error>,
{
    run_counting(layer, call, Duration::ZERO).await
}

async fn run_counting<L>(layer: L, call: ToolCall, delay: Duration) -> (Result<Frame, Error>, usize)
where
    L: Layer<tower::util::BoxCloneSyncService<ToolCall, Frame, Error>>,
    L::Service: Service<ToolCall, Response = Frame, Error = Error>,
{
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let upstream = service_fn(move |_call: ToolCall| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            Ok::<_, Error>(Frame::parse(jsonrpc::result("9", r#"{"content":[{"type":"text","text":"ok"}]}"#)).unwrap())
        }
    });
    let service = layer.layer(tower::util::BoxCloneSyncService::new(upstream));
    let reply = service.oneshot(call).await;
    (reply, count.load(Ordering::SeqCst))
}
