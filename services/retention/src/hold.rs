//! Legal hold: `backup.held` and `backup.released`, with who and why. The
//! ledger projects them into `holds`, which `forget` and every policy read
//! before deleting anything. A hold counts once the ledger shows it, so
//! [`hold`] waits for that and says so when it does not come.

use cairn_bus::{Bus, BusError};
use cairn_events::{BackupId, Envelope, Event, Hold};
use cairn_ledger::query::{self, HoldRow};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("backup {0} is not in the ledger (`cairn list` shows the backups)")]
    Unknown(BackupId),
    #[error("backup {0} was forgotten: there is nothing left to hold")]
    Forgotten(BackupId),
    #[error("backup {0} is not under legal hold")]
    NotHeld(BackupId),
    #[error("a hold and a release need a reason (--reason TEXT): the ledger records it")]
    NoReason,
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// What happened to the hold.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HoldOutcome {
    /// The ledger shows the hold (or its release): it is in force.
    Recorded { hold: Option<HoldRow> },
    /// Published, but the ledger did not record it in time: until it does,
    /// the hold does not protect the backup.
    NotYetRecorded,
}

/// Puts `backup` under legal hold (again, with a new reason, if it is).
pub async fn hold(
    pg: &Client,
    bus: &Bus,
    backup: &BackupId,
    by: String,
    reason: &str,
    wait: Duration,
) -> Result<HoldOutcome, HoldError> {
    let reason = check(pg, backup, reason).await?;
    let event = Event::BackupHeld(Hold {
        by,
        reason: reason.clone(),
    });
    publish(bus, backup, event, &reason).await?;
    wait_for(pg, backup, wait, |h| h.is_some_and(|h| h.reason == reason)).await
}

/// Lifts the legal hold on `backup`.
pub async fn release(
    pg: &Client,
    bus: &Bus,
    backup: &BackupId,
    by: String,
    reason: &str,
    wait: Duration,
) -> Result<HoldOutcome, HoldError> {
    let reason = check(pg, backup, reason).await?;
    if query::hold(pg, backup.as_str()).await?.is_none() {
        return Err(HoldError::NotHeld(backup.clone()));
    }
    let event = Event::BackupReleased(Hold {
        by,
        reason: reason.clone(),
    });
    publish(bus, backup, event, &reason).await?;
    wait_for(pg, backup, wait, |h| h.is_none()).await
}

/// Polls the ledger until the hold on `backup` is as `done` wants it, or
/// `wait` has passed: a hold or release counts only once it is recorded.
async fn wait_for(
    pg: &Client,
    backup: &BackupId,
    wait: Duration,
    done: impl Fn(Option<&HoldRow>) -> bool,
) -> Result<HoldOutcome, HoldError> {
    let deadline = Instant::now() + wait;
    loop {
        let hold = query::hold(pg, backup.as_str()).await?;
        if done(hold.as_ref()) {
            return Ok(HoldOutcome::Recorded { hold });
        }
        if Instant::now() >= deadline {
            return Ok(HoldOutcome::NotYetRecorded);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn check(pg: &Client, backup: &BackupId, reason: &str) -> Result<String, HoldError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(HoldError::NoReason);
    }
    match query::backup(pg, backup.as_str()).await? {
        None => Err(HoldError::Unknown(backup.clone())),
        Some(b) if b.status == "forgotten" => Err(HoldError::Forgotten(backup.clone())),
        Some(_) => Ok(reason.to_string()),
    }
}

async fn publish(bus: &Bus, backup: &BackupId, event: Event, reason: &str) -> Result<(), BusError> {
    // The time makes a second hold with the same reason a new event, not a
    // duplicate the ledger drops.
    let at = cairn_events::now_rfc3339();
    let env = Envelope::new(
        "cli",
        backup.clone(),
        event,
        &[at.as_bytes(), reason.as_bytes()],
    );
    bus.publish_event(&env).await
}
