//! Cairn's metrics, defined in one place: OpenTelemetry instruments every
//! stage records into, read by a Prometheus scrape endpoint per process
//! (`telemetry.prometheus_listen`, off unless set) and, when
//! `telemetry.otlp_endpoint` is set, pushed over OTLP too.
//!
//! Two kinds: what a process counts as it works ([`get`]: bytes and chunks
//! per stage, messages handled, redelivered and dead-lettered, each
//! network's calls, latency, errors and bytes), and what is read from
//! elsewhere ([`Gauge`]: the broker's consumer lag, the ledger's per-network
//! storage and cost, last backup and drill per dataset, ledger size and
//! checkpoint age), which whoever reads it sets with [`set_gauge`].
//!
//! With no meter provider installed (a library test, a metrics-less
//! process) every instrument is a no-op.

use opentelemetry::metrics::{Counter, Histogram, ObservableGauge};
use opentelemetry::KeyValue;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// What every process counts.
pub struct Metrics {
    stage_bytes: Counter<u64>,
    stage_chunks: Counter<u64>,
    chunks_reused: Counter<u64>,
    handled: Counter<u64>,
    redelivered: Counter<u64>,
    dead_lettered: Counter<u64>,
    network_duration: Histogram<f64>,
    network_errors: Counter<u64>,
    network_bytes: Counter<u64>,
    _gauges: Vec<ObservableGauge<f64>>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The instruments, made from the global meter provider on first use
/// (after [`crate::init`] installed it).
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(|| {
        let m = opentelemetry::global::meter("cairn");
        let counter = |name: &'static str, unit: &'static str, about: &'static str| {
            m.u64_counter(name)
                .with_unit(unit)
                .with_description(about)
                .build()
        };
        Metrics {
            stage_bytes: counter(
                "cairn.stage.data",
                "By",
                "bytes each stage handled: new chunks' plaintext by ingest, sealed by encrypt, written by store to each network (work done: a message handled again counts again)",
            ),
            stage_chunks: counter(
                "cairn.stage.chunks",
                "{chunk}",
                "chunks each stage handled",
            ),
            chunks_reused: counter(
                "cairn.ingest.chunks.reused",
                "{chunk}",
                "chunks ingest found already stored (deduplicated)",
            ),
            handled: counter(
                "cairn.messages.handled",
                "{message}",
                "messages a stage settled, by outcome (ok, retry, dead_letter)",
            ),
            redelivered: counter(
                "cairn.messages.redelivered",
                "{message}",
                "messages a stage received more than once",
            ),
            dead_lettered: counter(
                "cairn.messages.dead_lettered",
                "{message}",
                "messages a stage dead-lettered",
            ),
            network_duration: m
                .f64_histogram("cairn.network.request.duration")
                .with_unit("s")
                .with_description("time each call to a network took")
                .with_boundaries(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ])
                .build(),
            network_errors: counter(
                "cairn.network.errors",
                "{call}",
                "calls to a network that failed",
            ),
            network_bytes: counter(
                "cairn.network.io",
                "By",
                "bytes sent to (write) and received from (read) each network",
            ),
            _gauges: Gauge::ALL
                .iter()
                .map(|&g| {
                    m.f64_observable_gauge(g.name())
                        .with_unit(g.unit())
                        .with_description(g.about())
                        .with_callback(move |observer| {
                            let table = GAUGES.lock().unwrap_or_else(|e| e.into_inner());
                            let rows = table.as_ref().and_then(|t| t.get(&g));
                            for (labels, value) in rows.into_iter().flatten() {
                                observer.observe(*value, labels);
                            }
                        })
                        .build()
                })
                .collect(),
        }
    })
}

impl Metrics {
    /// `stage` handled one chunk of `bytes`.
    pub fn chunk(&self, stage: &str, bytes: u64) {
        let at = [KeyValue::new("stage", stage.to_string())];
        self.stage_bytes.add(bytes, &at);
        self.stage_chunks.add(1, &at);
    }

    /// Ingest found `n` chunks already stored.
    pub fn reused(&self, n: u64) {
        self.chunks_reused.add(n, &[]);
    }

    /// `stage` settled a message (delivered `deliveries` times) with
    /// `outcome`: `ok`, `retry` or `dead_letter`.
    pub fn settled(&self, stage: &str, deliveries: i64, outcome: &'static str) {
        let s = KeyValue::new("stage", stage.to_string());
        self.handled
            .add(1, &[s.clone(), KeyValue::new("outcome", outcome)]);
        if deliveries > 1 {
            self.redelivered.add(1, std::slice::from_ref(&s));
        }
        if outcome == "dead_letter" {
            self.dead_lettered.add(1, &[s]);
        }
    }

    /// One call `op` to `network`, how long it took and whether it failed.
    pub fn network_call(&self, network: &str, op: &'static str, took: Duration, ok: bool) {
        let at = [
            KeyValue::new("network", network.to_string()),
            KeyValue::new("op", op),
        ];
        self.network_duration.record(took.as_secs_f64(), &at);
        if !ok {
            self.network_errors.add(1, &at);
        }
    }

    /// Bytes moved to (`write`) or from (`read`) `network`.
    pub fn network_bytes(&self, network: &str, direction: &'static str, bytes: u64) {
        self.network_bytes.add(
            bytes,
            &[
                KeyValue::new("network", network.to_string()),
                KeyValue::new("direction", direction),
            ],
        );
    }
}

/// A value read from elsewhere, observed as last set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gauge {
    /// Messages a durable consumer has yet to receive (its lag), by stream
    /// and consumer.
    ConsumerPending,
    /// Messages delivered to a consumer and not yet acknowledged.
    ConsumerAckPending,
    /// Messages held by each stream.
    StreamMessages,
    /// Bytes the ledger counts on each network.
    NetworkStored,
    /// What a month of storage on each network costs at its price.
    NetworkCostMonth,
    /// Unix time of each dataset's last completed backup.
    LastBackup,
    /// Unix time of each dataset's last passed restore drill.
    LastDrill,
    /// Bytes read per byte newly stored, in each dataset's last backup.
    DedupRatio,
    /// Entries in the audit ledger.
    LedgerEntries,
    /// Seconds since the ledger's newest signed checkpoint.
    CheckpointAge,
}

impl Gauge {
    pub const ALL: [Gauge; 10] = [
        Gauge::ConsumerPending,
        Gauge::ConsumerAckPending,
        Gauge::StreamMessages,
        Gauge::NetworkStored,
        Gauge::NetworkCostMonth,
        Gauge::LastBackup,
        Gauge::LastDrill,
        Gauge::DedupRatio,
        Gauge::LedgerEntries,
        Gauge::CheckpointAge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Gauge::ConsumerPending => "cairn.consumer.pending",
            Gauge::ConsumerAckPending => "cairn.consumer.ack_pending",
            Gauge::StreamMessages => "cairn.stream.messages",
            Gauge::NetworkStored => "cairn.network.stored",
            Gauge::NetworkCostMonth => "cairn.network.cost.month",
            Gauge::LastBackup => "cairn.dataset.last_backup",
            Gauge::LastDrill => "cairn.dataset.last_drill",
            Gauge::DedupRatio => "cairn.dataset.dedup",
            Gauge::LedgerEntries => "cairn.ledger.entries",
            Gauge::CheckpointAge => "cairn.ledger.checkpoint.age",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Gauge::ConsumerPending | Gauge::ConsumerAckPending | Gauge::StreamMessages => {
                "{message}"
            }
            Gauge::NetworkStored => "By",
            Gauge::NetworkCostMonth => "{currency}",
            Gauge::LastBackup | Gauge::LastDrill | Gauge::CheckpointAge => "s",
            Gauge::DedupRatio => "1",
            Gauge::LedgerEntries => "{entry}",
        }
    }

    fn about(self) -> &'static str {
        match self {
            Gauge::ConsumerPending => {
                "messages a stage's durable consumer has yet to receive (lag)"
            }
            Gauge::ConsumerAckPending => "messages delivered to a consumer, not yet acknowledged",
            Gauge::StreamMessages => "messages each stream holds",
            Gauge::NetworkStored => "bytes the ledger counts on each network",
            Gauge::NetworkCostMonth => "a month of storage on each network at its configured price",
            Gauge::LastBackup => "Unix time of each dataset's last completed backup",
            Gauge::LastDrill => "Unix time of each dataset's last passed restore drill",
            Gauge::DedupRatio => "bytes read per byte newly stored in each dataset's last backup",
            Gauge::LedgerEntries => "entries in the audit ledger",
            Gauge::CheckpointAge => "seconds since the ledger's newest signed checkpoint",
        }
    }
}

type Rows = Vec<(Vec<KeyValue>, f64)>;

static GAUGES: Mutex<Option<HashMap<Gauge, Rows>>> = Mutex::new(None);

/// Replaces every value of `gauge` (one per set of labels): a dataset or
/// network no longer there stops being reported.
pub fn set_gauge(gauge: Gauge, rows: Vec<(Vec<(&'static str, String)>, f64)>) {
    let rows = rows
        .into_iter()
        .map(|(labels, v)| {
            (
                labels
                    .into_iter()
                    .map(|(k, val)| KeyValue::new(k, val))
                    .collect(),
                v,
            )
        })
        .collect();
    GAUGES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(gauge, rows);
}

static REGISTRY: OnceLock<prometheus::Registry> = OnceLock::new();

/// The meter provider [`crate::init`] installs: read by the Prometheus
/// endpoint when `prometheus` is set, pushed over OTLP to `otlp` when set;
/// none when neither is.
pub(crate) fn provider(
    prometheus: bool,
    otlp: Option<&str>,
    resource: opentelemetry_sdk::Resource,
) -> Result<Option<opentelemetry_sdk::metrics::SdkMeterProvider>, String> {
    if !prometheus && otlp.is_none() {
        return Ok(None);
    }
    let mut builder =
        opentelemetry_sdk::metrics::SdkMeterProvider::builder().with_resource(resource);
    if prometheus {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_scope_info()
            .build()
            .map_err(|e| e.to_string())?;
        let _ = REGISTRY.set(registry);
        builder = builder.with_reader(exporter);
    }
    if let Some(endpoint) = otlp {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_endpoint(format!("{}/v1/metrics", endpoint.trim_end_matches('/')))
            .build()
            .map_err(|e| e.to_string())?;
        builder = builder.with_reader(
            opentelemetry_sdk::metrics::PeriodicReader::builder(exporter)
                .with_interval(Duration::from_secs(15))
                .build(),
        );
    }
    let provider = builder.build();
    opentelemetry::global::set_meter_provider(provider.clone());
    // The instruments, gauges included, exist from the start: a process
    // that has handled nothing yet still reports what it reads.
    let _ = get();
    Ok(Some(provider))
}

/// Why the scrape endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("telemetry.prometheus_listen {addr}: {message}")]
    Listen { addr: String, message: String },
    #[error("telemetry.prometheus_listen is set but metrics were not set up (call cairn_telemetry::init first)")]
    NotInitialised,
}

/// Binds `addr` for Prometheus scrapes; the future it returns serves
/// `GET /metrics` in Prometheus's text format until the process stops.
pub async fn bind(
    addr: &str,
) -> Result<impl std::future::Future<Output = Result<(), ServeError>>, ServeError> {
    let registry = REGISTRY.get().ok_or(ServeError::NotInitialised)?.clone();
    let addr = addr.to_string();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| ServeError::Listen {
            addr: addr.clone(),
            message: e.to_string(),
        })?;
    let listen = move |message: String| ServeError::Listen {
        addr: addr.clone(),
        message,
    };
    let at = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(addr = at, "Prometheus metrics at /metrics");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                use prometheus::Encoder as _;
                // Gauges from elsewhere are observed at collection.
                let _ = get();
                let mut body = Vec::new();
                let encoder = prometheus::TextEncoder::new();
                match encoder.encode(&registry.gather(), &mut body) {
                    Ok(()) => (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            encoder.format_type().to_string(),
                        )],
                        body,
                    )
                        .into_response(),
                    Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                        .into_response(),
                }
            }
        }),
    );
    Ok(async move {
        axum::serve(listener, app)
            .await
            .map_err(|e| listen(e.to_string()))
    })
}

use axum::response::IntoResponse as _;
