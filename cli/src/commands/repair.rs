//! `cairn repair`: copies missing or corrupt objects back onto networks
//! from intact copies (`cairn_verify::care::repair_backup`).

use crate::context::{self, whoami};
use crate::{exit, out, output};
use anyhow::bail;
use cairn_config::Config;
use cairn_events::BackupId;
use cairn_verify::care::{self, Repaired};

#[derive(clap::Args)]
pub struct RepairArgs {
    backup_id: Option<BackupId>,
    /// Every completed or degraded backup.
    #[arg(long, conflicts_with = "backup_id")]
    all: bool,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    repaired: Vec<Repaired>,
    ok: bool,
}

pub async fn repair(cfg: &Config, a: RepairArgs) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let ids: Vec<BackupId> = match (a.backup_id, a.all) {
        (Some(id), false) => vec![id],
        (None, true) => cairn_ledger::query::list_backups(&pg, None, None)
            .await?
            .into_iter()
            .filter(|r| matches!(r.status.as_str(), "completed" | "degraded"))
            .filter_map(|r| BackupId::parse(&r.backup_id).ok())
            .collect(),
        _ => bail!("give a BACKUP_ID or --all"),
    };
    let bus = context::bus(cfg, "cairn-repair").await?;
    let repo = context::repo(cfg)?;
    let mut repaired = Vec::new();
    for id in ids {
        let r =
            care::repair_backup(&repo, &pg, &bus, &id, &whoami("repair"), &cfg.quotas()).await?;
        if !a.json {
            if r.ok {
                out!(
                    "backup {id}: {} objects copied; every network holds it intact",
                    r.objects_copied
                );
            } else {
                out!(
                    "backup {id}: {} objects copied; still incomplete: {}",
                    r.objects_copied,
                    r.problems.join("; ")
                );
            }
        }
        repaired.push(r);
    }
    let ok = repaired.iter().all(|r| r.ok);
    if a.json {
        output::json(&Report { repaired, ok })?;
    }
    Ok(if ok { 0 } else { exit::DEGRADED })
}
