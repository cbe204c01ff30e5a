//! `cairn audit verify`: the whole log recomputed and held against every
//! copy of it outside the database.

use crate::{context, err, out, output};
use anyhow::bail;
use cairn_config::Config;
use cairn_ledger::check::LedgerReport;

#[derive(clap::Args)]
pub struct Args {
    /// The log's public key, or a file holding it (default: `[audit]
    /// public_key_file`, or the signing key's .pub).
    #[arg(long)]
    key: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Verified<'a> {
    ok: bool,
    report: &'a LedgerReport,
}

pub async fn run(cfg: &Config, a: Args) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let key = super::log_public_key(cfg, a.key.as_deref())?;
    let bus = context::bus_if_up(cfg, "cairn-audit").await;
    let repo = context::repo(cfg)?;
    let state = cfg
        .audit
        .signing_key_file
        .as_deref()
        .map(cairn_ledger::checkpoint::state_file);
    let log = cairn_ledger::query::log_id(&pg).await?;
    let witnesses = cairn_ledger::check::gather(
        key,
        log.as_deref(),
        bus.as_ref().map_err(Clone::clone),
        Some(&repo),
        state.as_deref(),
    )
    .await;
    let report = cairn_ledger::check::verify(&pg, witnesses).await?;
    let ok = report.problems.is_empty();
    if a.json {
        output::json(&Verified {
            ok,
            report: &report,
        })?;
    } else {
        for n in &report.notes {
            err!("warning: {n}");
        }
        if ok {
            let held = report.checkpoints.iter().map(|c| c.size).max();
            out!(
                "ledger intact: {} entries, chain {}, Merkle root {}",
                report.entries,
                report.chain_hash,
                report.merkle_root
            );
            out!(
                "held against {} signed checkpoints (newest at {}) and {} entries published on audit.entry",
                report.checkpoints.len(),
                held.map_or("-".to_string(), |s| s.to_string()),
                report.published_entries_compared
            );
        } else {
            for p in &report.problems {
                err!("{p}");
            }
        }
    }
    match report.problems.first() {
        None => Ok(0),
        Some(first) => bail!("ledger tampered: {first}"),
    }
}
