//! The schedules the retention service fires: those in the configuration
//! (`[[schedules]]`) and those added at run time (`cairn schedule add`),
//! which live in the ledger (`schedule.added`, `schedule.removed`, with who
//! and when). [`list`] shows each with its next slot and the dataset's last
//! backup; [`add`] and [`remove`] change the run-time ones and wait until
//! the ledger shows the change, since the scheduler reads them from there.

use cairn_bus::{Bus, BusError};
use cairn_events::{BackupId, Envelope, Event};
use cairn_ledger::query;
use cairn_lifecycle::{Schedule, ScheduleError, ScheduleExt};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum SchedulesError {
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error("schedule of dataset {dataset:?}: unknown network {network:?}")]
    UnknownNetwork { dataset: String, network: String },
    #[error("the schedule of dataset {dataset:?} with cron {cron:?} is in the configuration file ([[schedules]]): change it there")]
    InConfig { dataset: String, cron: String },
    #[error("no schedule of dataset {dataset:?}{} was added at run time (`cairn schedule list` shows them)", match cron { Some(c) => format!(" with cron {c:?}"), None => String::new() })]
    NotAdded {
        dataset: String,
        cron: Option<String>,
    },
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Where a schedule comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "origin", rename_all = "snake_case")]
pub enum Origin {
    Config,
    Added { added_by: String, added_at: String },
}

/// The dataset's newest backup.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub backup_id: String,
    pub requested_at: Option<String>,
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScheduleStatus {
    #[serde(flatten)]
    pub schedule: Schedule,
    #[serde(flatten)]
    pub origin: Origin,
    /// The next slot after `now` (a run starts up to `jitter` later).
    pub next_run: Option<DateTime<Utc>>,
    pub last_run: Option<LastRun>,
}

/// Whether the ledger has recorded a change yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recorded {
    /// The scheduler sees it from its next tick.
    Yes,
    /// Published, not yet in the ledger (is the ledger writer running?).
    NotYet,
}

fn same(a: &Schedule, dataset: &str, cron: &str) -> bool {
    a.dataset == dataset && a.cron == cron
}

/// Every schedule as of `now`: the configured ones in order, then those
/// added at run time (one a configured schedule shadows is left out, as
/// the scheduler leaves it).
pub async fn list(
    pg: &Client,
    config: &[Schedule],
    now: DateTime<Utc>,
) -> Result<Vec<ScheduleStatus>, SchedulesError> {
    let mut all: Vec<(Schedule, Origin)> =
        config.iter().map(|s| (s.clone(), Origin::Config)).collect();
    for a in query::added_schedules(pg).await? {
        if !config
            .iter()
            .any(|c| same(c, &a.schedule.dataset, &a.schedule.cron))
        {
            all.push((
                a.schedule,
                Origin::Added {
                    added_by: a.added_by,
                    added_at: a.added_at,
                },
            ));
        }
    }
    let mut out = Vec::with_capacity(all.len());
    for (s, origin) in all {
        let checked = s.check()?;
        let last = query::list_backups(pg, Some(&s.dataset), None)
            .await?
            .into_iter()
            .next()
            .map(|b| LastRun {
                backup_id: b.backup_id,
                requested_at: b.requested_at,
                status: b.status,
            });
        out.push(ScheduleStatus {
            next_run: checked.next_after(now),
            schedule: s,
            origin,
            last_run: last,
        });
    }
    Ok(out)
}

/// Adds (or replaces, same dataset and expression) a run-time schedule,
/// after checking it as the configuration's are checked; `networks` are
/// the configured ones.
pub async fn add(
    pg: &Client,
    bus: &Bus,
    config: &[Schedule],
    networks: &[String],
    s: Schedule,
    by: String,
    wait: Duration,
) -> Result<Recorded, SchedulesError> {
    s.check()?;
    if let Some(n) = s.networks.iter().find(|n| !networks.contains(n)) {
        return Err(SchedulesError::UnknownNetwork {
            dataset: s.dataset.clone(),
            network: n.clone(),
        });
    }
    if config.iter().any(|c| same(c, &s.dataset, &s.cron)) {
        return Err(SchedulesError::InConfig {
            dataset: s.dataset,
            cron: s.cron,
        });
    }
    let at = cairn_events::now_rfc3339();
    let env = Envelope::new(
        "cli",
        BackupId::repo(),
        Event::ScheduleAdded {
            schedule: s.clone(),
            by,
        },
        &[at.as_bytes(), s.dataset.as_bytes(), s.cron.as_bytes()],
    );
    bus.publish_event(&env).await?;
    wait_for(pg, wait, |added| added.iter().any(|a| a.schedule == s)).await
}

/// Removes the run-time schedules of `dataset` (only the one with `cron`,
/// if given); says which.
pub async fn remove(
    pg: &Client,
    bus: &Bus,
    config: &[Schedule],
    dataset: &str,
    cron: Option<&str>,
    by: String,
    wait: Duration,
) -> Result<(Vec<Schedule>, Recorded), SchedulesError> {
    let matches = |s: &Schedule| s.dataset == dataset && cron.is_none_or(|c| s.cron == c);
    let gone: Vec<Schedule> = query::added_schedules(pg)
        .await?
        .into_iter()
        .map(|a| a.schedule)
        .filter(|s| matches(s) && !config.iter().any(|c| same(c, &s.dataset, &s.cron)))
        .collect();
    if gone.is_empty() {
        return Err(match config.iter().find(|c| matches(c)) {
            Some(c) => SchedulesError::InConfig {
                dataset: c.dataset.clone(),
                cron: c.cron.clone(),
            },
            None => SchedulesError::NotAdded {
                dataset: dataset.into(),
                cron: cron.map(str::to_string),
            },
        });
    }
    let at = cairn_events::now_rfc3339();
    for s in &gone {
        let env = Envelope::new(
            "cli",
            BackupId::repo(),
            Event::ScheduleRemoved {
                dataset: s.dataset.clone(),
                cron: s.cron.clone(),
                by: by.clone(),
            },
            &[at.as_bytes(), s.dataset.as_bytes(), s.cron.as_bytes()],
        );
        bus.publish_event(&env).await?;
    }
    let recorded = wait_for(pg, wait, |added| {
        !added
            .iter()
            .any(|a| gone.iter().any(|g| same(&a.schedule, &g.dataset, &g.cron)))
    })
    .await?;
    Ok((gone, recorded))
}

async fn wait_for(
    pg: &Client,
    wait: Duration,
    done: impl Fn(&[query::AddedSchedule]) -> bool,
) -> Result<Recorded, SchedulesError> {
    let deadline = Instant::now() + wait;
    loop {
        if done(&query::added_schedules(pg).await?) {
            return Ok(Recorded::Yes);
        }
        if Instant::now() >= deadline {
            return Ok(Recorded::NotYet);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
