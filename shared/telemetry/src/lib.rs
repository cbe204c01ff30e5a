//! Logging and tracing set-up, shared by every binary: `tracing` to stderr,
//! as text or JSON, filtered by `telemetry.log` (or `RUST_LOG`), and, when
//! `telemetry.otlp_endpoint` is set, every span exported over OTLP/HTTP
//! (protobuf) to an OpenTelemetry collector.
//!
//! Nothing Cairn logs carries key material or backed-up data: keys are
//! `Secret`/`Key32` (redacted `Debug`) and data types print only lengths.

pub mod config;

pub use config::{LogFormat, TelemetryConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry.log (or RUST_LOG) {filter:?} is not a valid filter: {source}")]
    Filter {
        filter: String,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("telemetry.otlp_endpoint {endpoint}: {message}")]
    Exporter { endpoint: String, message: String },
    #[error("telemetry: a global subscriber is already installed: {0}")]
    AlreadySet(String),
}

/// Flushes exported spans when dropped. Keep it alive until the end of
/// `main`, outside any async runtime.
pub struct Guard(Option<SdkTracerProvider>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("cairn: warning: OpenTelemetry export did not flush: {e}");
            }
        }
    }
}

/// Installs the global subscriber. `default` is the level when neither the
/// config nor `RUST_LOG` says otherwise (CLI commands are quieter than `serve`).
/// Call it before starting the async runtime: the OTLP exporter runs its own
/// thread with a blocking HTTP client.
pub fn init(cfg: &TelemetryConfig, default: &str, service: &str) -> Result<Guard, TelemetryError> {
    let wanted = match (std::env::var("RUST_LOG"), &cfg.log) {
        (Ok(v), _) if !v.is_empty() => v,
        (_, Some(level)) => level.clone(),
        _ => default.to_string(),
    };
    let filter = EnvFilter::try_new(&wanted).map_err(|source| TelemetryError::Filter {
        filter: wanted,
        source,
    })?;
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let fmt = match cfg.format {
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    let (otel, provider) = match &cfg.otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(url)
                .build()
                .map_err(|e| TelemetryError::Exporter {
                    endpoint: endpoint.clone(),
                    message: e.to_string(),
                })?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(service.to_string())
                        .build(),
                )
                .build();
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("cairn"));
            (Some(layer), Some(provider))
        }
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::AlreadySet(e.to_string()))?;
    Ok(Guard(provider))
}
