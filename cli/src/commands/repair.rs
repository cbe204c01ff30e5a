//! `cairn repair`: copies missing or corrupt objects back onto networks
//! from intact copies (`cairn_verify::care::repair_backup`), or puts a new
//! network in the place of one lost or retired (`--replace OLD=NEW`,
//! `cairn_verify::care::replace_network`).

use crate::context::{self, whoami};
use crate::{exit, out, output};
use anyhow::{anyhow, bail};
use cairn_config::Config;
use cairn_events::BackupId;
use cairn_verify::care::{self, Repaired, Replace};

#[derive(clap::Args)]
pub struct RepairArgs {
    backup_id: Option<BackupId>,
    /// Every completed or degraded backup (with --replace: every one on
    /// OLD).
    #[arg(long, conflicts_with = "backup_id")]
    all: bool,
    /// OLD=NEW: network NEW takes OLD's place among the backup's networks
    /// (of an erasure-coded backup, NEW gets the shards OLD held, rebuilt
    /// from the others). NEW must be configured; OLD need not be any more.
    /// Nothing is deleted from OLD.
    #[arg(long, value_name = "OLD=NEW", value_parser = parse_replace)]
    replace: Option<Replace>,
    #[arg(long)]
    json: bool,
}

fn parse_replace(s: &str) -> Result<Replace, String> {
    let (from, to) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: give OLD=NEW, two network names"))?;
    let (from, to) = (from.trim(), to.trim());
    if from.is_empty() || to.is_empty() {
        return Err(format!("{s:?}: give OLD=NEW, two network names"));
    }
    if from == to {
        return Err(format!("{s:?}: a network cannot replace itself"));
    }
    Ok(Replace {
        from: from.to_string(),
        to: to.to_string(),
    })
}

#[derive(serde::Serialize)]
struct Report {
    repaired: Vec<Repaired>,
    ok: bool,
}

pub async fn repair(cfg: &Config, a: RepairArgs) -> anyhow::Result<u8> {
    if let Some(r) = &a.replace {
        if !cfg.networks.iter().any(|n| n.name == r.to) {
            bail!(
                "--replace {}={}: network {:?} is not configured (configured: {})",
                r.from,
                r.to,
                r.to,
                cfg.networks
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let pg = context::ledger(cfg).await?;
    let ids: Vec<BackupId> = match (a.backup_id, a.all) {
        (Some(id), false) => vec![id],
        (None, true) => cairn_ledger::query::list_backups(&pg, None, None)
            .await?
            .into_iter()
            .filter(|r| matches!(r.status.as_str(), "completed" | "degraded"))
            .filter(|r| {
                a.replace
                    .as_ref()
                    .is_none_or(|x| r.networks.contains(&x.from))
            })
            .filter_map(|r| BackupId::parse(&r.backup_id).ok())
            .collect(),
        _ => bail!("give a BACKUP_ID or --all"),
    };
    let bus = context::bus(cfg, "cairn-repair").await?;
    let repo = context::repo(cfg)?;
    let by = whoami("repair");
    let quotas = cfg.quotas();
    let shreddable = |d: &str| cfg.shreddable(d);
    let mut repaired = Vec::new();
    for id in ids {
        let r = match &a.replace {
            None => care::repair_backup(&repo, &pg, &bus, &id, &by, &quotas).await?,
            Some(x) => care::replace_network(&repo, &pg, &bus, &id, &by, &quotas, x, &shreddable)
                .await
                .map_err(|e| anyhow!(e))?,
        };
        if !a.json {
            let moved = match &r.replaced {
                Some(x) if r.ok => format!("; moved from {} to {}", x.from, x.to),
                _ => String::new(),
            };
            if r.ok {
                out!(
                    "backup {id}: {} objects copied; every network holds it intact{moved}",
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
