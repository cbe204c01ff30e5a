//! `cairn hold`, `cairn release` and `cairn holds`: legal holds, recorded
//! in the ledger with who and why. A held backup is never deleted; where a
//! network locks objects (S3 Object Lock), every object of it carries the
//! storage's legal hold too (`backup.locked`).

use crate::{context, err, exit, out, output};
use cairn_config::Config;
use cairn_events::{BackupId, Envelope, Event, LockReport, Locked};
use cairn_retention::hold::{self, HoldOutcome};
use std::time::Duration;

#[derive(clap::Args)]
pub struct HoldArgs {
    backup_id: BackupId,
    /// Why (case number, request): recorded in the ledger.
    #[arg(long)]
    reason: String,
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the ledger to record it.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

#[derive(clap::Args)]
pub struct HoldsArgs {
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    backup_id: &'a BackupId,
    action: &'static str,
    #[serde(flatten)]
    outcome: &'a HoldOutcome,
    /// The legal hold on the objects, per network that locks objects.
    locked: &'a [LockReport],
}

pub async fn hold(cfg: &Config, a: HoldArgs) -> anyhow::Result<u8> {
    change(cfg, a, "held").await
}

pub async fn release(cfg: &Config, a: HoldArgs) -> anyhow::Result<u8> {
    change(cfg, a, "released").await
}

/// A hold placed or lifted: what the ledger says, the storage's legal
/// hold per network that locks objects, and whether placing or lifting
/// that failed.
pub(crate) struct Changed {
    pub outcome: HoldOutcome,
    pub locked: Vec<LockReport>,
    pub unlocked: bool,
}

impl Changed {
    /// In force in Cairn but not on every object the storage locks.
    pub fn partial(&self) -> bool {
        self.unlocked || self.locked.iter().any(|r| r.failed > 0)
    }
}

/// Places (`on`) or lifts the hold on `id` for `by`, and then the storage's
/// legal hold where networks lock objects (`cairn hold`, `cairn release`,
/// the console).
pub(crate) async fn place(
    cfg: &Config,
    pg: &tokio_postgres::Client,
    id: &BackupId,
    on: bool,
    by: String,
    reason: &str,
    wait: Duration,
) -> anyhow::Result<Changed> {
    let bus = context::bus(cfg, "cairn-cli").await?;
    let outcome = if on {
        hold::hold(pg, &bus, id, by.clone(), reason, wait).await?
    } else {
        hold::release(pg, &bus, id, by.clone(), reason, wait).await?
    };
    // Where networks lock objects, the storage holds them too (or lets
    // them go), once Cairn's own hold is in force.
    let mut unlocked = false;
    let locked = match outcome {
        HoldOutcome::Recorded { .. } => {
            let repo = context::repo(cfg)?;
            let reports = if repo.networks().iter().any(|n| n.locks()) {
                match cairn_verify::care::lock::legal_hold(&repo, pg, id, on).await {
                    Ok(r) => r,
                    Err(e) => {
                        err!(
                            "cairn: the legal hold on the stored objects could not be {}: {e}",
                            if on { "placed" } else { "lifted" }
                        );
                        unlocked = true;
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            if !reports.is_empty() {
                let event = Event::BackupLocked(Locked {
                    legal_hold: on,
                    networks: reports.clone(),
                    by,
                });
                let at = cairn_events::now_rfc3339();
                let env =
                    Envelope::new(context::whoami("cli"), id.clone(), event, &[at.as_bytes()]);
                bus.publish_event(&env).await?;
            }
            reports
        }
        HoldOutcome::NotYetRecorded => Vec::new(),
    };
    Ok(Changed {
        outcome,
        locked,
        unlocked,
    })
}

async fn change(cfg: &Config, a: HoldArgs, action: &'static str) -> anyhow::Result<u8> {
    let id = &a.backup_id;
    let on = action == "held";
    let Changed {
        outcome,
        locked,
        unlocked,
    } = place(
        cfg,
        &context::ledger(cfg).await?,
        id,
        on,
        context::user(),
        &a.reason,
        Duration::from_secs(a.timeout),
    )
    .await?;
    if a.json {
        output::json(&Report {
            backup_id: id,
            action,
            outcome: &outcome,
            locked: &locked,
        })?;
    }
    match outcome {
        HoldOutcome::Recorded { .. } => {
            if !a.json {
                out!("backup {id} {action}: {}", a.reason.trim());
                for r in &locked {
                    out!(
                        "  {}: legal hold {} on {} objects{}",
                        r.network,
                        if on { "placed" } else { "lifted" },
                        r.objects,
                        if r.failed > 0 {
                            format!("; {} failed: {}", r.failed, r.detail)
                        } else {
                            String::new()
                        }
                    );
                }
            }
            if unlocked || locked.iter().any(|r| r.failed > 0) {
                err!("cairn: the hold is in force in Cairn, but not on every object where the storage locks them; run the command again once the network answers");
                return Ok(exit::DEGRADED);
            }
            Ok(0)
        }
        HoldOutcome::NotYetRecorded => {
            err!("cairn: the ledger has not recorded it within {} s, so it is not in force yet. Start the ledger writer with `cairn serve ledger`; `cairn holds` shows it once recorded.", a.timeout);
            Ok(exit::NO_WORKER)
        }
    }
}

pub async fn holds(cfg: &Config, a: HoldsArgs) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let holds = cairn_ledger::query::holds(&pg).await?;
    if a.json {
        #[derive(serde::Serialize)]
        struct Listed {
            holds: Vec<cairn_ledger::query::HoldRow>,
        }
        output::json(&Listed { holds })?;
        return Ok(0);
    }
    out!("{:<36}  {:<20} {:<24} REASON", "ID", "SINCE", "BY");
    for h in holds {
        out!(
            "{:<36}  {:<20} {:<24} {}",
            h.backup_id,
            h.held_at,
            h.held_by,
            h.reason
        );
    }
    Ok(0)
}
