//! `cairn schedule list`: each configured schedule with its next slot and
//! the dataset's last backup as the ledger shows it.

use cairn_ledger::query;
use cairn_lifecycle::{Schedule, ScheduleError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum ScheduleListError {
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
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
    /// The next slot after `now` (a run starts up to `jitter` later).
    pub next_run: Option<DateTime<Utc>>,
    pub last_run: Option<LastRun>,
}

/// Every schedule in `schedules`, in config order, as of `now`.
pub async fn list(
    pg: &Client,
    schedules: &[Schedule],
    now: DateTime<Utc>,
) -> Result<Vec<ScheduleStatus>, ScheduleListError> {
    let mut out = Vec::with_capacity(schedules.len());
    for s in schedules {
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
            schedule: s.clone(),
            next_run: checked.next_after(now),
            last_run: last,
        });
    }
    Ok(out)
}
