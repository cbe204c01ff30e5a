//! `cairn schedule list`: every backup schedule, each with where it comes
//! from, its next slot and the dataset's last backup; `cairn schedule add`
//! and `remove`: schedules kept in the ledger rather than the configuration.

use crate::{context, err, exit, out, output};
use anyhow::bail;
use cairn_config::Config;
use cairn_retention::schedule::{Origin, Recorded};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum ScheduleCommand {
    /// Every schedule (`[[schedules]]` and those added) with its next and
    /// last run.
    List(ListArgs),
    /// Add a schedule at run time (kept in the ledger, with who and when);
    /// one with the same dataset and cron is replaced.
    Add(Box<AddArgs>),
    /// Remove schedules added at run time.
    Remove(RemoveArgs),
}

#[derive(clap::Args)]
pub struct AddArgs {
    /// Files and directories to back up (paths on the ingest worker's host).
    paths: Vec<PathBuf>,
    #[command(flatten)]
    database: super::backup::DatabaseArgs,
    /// Dataset name (default: the first path's name, or the database name).
    #[arg(long)]
    dataset: Option<String>,
    /// When: `0 */6 * * *`, or with seconds first `30 0 */6 * * *`.
    #[arg(long)]
    cron: String,
    /// IANA time zone the expression is read in (default UTC).
    #[arg(long)]
    timezone: Option<String>,
    /// Start each run up to this much after its slot (`5m`).
    #[arg(long)]
    jitter: Option<String>,
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[arg(long = "network")]
    networks: Vec<String>,
    #[arg(long)]
    min_copies: Option<u32>,
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the ledger to record it.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

#[derive(clap::Args)]
pub struct RemoveArgs {
    #[arg(long)]
    dataset: String,
    /// Only the schedule with this expression (default: every schedule of
    /// the dataset added at run time).
    #[arg(long)]
    cron: Option<String>,
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the ledger to record it.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: &Config, c: ScheduleCommand) -> anyhow::Result<u8> {
    match c {
        ScheduleCommand::List(a) => list(cfg, a).await,
        ScheduleCommand::Add(a) => add(cfg, *a).await,
        ScheduleCommand::Remove(a) => remove(cfg, a).await,
    }
}

fn not_recorded(timeout: u64) -> anyhow::Result<u8> {
    err!("cairn: the ledger has not recorded it within {timeout} s, so the scheduler does not see it yet. Start the ledger writer with `cairn serve ledger`; `cairn schedule list` shows it once recorded.");
    Ok(exit::NO_WORKER)
}

async fn add(cfg: &Config, a: AddArgs) -> anyhow::Result<u8> {
    let Some((source, suggested)) = super::backup::source(&a.paths, &a.database)? else {
        bail!("nothing to back up: give PATHs or a database (--postgres, --postgres-base, --mariadb or --redis URL)");
    };
    let Some(dataset) = a.dataset.or(suggested) else {
        bail!("give the dataset a name with --dataset");
    };
    let schedule = cairn_events::Schedule {
        dataset,
        cron: a.cron,
        timezone: a.timezone,
        jitter: a.jitter,
        source,
        networks: a.networks,
        tags: a.tags,
        min_copies: a.min_copies,
    };
    let pg = context::ledger(cfg).await?;
    let bus = context::bus(cfg, "cairn-cli").await?;
    let recorded = cairn_retention::schedule::add(
        &pg,
        &bus,
        &cfg.schedules,
        &cfg.network_names(),
        schedule.clone(),
        context::user(),
        Duration::from_secs(a.timeout),
    )
    .await?;
    if a.json {
        output::json(&serde_json::json!({ "schedule": schedule, "recorded": recorded }))?;
    } else if recorded == Recorded::Yes {
        out!(
            "schedule of dataset {:?} added: {} ({})",
            schedule.dataset,
            schedule.cron,
            schedule.timezone.as_deref().unwrap_or("UTC")
        );
    }
    match recorded {
        Recorded::Yes => Ok(0),
        Recorded::NotYet => not_recorded(a.timeout),
    }
}

async fn remove(cfg: &Config, a: RemoveArgs) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let bus = context::bus(cfg, "cairn-cli").await?;
    let (gone, recorded) = cairn_retention::schedule::remove(
        &pg,
        &bus,
        &cfg.schedules,
        &a.dataset,
        a.cron.as_deref(),
        context::user(),
        Duration::from_secs(a.timeout),
    )
    .await?;
    if a.json {
        output::json(&serde_json::json!({ "removed": gone, "recorded": recorded }))?;
    } else if recorded == Recorded::Yes {
        for s in &gone {
            out!("schedule of dataset {:?} removed: {}", s.dataset, s.cron);
        }
    }
    match recorded {
        Recorded::Yes => Ok(0),
        Recorded::NotYet => not_recorded(a.timeout),
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
        "{:<16} {:<18} {:<14} {:<22} {:<24} LAST",
        "DATASET",
        "CRON",
        "ZONE",
        "NEXT",
        "FROM"
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
        let from = match &s.origin {
            Origin::Config => "config".to_string(),
            Origin::Added { added_by, .. } => format!("added by {added_by}"),
        };
        out!(
            "{:<16} {:<18} {:<14} {:<22} {from:<24} {last}",
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
