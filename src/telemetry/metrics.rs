//! The gateway's metrics: kept in a Prometheus registry (read by `GET /metrics` on the admin
//! listener) and, when an OTLP endpoint takes metrics, recorded on OpenTelemetry instruments too.
//!
//! Label values are bounded. Tools and upstreams are named as the configuration and the
//! upstreams' own lists name them: a call to a tool no catalog knows is counted under
//! [`UNKNOWN`], never under the name a client sent; rules come from policy files. Each label
//! value is interned once, so counting a call allocates nothing, and after [`MAX_LABEL_VALUES`]
//! distinct names (an upstream that renames its tools without end) new ones count as [`OTHER`].
//! The currency label comes from `[cost] currency`.
//!
//! Cost attribution (see `crate::cost`) is counted per upstream and tool: payload bytes and
//! estimated tokens in and out for every routed call, and the charge in micro-units of the
//! currency for calls a `[[cost.price]]` matches (a matched call that was not forwarded adds 0,
//! so the series shows the tool is priced).

use crate::cost::CallCost;
use opentelemetry::KeyValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The label value for a tool or upstream that no catalog names.
pub const UNKNOWN: &str = "unknown";
/// The label value for names past [`MAX_LABEL_VALUES`].
pub const OTHER: &str = "other";
/// Distinct upstream, tool and rule names kept as label values.
pub const MAX_LABEL_VALUES: usize = 2000;

/// Latency buckets in seconds: sub-millisecond gateway answers up to the default 300 s timeout.
const LATENCY_BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0];

type Label = Arc<str>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    upstream: Label,
    tool: Label,
    decision: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    upstream: Label,
    tool: Label,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    upstream: Label,
    tool: Label,
}

/// `direction` is `in` (the call's arguments) or `out` (its result or error).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PayloadLabels {
    upstream: Label,
    tool: Label,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CostLabels {
    upstream: Label,
    tool: Label,
    currency: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    upstream: Label,
    rule: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerRequestLabels {
    upstream: Label,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: Label,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// One finished `tools/call`, as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct CallRecord<'a> {
    /// The upstream's configured name ([`UNKNOWN`] when no catalog knew the tool).
    pub upstream: &'a str,
    /// The upstream's own tool name, from its list ([`UNKNOWN`] likewise).
    pub tool: &'a str,
    /// `allow`, `deny`, `would_deny` (dry run) or `none` (refused before any policy decision).
    pub decision: &'static str,
    /// As in the audit record: `ok`, `tool_error`, `denied`, `timeout`, `error`, …
    pub outcome: &'static str,
    /// The rule that denied the call, if one did.
    pub rule: Option<&'a str>,
    pub latency: Duration,
    /// What redaction removed from the call's output.
    pub redactions: usize,
    /// The call's settled figures; `None` for a call no catalog could route (nothing measured).
    pub cost: Option<&'a CallCost>,
    /// `[cost] currency`, the label of the charge.
    pub currency: &'a str,
}

/// The same measurements as OpenTelemetry instruments, for OTLP export.
struct Otel {
    calls: opentelemetry::metrics::Counter<u64>,
    latency: opentelemetry::metrics::Histogram<f64>,
    denials: opentelemetry::metrics::Counter<u64>,
    timeouts: opentelemetry::metrics::Counter<u64>,
    redactions: opentelemetry::metrics::Counter<u64>,
    payload: opentelemetry::metrics::Counter<u64>,
    tokens: opentelemetry::metrics::Counter<u64>,
    cost: opentelemetry::metrics::Counter<u64>,
    message_redactions: opentelemetry::metrics::Counter<u64>,
    flagged_definitions: opentelemetry::metrics::Counter<u64>,
    refused_server_requests: opentelemetry::metrics::Counter<u64>,
    upstream_up: opentelemetry::metrics::Gauge<u64>,
    restarts: opentelemetry::metrics::Counter<u64>,
    sessions: opentelemetry::metrics::UpDownCounter<i64>,
    approvals: opentelemetry::metrics::UpDownCounter<i64>,
}

impl Otel {
    fn new(meter: &opentelemetry::metrics::Meter) -> Otel {
        Otel {
            calls: meter.u64_counter("tollgate.tool.calls").with_description("tools/call requests").build(),
            latency: meter
                .f64_histogram("tollgate.tool.duration")
                .with_unit("s")
                .with_description("tools/call latency through the gateway")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            denials: meter.u64_counter("tollgate.policy.denials").with_description("calls denied, by rule").build(),
            timeouts: meter.u64_counter("tollgate.upstream.timeouts").with_description("tool calls timed out").build(),
            redactions: meter
                .u64_counter("tollgate.redactions")
                .with_description("items redacted from tool output")
                .build(),
            payload: meter
                .u64_counter("tollgate.tool.payload")
                .with_unit("By")
                .with_description("bytes of tool call arguments (in) and results (out)")
                .build(),
            tokens: meter
                .u64_counter("tollgate.tool.estimated_tokens")
                .with_unit("{token}")
                .with_description("estimated tokens of tool call arguments (in) and results (out)")
                .build(),
            cost: meter
                .u64_counter("tollgate.tool.cost_micros")
                .with_unit("{micro-unit}")
                .with_description("cost of priced tool calls in micro-units of the currency")
                .build(),
            message_redactions: meter
                .u64_counter("tollgate.message.redactions")
                .with_description("items redacted from other upstream messages")
                .build(),
            flagged_definitions: meter
                .u64_counter("tollgate.tool.definitions.flagged")
                .with_description("listings of a tool whose definition looks like it carries hidden instructions")
                .build(),
            refused_server_requests: meter
                .u64_counter("tollgate.server_requests.refused")
                .with_description("upstream requests to the client the gateway refused")
                .build(),
            upstream_up: meter
                .u64_gauge("tollgate.upstream.up")
                .with_description("1 if the last connection attempt or loss seen for the upstream was a success")
                .build(),
            restarts: meter
                .u64_counter("tollgate.upstream.restarts")
                .with_description("reconnections after a lost upstream connection")
                .build(),
            sessions: meter.i64_up_down_counter("tollgate.sessions.active").with_description("live sessions").build(),
            approvals: meter
                .i64_up_down_counter("tollgate.approvals.pending")
                .with_description("calls waiting for a person")
                .build(),
        }
    }
}

pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    denials: Family<RuleLabels, Counter>,
    timeouts: Family<ToolLabels, Counter>,
    redactions: Family<ToolLabels, Counter>,
    payload_bytes: Family<PayloadLabels, Counter>,
    tokens: Family<PayloadLabels, Counter>,
    cost: Family<CostLabels, Counter>,
    message_redactions: Counter,
    flagged_definitions: Family<ToolLabels, Counter>,
    refused_server_requests: Family<ServerRequestLabels, Counter>,
    upstream_up: Family<UpstreamLabels, Gauge>,
    restarts: Family<UpstreamLabels, Counter>,
    sessions: Gauge,
    approvals: Gauge,
    labels: RwLock<HashMap<String, Label>>,
    otel: Option<Otel>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("otlp", &self.otel.is_some()).finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics for Prometheus only.
    pub fn new() -> Metrics {
        Metrics::build(None)
    }

    /// Metrics for Prometheus and for `meter` (OTLP export).
    pub fn with_meter(meter: &opentelemetry::metrics::Meter) -> Metrics {
        Metrics::build(Some(Otel::new(meter)))
    }

    fn build(otel: Option<Otel>) -> Metrics {
        let mut registry = Registry::with_prefix("tollgate");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register("tool_calls", "tools/call requests by upstream, tool, decision and outcome", calls.clone());
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "tool_call_duration",
            "tools/call latency through the gateway, policy included",
            Unit::Seconds,
            latency.clone(),
        );
        let denials = Family::<RuleLabels, Counter>::default();
        registry.register("policy_denials", "tool calls denied, by the rule that denied them", denials.clone());
        let timeouts = Family::<ToolLabels, Counter>::default();
        registry.register("upstream_timeouts", "tool calls the upstream did not answer in time", timeouts.clone());
        let redactions = Family::<ToolLabels, Counter>::default();
        registry.register("redactions", "items redacted from tool output", redactions.clone());
        let payload_bytes = Family::<PayloadLabels, Counter>::default();
        registry.register_with_unit(
            "tool_payload",
            "bytes of tool call arguments (direction=in) and results after redaction (direction=out)",
            Unit::Bytes,
            payload_bytes.clone(),
        );
        let tokens = Family::<PayloadLabels, Counter>::default();
        registry.register(
            "tool_estimated_tokens",
            "estimated tokens of tool call arguments (direction=in) and results (direction=out)",
            tokens.clone(),
        );
        let cost = Family::<CostLabels, Counter>::default();
        registry.register(
            "tool_cost_micros",
            "cost of priced tool calls in micro-units (1e-6) of the currency",
            cost.clone(),
        );
        let message_redactions = Counter::default();
        registry.register(
            "message_redactions",
            "items redacted from upstream messages other than tool results",
            message_redactions.clone(),
        );
        let flagged_definitions = Family::<ToolLabels, Counter>::default();
        registry.register(
            "tool_definitions_flagged",
            "listings of a tool whose definition looks like it carries hidden instructions",
            flagged_definitions.clone(),
        );
        let refused_server_requests = Family::<ServerRequestLabels, Counter>::default();
        registry.register(
            "server_requests_refused",
            "upstream requests to the client (sampling, elicitation, roots) the gateway refused",
            refused_server_requests.clone(),
        );
        let upstream_up = Family::<UpstreamLabels, Gauge>::default();
        registry.register(
            "upstream_up",
            "1 if the last connection attempt or loss seen for the upstream was a success, else 0",
            upstream_up.clone(),
        );
        let restarts = Family::<UpstreamLabels, Counter>::default();
        registry.register("upstream_restarts", "reconnections after a lost upstream connection", restarts.clone());
        let sessions = Gauge::default();
        registry.register("sessions_active", "sessions this process holds", sessions.clone());
        let approvals = Gauge::default();
        registry.register("approvals_pending", "calls in this process waiting for a person", approvals.clone());
        Metrics {
            registry,
            calls,
            latency,
            denials,
            timeouts,
            redactions,
            payload_bytes,
            tokens,
            cost,
            message_redactions,
            flagged_definitions,
            refused_server_requests,
            upstream_up,
            restarts,
            sessions,
            approvals,
            labels: RwLock::new(HashMap::new()),
            otel,
        }
    }

    /// The interned label value for `name` (see the module docs for the bound).
    fn label(&self, name: &str) -> Label {
        if let Some(l) = self.labels.read().unwrap_or_else(|e| e.into_inner()).get(name) {
            return l.clone();
        }
        let mut labels = self.labels.write().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = labels.get(name) {
            return l.clone();
        }
        let key = if labels.len() >= MAX_LABEL_VALUES { OTHER } else { name };
        let label: Label = Arc::from(key);
        labels.insert(key.to_string(), label.clone());
        label
    }

    pub fn record_call(&self, c: &CallRecord<'_>) {
        let (upstream, tool) = (self.label(c.upstream), self.label(c.tool));
        let calls =
            CallLabels { upstream: upstream.clone(), tool: tool.clone(), decision: c.decision, outcome: c.outcome };
        self.calls.get_or_create(&calls).inc();
        let latency = LatencyLabels { upstream: upstream.clone(), tool: tool.clone(), decision: c.decision };
        self.latency.get_or_create(&latency).observe(c.latency.as_secs_f64());
        let rule = (c.decision == "deny").then(|| self.label(c.rule.unwrap_or(UNKNOWN)));
        if let Some(rule) = &rule {
            self.denials.get_or_create(&RuleLabels { upstream: upstream.clone(), rule: rule.clone() }).inc();
        }
        let tool_labels = || ToolLabels { upstream: upstream.clone(), tool: tool.clone() };
        if c.outcome == "timeout" {
            self.timeouts.get_or_create(&tool_labels()).inc();
        }
        if c.redactions > 0 {
            self.redactions.get_or_create(&tool_labels()).inc_by(c.redactions as u64);
        }
        if let Some(cost) = c.cost {
            self.record_cost(&upstream, &tool, cost, c.currency);
        }
        if let Some(otel) = &self.otel {
            let attrs = [
                KeyValue::new("upstream", upstream.clone()),
                KeyValue::new("tool", tool.clone()),
                KeyValue::new("decision", c.decision),
            ];
            otel.latency.record(c.latency.as_secs_f64(), &attrs);
            let with_outcome =
                [attrs[0].clone(), attrs[1].clone(), attrs[2].clone(), KeyValue::new("outcome", c.outcome)];
            otel.calls.add(1, &with_outcome);
            if let Some(rule) = rule {
                otel.denials.add(1, &[KeyValue::new("upstream", upstream.clone()), KeyValue::new("rule", rule)]);
            }
            if c.outcome == "timeout" {
                otel.timeouts.add(1, &attrs[..2]);
            }
            if c.redactions > 0 {
                otel.redactions.add(c.redactions as u64, &attrs[..2]);
            }
        }
    }

    /// Bytes and tokens in both directions, and the charge when a price matched.
    fn record_cost(&self, upstream: &Label, tool: &Label, cost: &CallCost, currency: &str) {
        let directions = [("in", cost.bytes_in, cost.tokens_in), ("out", cost.bytes_out, cost.tokens_out)];
        for (direction, bytes, tokens) in directions {
            let labels = PayloadLabels { upstream: upstream.clone(), tool: tool.clone(), direction };
            self.payload_bytes.get_or_create(&labels).inc_by(bytes);
            self.tokens.get_or_create(&labels).inc_by(tokens);
        }
        let currency = cost.price.is_some().then(|| self.label(currency));
        if let Some(currency) = &currency {
            let labels = CostLabels { upstream: upstream.clone(), tool: tool.clone(), currency: currency.clone() };
            self.cost.get_or_create(&labels).inc_by(cost.cost_micros);
        }
        if let Some(otel) = &self.otel {
            let (upstream, tool) = (KeyValue::new("upstream", upstream.clone()), KeyValue::new("tool", tool.clone()));
            for (direction, bytes, tokens) in directions {
                let attrs = [upstream.clone(), tool.clone(), KeyValue::new("direction", direction)];
                otel.payload.add(bytes, &attrs);
                otel.tokens.add(tokens, &attrs);
            }
            if let Some(currency) = currency {
                otel.cost.add(cost.cost_micros, &[upstream, tool, KeyValue::new("currency", currency)]);
            }
        }
    }

    /// Redactions in upstream messages that are not tool results (notifications, other methods).
    pub fn record_message_redactions(&self, n: usize) {
        self.message_redactions.inc_by(n as u64);
        if let Some(otel) = &self.otel {
            otel.message_redactions.add(n as u64, &[]);
        }
    }

    /// `tool` of `upstream` was listed with a definition `policy::description` flags.
    pub fn flagged_definition(&self, upstream: &str, tool: &str) {
        let (upstream, tool) = (self.label(upstream), self.label(tool));
        self.flagged_definitions.get_or_create(&ToolLabels { upstream: upstream.clone(), tool: tool.clone() }).inc();
        if let Some(otel) = &self.otel {
            otel.flagged_definitions.add(1, &[KeyValue::new("upstream", upstream), KeyValue::new("tool", tool)]);
        }
    }

    /// The gateway refused `upstream`'s request to the client; `method` is one of the few
    /// server-to-client methods it checks (a fixed set, never free text).
    pub fn refused_server_request(&self, upstream: &str, method: &'static str) {
        let upstream = self.label(upstream);
        self.refused_server_requests.get_or_create(&ServerRequestLabels { upstream: upstream.clone(), method }).inc();
        if let Some(otel) = &self.otel {
            otel.refused_server_requests
                .add(1, &[KeyValue::new("upstream", upstream), KeyValue::new("method", method)]);
        }
    }

    /// A connection to `upstream` was made (`true`), or failed or was lost (`false`).
    pub fn upstream_up(&self, upstream: &str, up: bool) {
        let upstream = self.label(upstream);
        self.upstream_up.get_or_create(&UpstreamLabels { upstream: upstream.clone() }).set(i64::from(up));
        if let Some(otel) = &self.otel {
            otel.upstream_up.record(u64::from(up), &[KeyValue::new("upstream", upstream)]);
        }
    }

    /// A lost connection to `upstream` was replaced by a new one.
    pub fn upstream_restarted(&self, upstream: &str) {
        let upstream = self.label(upstream);
        self.restarts.get_or_create(&UpstreamLabels { upstream: upstream.clone() }).inc();
        if let Some(otel) = &self.otel {
            otel.restarts.add(1, &[KeyValue::new("upstream", upstream)]);
        }
    }

    /// A session came (`1`) or went (`-1`).
    pub fn sessions_changed(&self, delta: i64) {
        self.sessions.inc_by(delta);
        if let Some(otel) = &self.otel {
            otel.sessions.add(delta, &[]);
        }
    }

    /// A call started (`1`) or stopped (`-1`) waiting for a person.
    pub fn approvals_changed(&self, delta: i64) {
        self.approvals.inc_by(delta);
        if let Some(otel) = &self.otel {
            otel.approvals.add(delta, &[]);
        }
    }

    /// The OpenMetrics text exposition (what Prometheus scrapes).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a label value.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(tool: &'a str, decision: &'static str, outcome: &'static str) -> CallRecord<'a> {
        CallRecord {
            upstream: "fx",
            tool,
            decision,
            outcome,
            rule: None,
            latency: Duration::from_millis(3),
            redactions: 0,
            cost: None,
            currency: "EUR",
        }
    }

    #[test]
    fn calls_are_counted_by_upstream_tool_decision_and_outcome() {
        let m = Metrics::new();
        m.record_call(&call("echo", "allow", "ok"));
        m.record_call(&call("echo", "allow", "ok"));
        m.record_call(&CallRecord { rule: Some("p.toml:fx:read_only"), ..call("write", "deny", "denied") });
        m.record_call(&CallRecord { redactions: 3, ..call("leak", "allow", "ok") });
        m.record_call(&call("slow", "allow", "timeout"));
        m.sessions_changed(1);
        m.upstream_up("fx", true);
        let text = m.render();
        for line in [
            r#"tollgate_tool_calls_total{upstream="fx",tool="echo",decision="allow",outcome="ok"} 2"#,
            r#"tollgate_tool_calls_total{upstream="fx",tool="write",decision="deny",outcome="denied"} 1"#,
            r#"tollgate_policy_denials_total{upstream="fx",rule="p.toml:fx:read_only"} 1"#,
            r#"tollgate_upstream_timeouts_total{upstream="fx",tool="slow"} 1"#,
            r#"tollgate_redactions_total{upstream="fx",tool="leak"} 3"#,
            r#"tollgate_tool_call_duration_seconds_count{upstream="fx",tool="echo",decision="allow"} 2"#,
            r#"tollgate_tool_call_duration_seconds_bucket{le="0.005",upstream="fx",tool="echo",decision="allow"} 2"#,
            "tollgate_sessions_active 1",
            r#"tollgate_upstream_up{upstream="fx"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn cost_is_counted_by_upstream_tool_and_direction() {
        let m = Metrics::new();
        let priced =
            CallCost { bytes_in: 10, bytes_out: 100, tokens_in: 3, tokens_out: 25, cost_micros: 2_040, price: Some(0) };
        m.record_call(&CallRecord { cost: Some(&priced), ..call("echo", "allow", "ok") });
        m.record_call(&CallRecord { cost: Some(&priced), ..call("echo", "allow", "ok") });
        let denied = CallCost { cost_micros: 0, bytes_out: 0, tokens_out: 0, ..priced.clone() };
        m.record_call(&CallRecord { cost: Some(&denied), ..call("write", "deny", "denied") });
        let unpriced = CallCost { price: None, cost_micros: 0, ..priced.clone() };
        m.record_call(&CallRecord { cost: Some(&unpriced), ..call("free", "allow", "ok") });
        m.record_call(&call("unrouted", "deny", "denied"));
        let text = m.render();
        for line in [
            r#"tollgate_tool_payload_bytes_total{upstream="fx",tool="echo",direction="in"} 20"#,
            r#"tollgate_tool_payload_bytes_total{upstream="fx",tool="echo",direction="out"} 200"#,
            r#"tollgate_tool_estimated_tokens_total{upstream="fx",tool="echo",direction="in"} 6"#,
            r#"tollgate_tool_estimated_tokens_total{upstream="fx",tool="echo",direction="out"} 50"#,
            r#"tollgate_tool_cost_micros_total{upstream="fx",tool="echo",currency="EUR"} 4080"#,
            r#"tollgate_tool_cost_micros_total{upstream="fx",tool="write",currency="EUR"} 0"#,
            r#"tollgate_tool_payload_bytes_total{upstream="fx",tool="write",direction="in"} 10"#,
            r#"tollgate_tool_payload_bytes_total{upstream="fx",tool="free",direction="out"} 100"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert!(
            !text.contains(r#"tool_cost_micros_total{upstream="fx",tool="free""#),
            "unpriced: no cost series\n{text}"
        );
        assert!(!text.contains(r#"tool="unrouted",direction"#), "nothing measured for an unrouted call\n{text}");
    }

    #[test]
    fn label_values_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_LABEL_VALUES + 10 {
            m.record_call(&call(&format!("t{i}"), "allow", "ok"));
        }
        assert_eq!(m.labels.read().unwrap().len(), MAX_LABEL_VALUES + 1);
        assert!(m.render().contains(r#"tool="other""#));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.record_call(&call("a\"b\nc", "allow", "ok"));
        assert!(m.render().contains(r#"tool="a\"b\nc""#), "{}", m.render());
    }
}
