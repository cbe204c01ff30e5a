//! Logging and tracing set-up, shared by every binary: `tracing` to stderr,
//! as text or JSON, filtered by `telemetry.log` (or `RUST_LOG`); Cairn's
//! spans as OpenTelemetry spans, linked across processes through message
//! headers ([`propagate`]) and, when `telemetry.otlp_endpoint` is set,
//! exported over OTLP/HTTP (protobuf) to an OpenTelemetry collector.
//!
//! Nothing Cairn logs carries key material or backed-up data: keys are
//! `Secret`/`Key32` (redacted `Debug`) and data types print only lengths.

pub mod config;
pub mod metrics;
pub mod propagate;

pub use config::{LogFormat, TelemetryConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{self, FilterExt as _};
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
pub struct Guard(
    Option<SdkTracerProvider>,
    Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("cairn: warning: OpenTelemetry export did not flush: {e}");
            }
        }
        if let Some(p) = self.1.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("cairn: warning: OpenTelemetry metrics did not flush: {e}");
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
    // Cairn's own spans are always kept, whatever the log level: they carry
    // the backup id and trace id onto every line logged inside them, and
    // their context onto every message sent from inside them.
    let fmt = fmt.with_filter(
        filter.or(filter::filter_fn(|m| m.is_span() && ours(m))
            .with_max_level_hint(tracing::level_filters::LevelFilter::INFO)),
    );
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .with_attribute(opentelemetry::KeyValue::new(
            "process.pid",
            i64::from(std::process::id()),
        ))
        .build();
    let meters = metrics::provider(
        cfg.prometheus_listen.is_some(),
        cfg.otlp_endpoint.as_deref(),
        resource.clone(),
    )
    .map_err(|message| TelemetryError::Exporter {
        endpoint: cfg.otlp_endpoint.clone().unwrap_or_default(),
        message,
    })?;
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    // Without an endpoint, spans still get ids (for the logs and the
    // messages' trace context) and go nowhere.
    if let Some(endpoint) = &cfg.otlp_endpoint {
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
        // A span per chunk and stage: the default queue (2048) would drop
        // spans of a large backup between two exports.
        let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                opentelemetry_sdk::trace::BatchConfigBuilder::default()
                    .with_max_queue_size(65_536)
                    .with_max_export_batch_size(2048)
                    .build(),
            )
            .build();
        builder = builder.with_span_processor(processor);
    }
    let provider = builder.build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("cairn"))
        .with_filter(
            filter::filter_fn(ours).with_max_level_hint(tracing::level_filters::LevelFilter::INFO),
        );
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::AlreadySet(e.to_string()))?;
    Ok(Guard(Some(provider), meters))
}

/// Cairn's own spans and events at info or above: the libraries under it
/// (the S3 SDK, hyper) would otherwise add a span per HTTP call to every
/// trace.
fn ours(m: &tracing::Metadata<'_>) -> bool {
    m.target().starts_with("cairn") && *m.level() <= tracing::Level::INFO
}
