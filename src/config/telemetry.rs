//! `[telemetry]`: where traces and metrics go (OTLP), how much of the traffic is traced, and who
//! may read the Prometheus metrics on the admin listener. Without an `endpoint` nothing is
//! exported and no exporter runs; `GET /metrics` works either way (it needs `[admin]`).

use serde::Deserialize;
use std::time::Duration;

/// The OTLP transport, named as `OTEL_EXPORTER_OTLP_PROTOCOL` names them.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP POST to `<endpoint>/v1/traces` and `<endpoint>/v1/metrics` (port 4318).
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// gRPC to `<endpoint>` (port 4317); needs a build with the `otlp-grpc` feature.
    #[serde(rename = "grpc")]
    Grpc,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OTLP collector's base URL, e.g. `http://127.0.0.1:4318` (HTTP) or
    /// `http://127.0.0.1:4317` (gRPC). Without it nothing is exported.
    pub endpoint: Option<String>,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// `service.name` of every span and metric.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Share of new traces that are recorded, 0.0 to 1.0. A client's own sampling decision (the
    /// `traceparent` flags) is followed, so one trace is never half recorded.
    #[serde(default = "default_ratio")]
    pub sampling_ratio: f64,
    /// Export traces to the endpoint (default on when there is an endpoint).
    #[serde(default = "default_true")]
    pub traces: bool,
    /// Export metrics to the endpoint (default on when there is an endpoint).
    #[serde(default = "default_true")]
    pub metrics: bool,
    /// How often metrics are pushed to the endpoint.
    #[serde(default = "default_interval")]
    pub metrics_interval_secs: u64,
    /// `GET /metrics` on the admin listener asks for the admin bearer token, as every admin route
    /// does. Set false for a scraper that cannot send one: the metrics hold no ids or arguments,
    /// only upstream, tool and rule names.
    #[serde(default = "default_true")]
    pub metrics_require_token: bool,
}

fn default_service_name() -> String {
    "tollgate".into()
}
fn default_ratio() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}
fn default_interval() -> u64 {
    60
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            endpoint: None,
            protocol: OtlpProtocol::default(),
            service_name: default_service_name(),
            sampling_ratio: default_ratio(),
            traces: true,
            metrics: true,
            metrics_interval_secs: default_interval(),
            metrics_require_token: true,
        }
    }
}

impl TelemetryConfig {
    /// Spans go to an OTLP endpoint.
    pub fn exports_traces(&self) -> bool {
        self.endpoint.is_some() && self.traces
    }

    /// Metrics go to an OTLP endpoint (besides `GET /metrics`).
    pub fn exports_metrics(&self) -> bool {
        self.endpoint.is_some() && self.metrics
    }

    pub fn metrics_interval(&self) -> Duration {
        Duration::from_secs(self.metrics_interval_secs)
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.endpoint {
            let ok = url
                .parse::<http::Uri>()
                .ok()
                .is_some_and(|u| matches!(u.scheme_str(), Some("http") | Some("https")) && u.host().is_some());
            if !ok {
                return Err(format!("telemetry.endpoint = {url:?}: use an http URL such as \"http://127.0.0.1:4318\""));
            }
        }
        if self.protocol == OtlpProtocol::Grpc && !cfg!(feature = "otlp-grpc") {
            return Err(
                "telemetry.protocol = \"grpc\": this build has no gRPC exporter (build with --features otlp-grpc), \
                        or use protocol = \"http/protobuf\""
                    .into(),
            );
        }
        if self.service_name.trim().is_empty() {
            return Err("telemetry.service_name: must not be empty".into());
        }
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            return Err(format!("telemetry.sampling_ratio = {}: must be between 0.0 and 1.0", self.sampling_ratio));
        }
        if self.metrics_interval_secs == 0 {
            return Err("telemetry.metrics_interval_secs: must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn telemetry_is_off_by_default_and_metrics_need_the_token() {
        let c = Config::parse("", "t.toml").unwrap();
        assert!(!c.telemetry.exports_traces());
        assert!(!c.telemetry.exports_metrics());
        assert!(c.telemetry.metrics_require_token);
        let c = Config::parse("[telemetry]\nendpoint = \"http://127.0.0.1:4318\"\ntraces = false\n", "t.toml").unwrap();
        assert!(!c.telemetry.exports_traces());
        assert!(c.telemetry.exports_metrics());
    }

    #[test]
    fn telemetry_settings_are_checked() {
        let bad = [
            ("[telemetry]\nendpont = \"http://h:4318\"\n", "endpont"),
            ("[telemetry]\nendpoint = \"collector:4318\"\n", "telemetry.endpoint"),
            ("[telemetry]\nsampling_ratio = 1.5\n", "telemetry.sampling_ratio"),
            ("[telemetry]\nsampling_ratio = -0.1\n", "telemetry.sampling_ratio"),
            ("[telemetry]\nservice_name = \" \"\n", "telemetry.service_name"),
            ("[telemetry]\nmetrics_interval_secs = 0\n", "telemetry.metrics_interval_secs"),
            ("[telemetry]\nprotocol = \"http/json\"\n", "protocol"),
        ];
        for (text, needle) in bad {
            let e = Config::parse(text, "t.toml").unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("t.toml"), "{text}: {e}");
        }
        let grpc = Config::parse("[telemetry]\nprotocol = \"grpc\"\n", "t.toml");
        assert_eq!(grpc.is_ok(), cfg!(feature = "otlp-grpc"));
    }
}
