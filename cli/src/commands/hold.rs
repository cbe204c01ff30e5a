//! `cairn hold`, `cairn release` and `cairn holds`: legal holds, recorded
//! in the ledger with who and why. A held backup is never deleted.

use crate::{context, err, exit, out, output};
use cairn_config::Config;
use cairn_events::BackupId;
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
}

pub async fn hold(cfg: &Config, a: HoldArgs) -> anyhow::Result<u8> {
    change(cfg, a, "held").await
}

pub async fn release(cfg: &Config, a: HoldArgs) -> anyhow::Result<u8> {
    change(cfg, a, "released").await
}

async fn change(cfg: &Config, a: HoldArgs, action: &'static str) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let bus = context::bus(cfg, "cairn-cli").await?;
    let wait = Duration::from_secs(a.timeout);
    let id = &a.backup_id;
    let outcome = if action == "held" {
        hold::hold(&pg, &bus, id, context::user(), &a.reason, wait).await?
    } else {
        hold::release(&pg, &bus, id, context::user(), &a.reason, wait).await?
    };
    if a.json {
        output::json(&Report {
            backup_id: id,
            action,
            outcome: &outcome,
        })?;
    }
    match outcome {
        HoldOutcome::Recorded { .. } => {
            if !a.json {
                out!("backup {id} {action}: {}", a.reason.trim());
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
