//! `[telemetry]`: logs and trace export.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `tracing` filter, e.g. `info` or `cairn=debug` (default: `info` for
    /// `serve`, `warn` for other commands).
    pub log: Option<String>,
    /// `text` or `json` (one object per line, for log collectors).
    pub format: LogFormat,
    /// OTLP/HTTP endpoint (e.g. `http://127.0.0.1:4318`); none = no export.
    pub otlp_endpoint: Option<String>,
    /// Address (`host:port`) where `cairn serve` answers Prometheus scrapes
    /// at `/metrics`; none = no endpoint. Each process needs its own port.
    pub prometheus_listen: Option<String>,
    /// How often the process serving retention reads the figures it
    /// reports from the broker and the ledger (consumer lag, storage and
    /// cost per network, last backup and drill, ledger size, checkpoint
    /// age), when metrics are on.
    pub vitals_interval_secs: u64,
}

impl TelemetryConfig {
    /// Whether metrics go anywhere (a scrape endpoint or OTLP).
    pub fn metrics_on(&self) -> bool {
        self.prometheus_listen.is_some() || self.otlp_endpoint.is_some()
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log: None,
            format: LogFormat::Text,
            otlp_endpoint: None,
            prometheus_listen: None,
            vitals_interval_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}
