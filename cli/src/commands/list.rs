//! `cairn list` and `cairn show`: backups as the ledger records them.

use crate::{context, out, output};
use anyhow::bail;
use cairn_config::Config;
use cairn_events::BackupId;

#[derive(clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    dataset: Option<String>,
    #[arg(long)]
    tag: Option<String>,
    /// Also list the archived WAL files (`cairn wal-push`), one backup each.
    #[arg(long)]
    wal: bool,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Listed {
    backups: Vec<cairn_ledger::query::BackupRow>,
}

pub async fn list(cfg: &Config, a: ListArgs) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let mut backups =
        cairn_ledger::query::list_backups(&pg, a.dataset.as_deref(), a.tag.as_deref()).await?;
    let all = backups.len();
    if !a.wal {
        backups.retain(|r| !matches!(r.source, Some(cairn_events::Source::Wal { .. })));
    }
    let wal_hidden = all - backups.len();
    if a.json {
        output::json(&Listed { backups })?;
        return Ok(0);
    }
    out!(
        "{:<36}  {:<16} {:<10} {:<20} {:>10} {:>10}  TAGS",
        "ID",
        "DATASET",
        "STATUS",
        "REQUESTED",
        "READ",
        "STORED"
    );
    for r in backups {
        let stat = |f: fn(&cairn_events::Stats) -> u64| {
            r.stats
                .as_ref()
                .map(|s| output::bytes(f(s)))
                .unwrap_or_default()
        };
        out!(
            "{:<36}  {:<16} {:<10} {:<20} {:>10} {:>10}  {}",
            r.backup_id,
            r.dataset,
            r.status,
            r.requested_at.clone().unwrap_or_default(),
            stat(|s| s.bytes_read),
            stat(|s| s.bytes_stored),
            match &r.source {
                // Which WAL file, beside its tags.
                Some(cairn_events::Source::Wal { name, .. }) =>
                    format!("{} {name}", r.tags.join(",")),
                _ => r.tags.join(","),
            }
        );
    }
    if wal_hidden > 0 {
        out!("(and {wal_hidden} archived WAL files: --wal lists them)");
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct ShowArgs {
    backup_id: BackupId,
    #[arg(long)]
    json: bool,
}

pub async fn show(cfg: &Config, a: ShowArgs) -> anyhow::Result<u8> {
    let id = a.backup_id;
    let pg = context::ledger(cfg).await?;
    let Some(row) = cairn_ledger::query::backup(&pg, id.as_str()).await? else {
        bail!("backup {id} not found in the ledger");
    };
    if a.json {
        output::json(&row)?;
    } else {
        out!("{}", serde_json::to_string_pretty(&row)?);
    }
    Ok(0)
}
