//! `cairn audit rebuild`: an empty ledger database rebuilt from the log's
//! copy on the AUDIT stream.

use crate::{context, out, output};
use anyhow::bail;
use cairn_config::Config;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: &Config, a: Args) -> anyhow::Result<u8> {
    let pg = context::ledger_as(cfg, cairn_ledger::Role::Ledger).await?;
    let bus = context::bus(cfg, "cairn-audit").await?;
    let rebuilt = cairn_audit_ledger::rebuild::rebuild(&bus, pg).await?;
    if a.json {
        output::json(&rebuilt)?;
    } else {
        out!(
            "rebuilt {} entries, Merkle root {}; signed checkpoints matching: {}",
            rebuilt.entries,
            rebuilt.root,
            rebuilt.checkpoints_matching.len()
        );
    }
    if let Some(size) = rebuilt.checkpoints_not_matching.first() {
        bail!(
            "the rebuilt log does not have the root signed at size {size}: the copy on audit.entry is incomplete or not this log's"
        );
    }
    Ok(0)
}
