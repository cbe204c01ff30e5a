//! The audit ledger: every event of every stage, appended exactly once to a
//! PostgreSQL log with RFC 6962 leaf hashes, the Merkle tree over them and a
//! running chain hash, plus the projections (backups, object digests, chunk
//! copies) the other parts query.
//!
//! * [`db`]: connection and migrations (`schemas/sql`).
//! * [`append`]: the batch consumer that writes the log.
//! * [`tree`]: the log's Merkle tree (stored hashes, roots).
//! * [`projection`]: what each event changes in the projections.
//! * [`query`]: reads for the CLI and the stages.
//! * [`check`]: `cairn audit verify`.
//! * [`checkpoint`]: issuing signed checkpoints, never two inconsistent ones.
//! * [`prove`]: inclusion proofs of entries against them.
//! * [`rebuild`]: the log rebuilt from its copy on JetStream.
//! * [`evidence`]: one backup's entries with proofs, for auditors.
//! * [`export`]: the log as C2SP tlog-tiles files.

pub mod append;
pub mod check;
pub mod checkpoint;
pub mod db;
pub mod evidence;
pub mod export;
pub mod projection;
pub mod prove;
pub mod query;
pub mod rebuild;
pub mod tree;

use cairn_bus::Bus;
use cairn_events::subjects::stage;
use std::sync::Arc;

/// Runs the ledger worker until the process stops.
pub async fn run(bus: Bus, client: tokio_postgres::Client) -> anyhow::Result<()> {
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
    cairn_bus::worker::run_batched(bus, stage::LEDGER, 500, ledger).await?;
    Ok(())
}
