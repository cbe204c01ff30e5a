//! `cairn health`: how well each network holds a backup (availability,
//! repository files, sampled or full integrity against the Merkle root,
//! estimated restore time), from `cairn_verify::care::health`, and how
//! long ago its dataset last came back in a restore drill. Without a
//! backup: the age of every dataset's last successful drill.

use crate::{context, exit, out, output};
use cairn_config::Config;
use cairn_events::BackupId;
use cairn_ledger::query::DrillRow;
use cairn_verify::care::{self, Health};

#[derive(clap::Args)]
pub struct HealthArgs {
    /// The backup (default: only the restore drills of every dataset).
    backup_id: Option<BackupId>,
    /// Read every object instead of a sample.
    #[arg(long)]
    full: bool,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct WithDrill<'a> {
    #[serde(flatten)]
    report: &'a care::HealthReport,
    /// The newest successful drill of the backup's dataset.
    last_successful_drill: Option<DrillRow>,
}

fn drill_line(dataset: &str, d: Option<&DrillRow>) -> String {
    match d {
        Some(d) => format!(
            "last successful restore drill of {dataset:?}: {} ago (backup {}, {} in {} ms)",
            output::age(d.age_secs),
            d.backup_id,
            output::bytes(d.bytes),
            d.duration_ms
        ),
        None => format!("no restore drill of {dataset:?} has succeeded yet (`cairn drill`)"),
    }
}

/// Every dataset's drills: exit DEGRADED when a dataset's latest drill
/// failed or none ever succeeded.
async fn drills_only(pg: &tokio_postgres::Client, json: bool) -> anyhow::Result<u8> {
    let rows = cairn_ledger::query::drills(pg).await?;
    let last = cairn_ledger::query::last_successful_drill(pg, None).await?;
    let bad = rows
        .iter()
        .filter(|r| !r.latest.ok || r.last_success.is_none())
        .count();
    if json {
        output::json(&serde_json::json!({
            "last_successful_drill": last,
            "datasets": rows,
        }))?;
    } else {
        match &last {
            Some(d) => out!(
                "last successful restore drill: {} ago (dataset {:?}, backup {})",
                output::age(d.age_secs),
                d.dataset,
                d.backup_id
            ),
            None => out!(
                "no restore drill has succeeded yet (`cairn drill`, or [retention.drills] cron)"
            ),
        }
        for r in &rows {
            let state = if r.latest.ok { "ok" } else { "latest FAILED" };
            out!(
                "  {:<16} {state:<13} {}",
                r.dataset,
                drill_line(&r.dataset, r.last_success.as_ref())
            );
        }
    }
    Ok(if bad > 0 || last.is_none() {
        exit::DEGRADED
    } else {
        0
    })
}

pub async fn health(cfg: &Config, a: HealthArgs) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let Some(id) = a.backup_id else {
        return drills_only(&pg, a.json).await;
    };
    let report = care::health(&context::repo(cfg)?, &pg, &id, a.full).await?;
    let dataset = cairn_ledger::query::backup(&pg, id.as_str())
        .await?
        .map(|b| b.dataset);
    let drill = match &dataset {
        Some(d) => cairn_ledger::query::last_successful_drill(&pg, Some(d)).await?,
        None => None,
    };
    if a.json {
        output::json(&WithDrill {
            report: &report,
            last_successful_drill: drill,
        })?;
    } else {
        out!("backup {id}: {}", report.status.as_str());
        let secs = |v: Option<f64>| v.map_or("-".to_string(), |v| v.to_string());
        for n in &report.networks {
            out!(
                "  {:<12} {:<11} missing {:>5}  corrupt {:>5}  latency {:>7} ms  est. restore {} s",
                n.network,
                if n.ok {
                    "ok"
                } else if n.reachable {
                    "incomplete"
                } else {
                    "unreachable"
                },
                n.missing,
                n.corrupt,
                n.latency_ms,
                secs(n.est_restore_secs)
            );
        }
        let i = &report.integrity;
        out!(
            "  integrity: {} chunks sampled, {} inclusion proofs verified, sealed root {}",
            i.chunks_sampled,
            i.inclusion_proofs_verified,
            if i.sealed_root_matches_digests {
                "matches"
            } else {
                "DOES NOT MATCH"
            }
        );
        if let Some(d) = &dataset {
            out!("  {}", drill_line(d, drill.as_ref()));
        }
        for r in &report.recommendations {
            out!("  → {r}");
        }
    }
    Ok(match report.status {
        Health::Healthy => 0,
        Health::Degraded => exit::DEGRADED,
        Health::Unhealthy => 1,
    })
}
