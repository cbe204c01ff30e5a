//! `cairn schedule list`: the configured backup schedules, each with its
//! next slot and the dataset's last backup.

use crate::{context, out, output};
use cairn_config::Config;

#[derive(clap::Subcommand)]
pub enum ScheduleCommand {
    /// Every schedule (`[[schedules]]`) with its next and last run.
    List(ListArgs),
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: &Config, c: ScheduleCommand) -> anyhow::Result<u8> {
    match c {
        ScheduleCommand::List(a) => list(cfg, a).await,
    }
}

async fn list(cfg: &Config, a: ListArgs) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let schedules =
        cairn_retention::schedule::list(&pg, &cfg.schedules, chrono::Utc::now()).await?;
    if a.json {
        #[derive(serde::Serialize)]
        struct Listed {
            schedules: Vec<cairn_retention::schedule::ScheduleStatus>,
        }
        output::json(&Listed { schedules })?;
        return Ok(0);
    }
    out!(
        "{:<16} {:<18} {:<14} {:<22} LAST",
        "DATASET",
        "CRON",
        "ZONE",
        "NEXT"
    );
    for s in schedules {
        let last = s
            .last_run
            .map(|l| {
                format!(
                    "{} {} ({})",
                    l.requested_at.unwrap_or_default(),
                    l.status,
                    l.backup_id
                )
            })
            .unwrap_or_else(|| "never".into());
        out!(
            "{:<16} {:<18} {:<14} {:<22} {last}",
            s.schedule.dataset,
            s.schedule.cron,
            s.schedule.timezone.as_deref().unwrap_or("UTC"),
            s.next_run
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default(),
        );
    }
    Ok(0)
}
