//! `cairn audit prove` and `cairn audit consistency`: proof files from the
//! stored tree, for `check-proof` anywhere.

use crate::{context, out};
use anyhow::{bail, Context};
use cairn_config::Config;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ProveArgs {
    seq: u64,
    #[arg(long)]
    out: PathBuf,
}

pub async fn prove(cfg: &Config, a: ProveArgs) -> anyhow::Result<u8> {
    let seq = a.seq;
    if seq == 0 {
        bail!("entries are numbered from 1");
    }
    let pg = context::ledger(cfg).await?;
    let cosigned = super::cosigned_if_up(cfg).await;
    let p = cairn_ledger::prove::inclusion(&pg, seq, &cosigned).await?;
    std::fs::create_dir_all(&a.out).with_context(|| a.out.display().to_string())?;
    let entry = a.out.join(format!("entry-{seq}.bin"));
    let proof = a.out.join(format!("entry-{seq}.tlog-proof"));
    std::fs::write(&entry, &p.entry).with_context(|| entry.display().to_string())?;
    std::fs::write(&proof, &p.file).with_context(|| proof.display().to_string())?;
    out!(
        "entry {seq}: {} and {} (against the checkpoint of size {})",
        entry.display(),
        proof.display(),
        p.checkpoint_size
    );
    Ok(0)
}

#[derive(clap::Args)]
pub struct ConsistencyArgs {
    old: u64,
    new: u64,
    #[arg(long)]
    out: PathBuf,
}

pub async fn consistency(cfg: &Config, a: ConsistencyArgs) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let file = cairn_ledger::prove::consistency(&pg, a.old, a.new).await?;
    std::fs::write(&a.out, file).with_context(|| a.out.display().to_string())?;
    out!(
        "consistency of sizes {} and {}: {}",
        a.old,
        a.new,
        a.out.display()
    );
    Ok(0)
}
