//! Spans of whole requests through a real session (the built-in memory upstream, so no process
//! is needed), captured with the SDK's in-memory exporter: names, attributes, parent links,
//! decision events, and that no argument value reaches a span.

use super::testing::{Capture, capture};
use crate::config::MemoryConfig;
use crate::jsonrpc::{self, Frame};
use crate::policy::Policy;
use crate::policy::handle::PolicyHandle;
use crate::session::{RequestCtx, Session, Shared};
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_sdk::trace::SpanData;
use serde_json::{Value, json};
use std::sync::Arc;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
/// An argument value that must never appear in a span.
const SECRET: &str = "hunter2-argument-value";

fn session(allow_writes: bool) -> Arc<Session> {
    let mut shared = Shared::for_tests();
    let memory = MemoryConfig { enabled: true, ..Default::default() };
    shared.upstreams = memory.upstream().into_iter().map(Arc::new).collect();
    shared.policy = PolicyHandle::fixed(Policy::annotations_only(allow_writes));
    Session::new(Arc::new(shared), "a-session-id-that-must-not-leak".into())
}

async fn request(session: &Session, id: u64, method: &str, params: Value) -> Value {
    let frame = Frame::parse(jsonrpc::request(&id.to_string(), method, Some(&params.to_string()))).unwrap();
    let ctx = RequestCtx { key: id.to_string(), related: None, roles: crate::policy::Roles::none(), trace: None };
    let reply = session.handle(frame, ctx).await.expect("a reply");
    serde_json::from_str(&reply).unwrap()
}

async fn initialize(session: &Session) {
    let params =
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}});
    let reply = request(session, 1, "initialize", params).await;
    assert!(reply["result"].is_object(), "{reply}");
}

fn put_params() -> Value {
    json!({
        "name": "memory__memory_put",
        "arguments": {"key": "k", "value": SECRET},
        "_meta": {"traceparent": format!("00-{TRACE}-{CLIENT_SPAN}-01")}
    })
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned())
}

fn named<'a>(spans: &'a [SpanData], name: &str, method: Option<&str>) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name && method.is_none_or(|m| attr(s, "mcp.method.name").as_deref() == Some(m)))
        .unwrap_or_else(|| {
            panic!("no {name} span ({method:?}) among {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>())
        })
}

/// Nothing in any span or event holds the argument value or the raw session id.
fn assert_nothing_leaks(spans: &[SpanData]) {
    let dump = format!("{spans:?}");
    assert!(!dump.contains(SECRET), "an argument value reached a span");
    assert!(!dump.contains("a-session-id-that-must-not-leak"), "the raw session id reached a span");
}

async fn traced_call(allow_writes: bool) -> (Capture, Vec<SpanData>, Value) {
    let capture = capture();
    let s = session(allow_writes);
    initialize(&s).await;
    let reply = request(&s, 2, "tools/call", put_params()).await;
    let spans = capture.spans();
    (capture, spans, reply)
}

#[tokio::test]
async fn a_tool_call_continues_the_client_trace_down_to_the_upstream_hop() {
    let (_capture, spans, reply) = traced_call(true).await;
    assert!(reply["result"].is_object(), "{reply}");
    let request = named(&spans, "mcp.request", Some("tools/call"));
    let call = named(&spans, "mcp.tool_call", None);
    let hop = named(&spans, "mcp.upstream", Some("tools/call"));

    let trace = TraceId::from_hex(TRACE).unwrap();
    for s in [request, call, hop] {
        assert_eq!(s.span_context.trace_id(), trace, "{} is not in the client's trace", s.name);
    }
    assert_eq!(request.parent_span_id, SpanId::from_hex(CLIENT_SPAN).unwrap());
    assert!(request.parent_span_is_remote);
    assert_eq!(call.parent_span_id, request.span_context.span_id());
    assert_eq!(hop.parent_span_id, call.span_context.span_id());
    assert_eq!(request.span_kind, SpanKind::Server);
    assert_eq!(hop.span_kind, SpanKind::Client);

    let handle = crate::audit::session_handle("a-session-id-that-must-not-leak");
    assert_eq!(attr(request, "mcp.session.id").as_deref(), Some(handle.as_str()));
    assert_eq!(attr(request, "jsonrpc.request.id").as_deref(), Some("2"));
    assert_eq!(attr(request, "tollgate.principal").as_deref(), Some("test"));
    assert_eq!(attr(call, "gen_ai.tool.name").as_deref(), Some("memory__memory_put"));
    assert_eq!(attr(call, "tollgate.upstream").as_deref(), Some("memory"));
    assert_eq!(attr(call, "tollgate.upstream_tool").as_deref(), Some("memory_put"));
    assert_eq!(attr(call, "tollgate.decision").as_deref(), Some("allow"));
    assert_eq!(attr(call, "tollgate.rule").as_deref(), Some("default:annotations"));
    assert_eq!(attr(call, "tollgate.outcome").as_deref(), Some("ok"));
    assert_eq!(attr(hop, "tollgate.transport").as_deref(), Some("builtin"));

    // Every policy layer that decided is an attribute: its decision and its rule.
    assert_eq!(attr(call, "tollgate.policy.allowlist").as_deref(), Some("allow default:annotations"));
    assert!(attr(call, "tollgate.policy.read_only").is_some_and(|v| v.starts_with("allow ")), "{call:?}");
    assert!(attr(call, "tollgate.policy.arguments").is_some_and(|v| v.starts_with("allow ")), "{call:?}");
    assert_eq!(attr(call, "tollgate.policy.approval"), None, "no approval rule applies");
    assert!(call.events.events.is_empty(), "decisions and the call's log line are not events: {:?}", call.events);
    assert_nothing_leaks(&spans);
}

#[tokio::test]
async fn a_denied_call_names_its_rule_and_never_reaches_upstream() {
    let (_capture, spans, reply) = traced_call(false).await;
    assert_eq!(reply["error"]["code"], -31002, "{reply}");
    let request = named(&spans, "mcp.request", Some("tools/call"));
    let call = named(&spans, "mcp.tool_call", None);
    assert_eq!(attr(call, "tollgate.decision").as_deref(), Some("deny"));
    assert_eq!(attr(call, "tollgate.rule").as_deref(), Some("default:read-only"));
    assert_eq!(attr(call, "tollgate.policy.read_only").as_deref(), Some("deny default:read-only"));
    assert_eq!(attr(call, "tollgate.policy.arguments"), None, "layers after the denial never ran");
    assert_eq!(attr(call, "tollgate.outcome").as_deref(), Some("denied"));
    assert!(matches!(call.status, Status::Error { .. }), "{:?}", call.status);
    assert_eq!(attr(request, "error.type").as_deref(), Some("-31002"));
    assert!(
        !spans.iter().any(|s| s.name == "mcp.upstream" && attr(s, "mcp.method.name").as_deref() == Some("tools/call"))
    );
    assert_nothing_leaks(&spans);
}

#[tokio::test]
async fn stdio_hops_carry_the_trace_in_meta_and_keep_every_other_byte() {
    use crate::telemetry::trace::{TraceHeaders, upstream_span};
    let _capture = capture();
    let span = upstream_span("up", "stdio", "tools/call", 1);
    let t = TraceHeaders::of_span(&span).expect("a traced span has a context");
    assert!(t.traceparent.starts_with("00-") && t.traceparent.ends_with("-01"), "{}", t.traceparent);
    let sc = opentelemetry::trace::TraceContextExt::span(&tracing_opentelemetry::OpenTelemetrySpanExt::context(&span))
        .span_context()
        .clone();
    assert!(t.traceparent.contains(&sc.span_id().to_string()), "the upstream's parent is this hop");
}

#[tokio::test]
async fn without_an_exporter_nothing_is_traced_or_spliced() {
    // Logs only, even at trace level: the spans are disabled and the hop carries no context.
    let _logs = super::testing::logs_only();
    let s = session(true);
    initialize(&s).await;
    let reply = request(&s, 2, "tools/call", put_params()).await;
    assert!(reply["result"].is_object(), "{reply}");
    let span = crate::telemetry::trace::upstream_span("up", "stdio", "tools/call", 1);
    assert!(crate::telemetry::trace::TraceHeaders::of_span(&span).is_none());
}
