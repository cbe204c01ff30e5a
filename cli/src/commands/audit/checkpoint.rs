//! `cairn audit checkpoint`: sign the ledger's size and root now, and send
//! the checkpoint out (AUDIT stream, every network).

use crate::{context, err, output};
use anyhow::Context;
use cairn_audit_ledger::checkpoint::{issue, send_out, Signed};
use cairn_config::Config;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: &Config, a: Args) -> anyhow::Result<u8> {
    let key_file =
        cfg.audit.signing_key_file.as_deref().context(
            "no signing key: set [audit] signing_key_file (`cairn audit keygen` makes one)",
        )?;
    let mut pg = context::ledger_as(cfg, cairn_ledger::Role::Ledger).await?;
    let issued = issue(&mut pg, key_file).await?;
    // Copies outside the database: the AUDIT stream and every network.
    let bus = context::bus_if_up(cfg, "cairn-audit")
        .await
        .map_err(|e| tracing::warn!(error = e, "the checkpoint is not published"))
        .ok();
    let copies = send_out(&issued, bus.as_ref(), &context::repo(cfg)?).await;
    let signed = Signed::new(&issued, &copies);
    if a.json {
        output::json(&signed)?;
    } else {
        output::raw(&signed.checkpoint)?;
        err!("published: {}", signed.published);
        for (n, r) in &signed.networks {
            err!("network {n}: {r}");
        }
    }
    Ok(0)
}
