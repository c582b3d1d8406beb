//! Spans for requests, tool calls and upstream hops, and W3C trace context in and out.
//!
//! Every span here has the target [`SPAN_TARGET`]: the log layer never sees it and only the
//! OpenTelemetry layer enables it, so with telemetry off each span is disabled at its callsite
//! and costs a cached interest check. Span fields carry names, ids and decisions only: never
//! argument or result values (a decision's `reason` can quote arguments, so it stays out too).
//!
//! Context comes in as `traceparent`/`tracestate` HTTP headers or in `params._meta` (both
//! protocol generations), and goes out as HTTP headers to HTTP upstreams and in `params._meta`
//! to stdio upstreams, spliced so every other byte of the message stays as it was.

use super::SPAN_TARGET;
use crate::jsonrpc::raw_object::raw;
use crate::jsonrpc::{Frame, RawObject};
use crate::policy::trail::Trail;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde_json::value::RawValue;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// W3C trace context as carried on the wire (header values or `_meta` strings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeaders {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

impl Extractor for TraceHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(&self.traceparent),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = value,
            TRACESTATE if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

impl TraceHeaders {
    /// The context a downstream HTTP request carries in its headers.
    pub fn from_http(headers: &http::HeaderMap) -> Option<TraceHeaders> {
        let traceparent = headers.get(TRACEPARENT)?.to_str().ok()?.to_string();
        let tracestate = headers.get(TRACESTATE).and_then(|v| v.to_str().ok()).map(str::to_string);
        Some(TraceHeaders { traceparent, tracestate })
    }

    /// The context a message carries in `params._meta` (a targeted read: no value tree).
    pub fn from_meta(params: Option<&str>) -> Option<TraceHeaders> {
        #[derive(serde::Deserialize)]
        struct Meta<'a> {
            #[serde(borrow)]
            traceparent: Option<&'a RawValue>,
            #[serde(borrow)]
            tracestate: Option<&'a RawValue>,
        }
        let meta = crate::mcp::meta::<Meta>(params)?;
        let text = |v: Option<&RawValue>| v.and_then(|v| serde_json::from_str::<String>(v.get()).ok());
        Some(TraceHeaders { traceparent: text(meta.traceparent)?, tracestate: text(meta.tracestate) })
    }

    /// The context of `span`, to hand to the next hop; `None` when the span is not traced.
    pub fn of_span(span: &Span) -> Option<TraceHeaders> {
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut out = TraceHeaders::default();
        TraceContextPropagator::new().inject_context(&cx, &mut out);
        Some(out).filter(|t| !t.traceparent.is_empty())
    }

    fn context(&self) -> opentelemetry::Context {
        TraceContextPropagator::new().extract(self)
    }
}

/// Whether spans are recorded at all (an OpenTelemetry layer is installed): the transports
/// read incoming trace headers only then.
pub fn enabled() -> bool {
    tracing::span_enabled!(target: SPAN_TARGET, tracing::Level::INFO)
}

/// A JSON-RPC id as an attribute: strings without their quotes, numbers as written.
fn id_attr(id: &str) -> String {
    if id.starts_with('"') {
        serde_json::from_str::<String>(id).unwrap_or_else(|_| id.to_string())
    } else {
        id.to_string()
    }
}

/// `mcp.request`: one client request, from the session's point of view (a server span).
/// It continues the client's trace: `params._meta.traceparent` if the message has one (it
/// travels with the message through any proxy), else the HTTP headers of its POST.
pub fn request_span(frame: &Frame, session: &str, principal: &str, headers: Option<&TraceHeaders>) -> Span {
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "mcp.request",
        otel.kind = "server",
        otel.status_code = Empty,
        mcp.method.name = frame.method(),
        // Field values are only evaluated for an enabled span.
        jsonrpc.request.id = frame.id().map(id_attr),
        mcp.session.id = session,
        tollgate.principal = principal,
        error.type = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let parent = TraceHeaders::from_meta(frame.params()).or_else(|| headers.cloned());
    if let Some(parent) = parent {
        // A malformed traceparent extracts to an empty context: the span starts a new trace.
        let _ = span.set_parent(parent.context());
    }
    span
}

/// `mcp.tool_call`: one `tools/call` through the policy stack; each layer's decision is an
/// attribute on it (`tollgate.policy.<layer>` = "<decision> <rule>", see [`record_tool_call`]),
/// the upstream hop its child. Attributes rather than one span event per layer: an event costs
/// an allocation per field, a timestamp and its own encoding, several times per call, and a
/// layer's decision takes microseconds, so its own timestamp says nothing.
pub struct ToolCallSpan<'a> {
    pub session: &'a str,
    pub principal: &'a str,
    pub upstream: &'a str,
    /// The name the client called (namespaced).
    pub tool: &'a str,
    /// The upstream's own name for it.
    pub upstream_tool: &'a str,
    pub jsonrpc_id: Option<&'a str>,
}

pub fn tool_call_span(c: &ToolCallSpan<'_>) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "mcp.tool_call",
        otel.status_code = Empty,
        gen_ai.tool.name = c.tool,
        tollgate.upstream = c.upstream,
        tollgate.upstream_tool = c.upstream_tool,
        mcp.session.id = c.session,
        tollgate.principal = c.principal,
        jsonrpc.request.id = c.jsonrpc_id.map(id_attr),
        tollgate.decision = Empty,
        tollgate.rule = Empty,
        tollgate.outcome = Empty,
        error.type = Empty,
        tollgate.policy.allowlist = Empty,
        tollgate.policy.quarantine = Empty,
        tollgate.policy.pin = Empty,
        tollgate.policy.read_only = Empty,
        tollgate.policy.taint = Empty,
        tollgate.policy.approval = Empty,
        tollgate.policy.arguments = Empty,
    )
}

/// The layers whose decisions `mcp.tool_call` carries (the names `ToolCall::enforce` is given),
/// and their span fields.
const POLICY_FIELDS: [(&str, &str); 7] = [
    ("allowlist", "tollgate.policy.allowlist"),
    ("quarantine", "tollgate.policy.quarantine"),
    ("pin", "tollgate.policy.pin"),
    ("read_only", "tollgate.policy.read_only"),
    ("taint", "tollgate.policy.taint"),
    ("approval", "tollgate.policy.approval"),
    ("arguments", "tollgate.policy.arguments"),
];

/// Records how a tool call was decided (every layer's decision, the deciding one) and how it
/// ended.
pub fn record_tool_call(span: &Span, trail: &Trail, decision: &str, rule: Option<&str>, outcome: &str) {
    if span.is_disabled() {
        return;
    }
    trail.each(|entry| {
        if let Some((_, field)) = POLICY_FIELDS.iter().find(|(layer, _)| *layer == entry.layer) {
            span.record(*field, format!("{} {}", entry.decision, entry.rule));
        }
    });
    span.record("tollgate.decision", decision);
    if let Some(rule) = rule {
        span.record("tollgate.rule", rule);
    }
    span.record("tollgate.outcome", outcome);
    if !matches!(outcome, "ok" | "tool_error" | "input_required") {
        span.record("otel.status_code", "error");
    }
}

/// `mcp.upstream`: one message to an upstream and its reply (a client span).
pub fn upstream_span(upstream: &str, transport: &'static str, method: &str, id: u64) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "mcp.upstream",
        otel.kind = "client",
        otel.status_code = Empty,
        tollgate.upstream = upstream,
        tollgate.transport = transport,
        mcp.method.name = method,
        jsonrpc.request.id = id,
        error.type = Empty,
    )
}

/// Marks a span failed with a JSON-RPC error code (a gateway error, or the upstream's own).
pub fn record_error(span: &Span, code: i64) {
    if span.is_disabled() {
        return;
    }
    span.record("otel.status_code", "error");
    span.record("error.type", code.to_string());
}

/// The code of a JSON-RPC error reply (`None` for results).
pub fn error_code(frame: &Frame) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct E {
        code: i64,
    }
    serde_json::from_str::<E>(frame.error()?).ok().map(|e| e.code)
}

/// `params` with `_meta.traceparent` (and `tracestate`) set to `trace`: every other member of
/// `params` and of `_meta` keeps its raw text.
pub fn with_meta_traceparent(params: Option<&str>, trace: &TraceHeaders) -> Option<String> {
    let mut obj = match params {
        Some(p) => RawObject::parse(p).ok()?,
        None => RawObject::default(),
    };
    let mut meta = match obj.get("_meta") {
        Some(m) => RawObject::parse(m.get()).ok()?,
        None => RawObject::default(),
    };
    meta.set(TRACEPARENT, raw(&trace.traceparent));
    match &trace.tracestate {
        Some(state) => meta.set(TRACESTATE, raw(state)),
        None => {
            // A stale tracestate must not ride along with a new traceparent.
            meta.remove(TRACESTATE);
        }
    }
    obj.set("_meta", raw(&meta));
    Some(obj.to_json())
}

/// Whether `params._meta` already names a trace parent (a client's, forwarded as sent).
pub fn has_meta_traceparent(params: Option<&str>) -> bool {
    params.is_some_and(|p| p.contains("\"traceparent\"")) && TraceHeaders::from_meta(params).is_some()
}

/// The trace id of the innermost traced span on this thread, for log lines.
pub fn current_trace_id() -> Option<String> {
    let cx = Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn trace_context_is_read_from_meta_and_headers() {
        let params = format!(r#"{{"name":"t","_meta":{{"traceparent":"{PARENT}","tracestate":"k=v","x":1}}}}"#);
        let t = TraceHeaders::from_meta(Some(&params)).unwrap();
        assert_eq!(t.traceparent, PARENT);
        assert_eq!(t.tracestate.as_deref(), Some("k=v"));
        assert!(TraceHeaders::from_meta(Some(r#"{"_meta":{"traceparent":7}}"#)).is_none());
        assert!(TraceHeaders::from_meta(Some(r#"{"name":"t"}"#)).is_none());
        assert!(TraceHeaders::from_meta(None).is_none());
        let mut h = http::HeaderMap::new();
        assert!(TraceHeaders::from_http(&h).is_none());
        h.insert("traceparent", PARENT.parse().unwrap());
        assert_eq!(TraceHeaders::from_http(&h).unwrap().traceparent, PARENT);
    }

    #[test]
    fn meta_traceparent_is_spliced_and_every_other_byte_stays() {
        let t = TraceHeaders { traceparent: PARENT.into(), tracestate: None };
        let params =
            r#"{"name":"t","arguments":{"n":1.0e0,"s":"\u00e9"},"_meta":{"progressToken":1.50,"tracestate":"old=1"}}"#;
        let out = with_meta_traceparent(Some(params), &t).unwrap();
        assert_eq!(
            out,
            format!(
                r#"{{"name":"t","arguments":{{"n":1.0e0,"s":"\u00e9"}},"_meta":{{"progressToken":1.50,"traceparent":"{PARENT}"}}}}"#
            )
        );
        assert_eq!(with_meta_traceparent(None, &t).unwrap(), format!(r#"{{"_meta":{{"traceparent":"{PARENT}"}}}}"#));
        assert!(has_meta_traceparent(Some(&out)));
        assert!(!has_meta_traceparent(Some(params)));
    }

    #[test]
    fn string_ids_lose_their_quotes() {
        assert_eq!(id_attr("\"a-1\""), "a-1");
        assert_eq!(id_attr("17"), "17");
    }
}
