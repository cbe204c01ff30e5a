//! `cairn audit export`: the log as C2SP tlog-tiles files.

use crate::{context, out, output};
use cairn_config::Config;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    dir: PathBuf,
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: &Config, a: Args) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let cosigned = super::cosigned_if_up(cfg).await;
    let done = cairn_audit_ledger::export::export(&pg, &a.dir, &cosigned).await?;
    if a.json {
        output::json(&done)?;
    } else {
        out!(
            "{}: {} entries in {} entry bundles, {} hash tiles, and the checkpoint",
            a.dir.display(),
            done.size,
            done.entry_bundles,
            done.hash_tiles
        );
    }
    Ok(0)
}
