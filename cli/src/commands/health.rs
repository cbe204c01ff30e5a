//! `cairn health`: how well each network holds a backup (availability,
//! repository files, sampled or full integrity against the Merkle root,
//! estimated restore time), from `cairn_verify::care::health`.

use crate::{context, exit, out, output};
use cairn_config::Config;
use cairn_events::BackupId;
use cairn_verify::care::{self, Health};

#[derive(clap::Args)]
pub struct HealthArgs {
    backup_id: BackupId,
    /// Read every object instead of a sample.
    #[arg(long)]
    full: bool,
    #[arg(long)]
    json: bool,
}

pub async fn health(cfg: &Config, a: HealthArgs) -> anyhow::Result<u8> {
    let id = a.backup_id;
    let pg = context::ledger(cfg).await?;
    let report = care::health(&context::repo(cfg)?, &pg, &id, a.full).await?;
    if a.json {
        output::json(&report)?;
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
