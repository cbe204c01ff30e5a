//! `cairn audit evidence`: one backup's entries with inclusion proofs and
//! what they establish, as a bundle an auditor checks offline.

use crate::{context, out, output};
use anyhow::Context;
use cairn_config::Config;
use cairn_events::BackupId;
use cairn_ledger::evidence::Summary;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    backup_id: BackupId,
    /// Write the bundle (JSON) to FILE.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the bundle (JSON) instead of the summary.
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: &Config, a: Args) -> anyhow::Result<u8> {
    let id = a.backup_id;
    let pg = context::ledger(cfg).await?;
    let cosigned = super::cosigned_if_up(cfg).await;
    let ev = cairn_ledger::evidence::build(&pg, id.as_str(), &cosigned).await?;
    let bundle = serde_json::to_string_pretty(&ev)?;
    if let Some(out) = &a.out {
        std::fs::write(out, &bundle).with_context(|| out.display().to_string())?;
    }
    if a.json {
        out!("{bundle}");
        return Ok(0);
    }
    print_summary(&ev.backup_id, &ev.summary)?;
    let size = cairn_tlog::checkpoint::unverified(ev.checkpoint.as_bytes())
        .ok()
        .map(|(s, _)| s);
    out!(
        "{} ledger entries, each with an inclusion proof against the checkpoint of size {}{}",
        ev.entries.len(),
        size.map_or("?".into(), |s| s.to_string()),
        if cosigned.contains_key(&size.unwrap_or(0)) {
            " (cosigned)"
        } else {
            ""
        }
    );
    match &a.out {
        Some(out) => out!(
            "bundle: {} (check it with `cairn audit check-proof {} --key LOG.pub`)",
            out.display(),
            out.display()
        ),
        None => out!("write the bundle with --out FILE"),
    }
    Ok(0)
}

/// What a bundle establishes, in lines (also after `check-proof`).
pub(super) fn print_summary(backup_id: &str, s: &Summary) -> std::io::Result<()> {
    output::line(format_args!(
        "backup {backup_id} ({}), dataset {:?}, requested by {} at {}",
        if s.status.is_empty() {
            "in progress"
        } else {
            &s.status
        },
        s.dataset,
        s.requested_by,
        s.requested_at
    ))?;
    if let Some(m) = &s.manifest {
        output::line(format_args!(
            "manifest {}: sha256 {} ({} bytes)",
            m.path, m.sha256, m.len
        ))?;
    }
    output::line(format_args!(
        "Merkle root {} (chunks), {} (sealed)",
        s.merkle_root, s.sealed_root
    ))?;
    for (net, n) in &s.networks {
        let verified = match n.verified {
            Some(true) => "verified",
            Some(false) => "NOT verified",
            None => "not yet verified",
        };
        output::line(format_args!(
            "network {net}: {} objects stored, {verified}; {}",
            n.objects_stored,
            n.locators.join(", ")
        ))?;
    }
    Ok(())
}
