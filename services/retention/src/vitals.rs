//! What monitoring reads rather than counts, read every few seconds by the
//! process that runs retention and set as Cairn's gauges
//! (`cairn_telemetry::metrics::Gauge`): each consumer's lag and each
//! stream's size from the broker; each network's bytes and their monthly
//! price, each dataset's last backup, last drill and dedup ratio, the
//! ledger's size and its newest checkpoint's age, from the ledger.
//!
//! One process reads them so that one source reports each figure; nothing
//! here writes anywhere.

use cairn_bus::Bus;
use cairn_ledger::{usage, vitals};
use cairn_telemetry::metrics::{set_gauge, Gauge};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum VitalsError {
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Bus(#[from] cairn_bus::BusError),
}

pub struct Watch {
    pub bus: Bus,
    /// A reader's connection.
    pub pg: tokio_postgres::Client,
    /// Every configured network.
    pub networks: Vec<String>,
    /// `price_gb_month` of each network that has one.
    pub price_gb_month: BTreeMap<String, f64>,
}

impl Watch {
    /// Reads everything once and sets the gauges.
    pub async fn once(&self) -> Result<(), VitalsError> {
        let backlog = self.bus.backlog(&self.networks).await?;
        set_gauge(
            Gauge::ConsumerPending,
            backlog
                .consumers
                .iter()
                .map(|c| (labels_of(c), c.pending as f64))
                .collect(),
        );
        set_gauge(
            Gauge::ConsumerAckPending,
            backlog
                .consumers
                .iter()
                .map(|c| (labels_of(c), c.ack_pending as f64))
                .collect(),
        );
        set_gauge(
            Gauge::StreamMessages,
            backlog
                .streams
                .iter()
                .map(|(s, n)| (vec![("stream", s.clone())], *n as f64))
                .collect(),
        );
        let held: BTreeMap<String, u64> = usage::held(&self.pg, None)
            .await?
            .into_iter()
            .map(|h| (h.network, h.bytes))
            .collect();
        let bytes = |n: &str| held.get(n).copied().unwrap_or(0) as f64;
        set_gauge(
            Gauge::NetworkStored,
            self.networks
                .iter()
                .map(|n| (vec![("network", n.clone())], bytes(n)))
                .collect(),
        );
        set_gauge(
            Gauge::NetworkCostMonth,
            self.price_gb_month
                .iter()
                .map(|(n, price)| (vec![("network", n.clone())], bytes(n) / 1e9 * price))
                .collect(),
        );
        let v = vitals::read(&self.pg).await?;
        let per = |f: fn(&vitals::DatasetVitals) -> Option<f64>| {
            v.datasets
                .iter()
                .filter_map(|d| f(d).map(|x| (vec![("dataset", d.dataset.clone())], x)))
                .collect()
        };
        set_gauge(Gauge::LastBackup, per(|d| d.last_backup));
        set_gauge(Gauge::LastDrill, per(|d| d.last_drill));
        set_gauge(Gauge::DedupRatio, per(|d| d.dedup_ratio));
        set_gauge(Gauge::LedgerEntries, vec![(vec![], v.entries as f64)]);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        set_gauge(
            Gauge::CheckpointAge,
            v.checkpoint_at
                .map(|at| vec![(vec![], (now - at).max(0.0))])
                .unwrap_or_default(),
        );
        Ok(())
    }
}

fn labels_of(c: &cairn_bus::ConsumerBacklog) -> Vec<(&'static str, String)> {
    vec![
        ("stream", c.stream.clone()),
        ("consumer", c.consumer.clone()),
    ]
}

/// Reads every `every` until the process stops; a failed read is logged
/// and the gauges keep their last values until the next.
pub async fn run(w: Watch, every: Duration) -> Result<(), VitalsError> {
    loop {
        if let Err(e) = w.once().await {
            tracing::warn!(error = %e, "monitoring figures not read; trying again");
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = cairn_ledger::db::closed(&w.pg) => {
                return Err(cairn_bus::BusError::Stopped(cairn_ledger::db::gone("the monitoring watch")).into());
            }
        }
    }
}
