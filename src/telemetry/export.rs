//! The OTLP exporters and the providers that batch into them.
//!
//! The SDK's batch span processor and periodic metric reader each run on a thread of their own
//! with no Tokio runtime, so OTLP/HTTP uses reqwest's blocking client (the async one would
//! panic there). gRPC (feature `otlp-grpc`) needs the runtime: build it inside one.

use crate::config::{OtlpProtocol, TelemetryConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};
use std::time::Duration;

/// An export that has not finished in this long is abandoned (the next batch still goes).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Spans waiting for export: three per tool call, so the SDK's default (2,048) overflows (and
/// drops spans) after a burst of ~700 calls, which a pipelined stdio client reaches at once.
const SPAN_QUEUE: usize = 8192;
/// Spans per export request: fewer, larger requests cost the exporter thread less per span.
const SPAN_BATCH: usize = 1024;

fn resource(config: &TelemetryConfig) -> Resource {
    Resource::builder().with_service_name(config.service_name.clone()).build()
}

/// `<endpoint>/v1/<signal>` for OTLP/HTTP; the bare endpoint for gRPC.
fn signal_url(config: &TelemetryConfig, signal: &str) -> String {
    let base = config.endpoint.as_deref().unwrap_or_default().trim_end_matches('/');
    match config.protocol {
        OtlpProtocol::HttpProtobuf => format!("{base}/v1/{signal}"),
        OtlpProtocol::Grpc => base.to_string(),
    }
}

/// Spans sampled at `sampling_ratio` (following the caller's decision when there is one),
/// batched to the endpoint.
pub fn tracer_provider(config: &TelemetryConfig) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::{SpanExporter, WithExportConfig};
    let url = signal_url(config, "traces");
    let exporter = match config.protocol {
        OtlpProtocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
        #[cfg(feature = "otlp-grpc")]
        OtlpProtocol::Grpc => {
            SpanExporter::builder().with_tonic().with_endpoint(url).with_timeout(EXPORT_TIMEOUT).build()
        }
        #[cfg(not(feature = "otlp-grpc"))]
        OtlpProtocol::Grpc => {
            return Err("telemetry.protocol = \"grpc\" needs a build with --features otlp-grpc".into());
        }
    }
    .map_err(|e| format!("telemetry: cannot build the span exporter: {e}"))?;
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sampling_ratio)));
    let batch = BatchConfigBuilder::default().with_max_queue_size(SPAN_QUEUE).with_max_export_batch_size(SPAN_BATCH);
    let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch.build()).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler)
        .with_resource(resource(config))
        .build())
}

/// Metrics pushed to the endpoint every `metrics_interval_secs`.
pub fn meter_provider(config: &TelemetryConfig) -> Result<SdkMeterProvider, String> {
    use opentelemetry_otlp::{MetricExporter, WithExportConfig};
    let url = signal_url(config, "metrics");
    let exporter = match config.protocol {
        OtlpProtocol::HttpProtobuf => MetricExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
        #[cfg(feature = "otlp-grpc")]
        OtlpProtocol::Grpc => {
            MetricExporter::builder().with_tonic().with_endpoint(url).with_timeout(EXPORT_TIMEOUT).build()
        }
        #[cfg(not(feature = "otlp-grpc"))]
        OtlpProtocol::Grpc => {
            return Err("telemetry.protocol = \"grpc\" needs a build with --features otlp-grpc".into());
        }
    }
    .map_err(|e| format!("telemetry: cannot build the metric exporter: {e}"))?;
    let reader = PeriodicReader::builder(exporter).with_interval(config.metrics_interval()).build();
    Ok(SdkMeterProvider::builder().with_reader(reader).with_resource(resource(config)).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_signals_get_their_paths() {
        let mut c = TelemetryConfig { endpoint: Some("http://127.0.0.1:4318/".into()), ..Default::default() };
        assert_eq!(signal_url(&c, "traces"), "http://127.0.0.1:4318/v1/traces");
        c.protocol = OtlpProtocol::Grpc;
        assert_eq!(signal_url(&c, "metrics"), "http://127.0.0.1:4318");
    }
}
