//! Telemetry: logs on stderr (stdout may be the stdio transport), traces and metrics over OTLP,
//! and the metrics `GET /metrics` serves.
//!
//! - Logs: text when stderr is a terminal, JSON lines otherwise; `TOLLGATE_LOG_FORMAT=json|text`
//!   decides instead, `TOLLGATE_LOG` (or `RUST_LOG`) filters.
//! - Traces: spans from [`trace`] go to an OpenTelemetry layer only when `[telemetry]` names an
//!   endpoint. Without one that layer is not installed, the spans are disabled at their
//!   callsites, and nothing exports.
//! - Metrics: [`metrics::Metrics`], always kept (it is cheap: atomics behind interned labels),
//!   also pushed over OTLP when the endpoint takes metrics.

mod export;
mod format;
pub mod metrics;
mod throttle;
pub mod trace;

pub use throttle::Throttle;

use crate::config::TelemetryConfig;
use metrics::Metrics;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::io::IsTerminal;
use std::sync::Arc;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The target of every span in [`trace`]: the OpenTelemetry layer takes these, the log layer
/// never does (formatting span fields for logs would cost every request an allocation).
pub const SPAN_TARGET: &str = "tollgate::otel";
/// The target of per-layer policy decision events (DEBUG): log lines only at
/// `TOLLGATE_LOG=debug`. Traces carry the decisions as `mcp.tool_call` attributes instead.
pub const DECISION_TARGET: &str = "tollgate::decision";
/// The target of the one log line per tool call: its fields are the `mcp.tool_call` span's
/// attributes already, so traces leave it out.
pub const CALL_TARGET: &str = "tollgate::call";

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `TOLLGATE_LOG_FORMAT` (`json` or `text`); without it, JSON unless stderr is a terminal
    /// (a person reads a terminal; anything else is probably a collector).
    pub fn from_env() -> LogFormat {
        LogFormat::choose(std::env::var("TOLLGATE_LOG_FORMAT").ok().as_deref(), std::io::stderr().is_terminal())
    }

    fn choose(setting: Option<&str>, terminal: bool) -> LogFormat {
        match setting.map(str::to_ascii_lowercase).as_deref() {
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            _ if terminal => LogFormat::Text,
            _ => LogFormat::Json,
        }
    }
}

fn env_filter() -> EnvFilter {
    let filter =
        std::env::var("TOLLGATE_LOG").ok().or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_else(|| "info".into());
    // The OpenTelemetry SDK reports its own start and stop at info; its warnings still show.
    let quiet = "opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn";
    EnvFilter::try_new(format!("{filter},{quiet}")).unwrap_or_else(|_| EnvFilter::new(format!("info,{quiet}")))
}

/// The log layer: every event the filter lets through, never a telemetry span.
fn log_layer<S>(format: LogFormat, trace_ids: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let filter = env_filter().and(filter_fn(|m: &Metadata<'_>| !(m.is_span() && m.target() == SPAN_TARGET)));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false);
    match format {
        LogFormat::Json => layer.event_format(format::JsonLines { trace_ids }).with_filter(filter).boxed(),
        LogFormat::Text => {
            let inner = tracing_subscriber::fmt::format().with_ansi(false);
            layer.event_format(format::TextLines { inner, trace_ids }).with_filter(filter).boxed()
        }
    }
}

/// What the OpenTelemetry layer sees: our spans, and the gateway's own events inside them at
/// INFO and above (warnings, lifecycle lines become span events), except what the spans'
/// attributes already say (the per-call line, the per-layer decisions). Dependencies' events
/// stay out, so an exporter's HTTP client can never feed spans back into its own exports.
fn traced(m: &Metadata<'_>) -> bool {
    if m.is_span() {
        return m.target() == SPAN_TARGET;
    }
    m.target().starts_with("tollgate") && *m.level() <= Level::INFO && m.target() != CALL_TARGET
}

/// The OpenTelemetry layer over `tracer`, without the per-poll extras the SDK offers (busy/idle
/// time, thread ids, source locations, context activation on every enter): each costs every
/// request and none answers "which call, which decision".
fn otel_layer<S>(tracer: SdkTracer) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_context_activation(false)
        .with_filter(filter_fn(traced))
}

/// Exporters to flush at exit, and the metrics the gateway records into.
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    metrics: Arc<Metrics>,
}

impl Telemetry {
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Exports what is still batched and stops the exporters (call outside async code: it
    /// waits for the exporter threads).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(tracer) = self.tracer.take()
            && let Err(e) = tracer.shutdown()
        {
            tracing::warn!(error = %e, "telemetry: could not flush spans at exit");
        }
        if let Some(meter) = self.meter.take()
            && let Err(e) = meter.shutdown()
        {
            tracing::warn!(error = %e, "telemetry: could not flush metrics at exit");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Logs only: for the CLI's one-shot commands.
pub fn init_logs() {
    let _ = tracing_subscriber::registry().with(log_layer(LogFormat::from_env(), false)).try_init();
}

/// Logs, and the OTLP exporters `config` asks for, for a gateway process. With gRPC, call it
/// inside the Tokio runtime's context (`Runtime::enter`): tonic's channel lives on it.
pub fn init(config: &TelemetryConfig) -> Result<Telemetry, String> {
    let tracer = if config.exports_traces() { Some(export::tracer_provider(config)?) } else { None };
    let meter = if config.exports_metrics() { Some(export::meter_provider(config)?) } else { None };
    let layer = tracer.as_ref().map(|p| otel_layer(p.tracer("tollgate")));
    let installed = tracing_subscriber::registry()
        .with(log_layer(LogFormat::from_env(), tracer.is_some()))
        .with(layer)
        .try_init()
        .is_ok();
    if !installed {
        // Only tests start two gateways in one process; the first subscriber stays.
        tracing::debug!("a tracing subscriber was already installed");
    }
    if let Some(endpoint) = &config.endpoint {
        tracing::info!(%endpoint, traces = config.exports_traces(), metrics = config.exports_metrics(), sampling_ratio = config.sampling_ratio, "telemetry: exporting over OTLP");
    }
    let metrics = match &meter {
        Some(m) => Metrics::with_meter(&opentelemetry::metrics::MeterProvider::meter(m, "tollgate")),
        None => Metrics::new(),
    };
    Ok(Telemetry { tracer, meter, metrics: Arc::new(metrics) })
}

/// Spans captured in memory, for unit tests: the same layer and filter as [`init`], as this
/// thread's default subscriber while the guard lives.
#[cfg(test)]
pub mod testing {
    use super::*;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

    pub struct Capture {
        pub exporter: InMemorySpanExporter,
        provider: SdkTracerProvider,
        _guard: tracing::subscriber::DefaultGuard,
    }

    impl Capture {
        /// Every span ended so far.
        pub fn spans(&self) -> Vec<SpanData> {
            let _ = self.provider.force_flush();
            self.exporter.get_finished_spans().unwrap_or_default()
        }
    }

    /// The subscriber a gateway without an endpoint runs (logs only, here discarded), as this
    /// thread's default. Tests that check "off" install it: with no subscriber at all, another
    /// test thread's capture could leave a callsite's cached interest at "always".
    pub fn logs_only() -> tracing::subscriber::DefaultGuard {
        let layer = tracing_subscriber::fmt::layer().with_writer(std::io::sink).with_filter(
            EnvFilter::new("trace").and(filter_fn(|m: &Metadata<'_>| !(m.is_span() && m.target() == SPAN_TARGET))),
        );
        tracing::subscriber::set_default(tracing_subscriber::registry().with(layer))
    }

    pub fn capture() -> Capture {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let subscriber = tracing_subscriber::registry().with(otel_layer(provider.tracer("test")));
        let guard = tracing::subscriber::set_default(subscriber);
        Capture { exporter, provider, _guard: guard }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn log_format_follows_the_setting_then_the_terminal() {
        assert_eq!(LogFormat::choose(Some("json"), true), LogFormat::Json);
        assert_eq!(LogFormat::choose(Some("TEXT"), false), LogFormat::Text);
        assert_eq!(LogFormat::choose(None, true), LogFormat::Text);
        assert_eq!(LogFormat::choose(None, false), LogFormat::Json);
        assert_eq!(LogFormat::choose(Some("yaml"), false), LogFormat::Json);
    }

    #[test]
    fn spans_are_on_with_an_exporter() {
        // (Off is checked by behaviour in `tests`: with several test threads holding their own
        // subscribers, tracing's cached callsite interest cannot say "disabled" reliably.)
        let _capture = testing::capture();
        assert!(trace::enabled());
    }
}
