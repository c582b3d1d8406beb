//! A small OTLP/HTTP receiver on loopback, started by a test: it decodes the protobuf exports
//! the gateway POSTs to `/v1/traces` and `/v1/metrics` and keeps what arrived.

use super::WAIT;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One span as exported, ids in lowercase hex.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub attributes: BTreeMap<String, String>,
    /// Event names with their attributes.
    pub events: Vec<(String, BTreeMap<String, String>)>,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    /// Metric names from every metrics export.
    metrics: Vec<String>,
    /// Integer sums (counters) as last exported: (name, attributes) → value. The SDK exports
    /// cumulative sums, so the latest data point is the total.
    sums: BTreeMap<(String, BTreeMap<String, String>), i64>,
}

pub struct OtlpReceiver {
    /// The base URL to configure as `telemetry.endpoint`.
    pub url: String,
    received: Arc<Mutex<Received>>,
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn traces(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> &'static str {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else { return "" };
    let mut received = received.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .and_then(|a| a.get("service.name").cloned())
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                received.spans.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: attributes(&span.attributes),
                    events: span.events.iter().map(|e| (e.name.clone(), attributes(&e.attributes))).collect(),
                });
            }
        }
    }
    // An empty body is an empty Export…ServiceResponse: everything accepted.
    ""
}

async fn metrics(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> &'static str {
    let Ok(request) = ExportMetricsServiceRequest::decode(body) else { return "" };
    let mut received = received.lock().unwrap();
    for resource in request.resource_metrics {
        for scope in resource.scope_metrics {
            for m in scope.metrics {
                if let Some(metric::Data::Sum(sum)) = &m.data {
                    for point in &sum.data_points {
                        if let Some(number_data_point::Value::AsInt(v)) = point.value {
                            received.sums.insert((m.name.clone(), attributes(&point.attributes)), v);
                        }
                    }
                }
                received.metrics.push(m.name);
            }
        }
    }
    ""
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let received = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let url = format!("http://{}", listener.local_addr().expect("receiver address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        OtlpReceiver { url, received }
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.lock().unwrap().spans.clone()
    }

    pub fn metric_names(&self) -> Vec<String> {
        self.received.lock().unwrap().metrics.clone()
    }

    /// The last exported value of the integer counter `name` with exactly these attributes.
    pub fn sum(&self, name: &str, attributes: &[(&str, &str)]) -> Option<i64> {
        let attributes = attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.received.lock().unwrap().sums.get(&(name.to_string(), attributes)).copied()
    }

    /// Waits (within the test bound) until `done` holds for what arrived.
    pub async fn wait_until(&self, mut done: impl FnMut(&OtlpReceiver) -> bool) {
        let deadline = std::time::Instant::now() + WAIT;
        while !done(self) {
            assert!(std::time::Instant::now() < deadline, "the receiver did not get the expected export in time");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
