//! The audit ledger service: the one writer of the log. Every event of every
//! stage is appended exactly once to PostgreSQL with its RFC 6962 leaf hash,
//! the Merkle tree over the entries and a running chain hash, and the
//! projections (backups, object digests, chunk copies) are updated in the
//! same transaction. What every part reads (connection, migrations, roles,
//! queries, proofs, `audit verify`) is `cairn_ledger`'s.
//!
//! * [`append`]: the batch consumer that writes the log and re-publishes it.
//! * [`projection`]: what each event changes in the projections.
//! * [`checkpoint`]: signing checkpoints, never two inconsistent ones.
//! * [`rebuild`]: the log rebuilt from its copy on JetStream.
//! * [`export`]: the log as C2SP tlog-tiles files.

pub mod append;
pub mod checkpoint;
pub mod export;
pub mod projection;
pub mod rebuild;

use cairn_bus::{Bus, BusError};
use cairn_events::Stage;
use std::sync::Arc;

/// Runs the ledger worker until the process stops, appending up to `batch`
/// events per transaction.
pub async fn run(bus: Bus, client: tokio_postgres::Client, batch: usize) -> Result<(), BusError> {
    // Entries the AUDIT stream lacks (a log from before re-publishing) go
    // out first; a failure here must not stop the ledger.
    match rebuild::republish_missing(&bus, &client).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            entries = n,
            "re-published ledger entries missing from audit.entry"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot re-publish entries missing from audit.entry now")
        }
    }
    let ledger = Arc::new(append::Ledger::new(client, Some(bus.clone())));
    let watched = ledger.clone();
    tokio::select! {
        r = cairn_bus::worker::run_batched(bus, Stage::Ledger, batch.max(1), ledger) => r,
        () = watched.closed() => Err(BusError::Stopped(
            "the ledger's PostgreSQL connection is gone; stopping, to be started again with a new one".into(),
        )),
    }
}
