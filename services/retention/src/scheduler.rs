//! Fires the configured schedules: each due slot publishes one
//! `backup.requested`, whichever replica gets there first.
//!
//! * Exactly once per slot: a replica fires a slot only after claiming it
//!   on the schedules stream ([`cairn_bus::claims`]); the others see the
//!   claim and move on. The request's event id is derived from the
//!   schedule and the slot as well, so even a second publish would be
//!   dropped by JetStream and the ledger.
//! * Never overlapping itself: if the schedule's previous backup has not
//!   finished (the ledger does not show it completed, degraded, failed or
//!   forgotten), the slot is skipped and `schedule.skipped` recorded. A
//!   previous backup the ledger has not recorded at all counts as running
//!   until `running_window` after its slot.
//! * After downtime, once: [`cairn_lifecycle::due`] hands over only the
//!   newest missed slot; the stream remembers the last slot fired across
//!   restarts, and when each schedule was first seen.
//!
//! The time is passed in ([`Scheduler::tick`]), so tests drive it.

use cairn_bus::claims::Claims;
use cairn_bus::{Bus, BusError};
use cairn_events::{BackupId, Envelope, Event};
use cairn_lifecycle::{due, Checked, Schedule, ScheduleError, ScheduleExt};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
}

/// What the schedules stream remembers of a schedule's last fired slot.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Fired {
    slot: DateTime<Utc>,
    backup_id: Option<BackupId>,
}

/// What one tick did for one schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Fired {
        dataset: String,
        slot: DateTime<Utc>,
        backup_id: BackupId,
    },
    Skipped {
        dataset: String,
        slot: DateTime<Utc>,
        running: BackupId,
    },
}

pub struct Scheduler {
    pub bus: Bus,
    claims: Claims,
    /// The ledger (read only): has the previous scheduled backup finished?
    pub pg: tokio_postgres::Client,
    schedules: Vec<(Schedule, Checked, String)>,
    pub running_window: Duration,
    pub source: String,
}

impl Scheduler {
    pub async fn new(
        bus: Bus,
        pg: tokio_postgres::Client,
        schedules: &[Schedule],
        running_window: Duration,
        source: String,
    ) -> Result<Scheduler, SchedulerError> {
        let claims = Claims::new(&bus);
        let mut checked = Vec::with_capacity(schedules.len());
        for s in schedules {
            checked.push((s.clone(), s.check()?, key_of(s)));
        }
        Ok(Scheduler {
            bus,
            claims,
            pg,
            schedules: checked,
            running_window,
            source,
        })
    }

    /// Fires (or skips) every schedule slot due at `now`: the configured
    /// schedules and those added at run time, as the ledger shows them now
    /// (a configured one wins over an added one of the same dataset and
    /// expression).
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<Action>, SchedulerError> {
        let mut done = Vec::new();
        for (schedule, checked, key) in &self.schedules {
            if let Some(a) = self.tick_one(schedule, checked, key, now).await? {
                done.push(a);
            }
        }
        for added in cairn_ledger::query::added_schedules(&self.pg).await? {
            let s = added.schedule;
            if self
                .schedules
                .iter()
                .any(|(c, _, _)| c.dataset == s.dataset && c.cron == s.cron)
            {
                continue;
            }
            // Checked when it was added; refused now only if what it names
            // went away (a time zone), which is said and skipped.
            let checked = match s.check() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "a schedule added at run time is not valid; not fired");
                    continue;
                }
            };
            if let Some(a) = self.tick_one(&s, &checked, &key_of(&s), now).await? {
                done.push(a);
            }
        }
        Ok(done)
    }

    async fn tick_one(
        &self,
        s: &Schedule,
        checked: &Checked,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Action>, SchedulerError> {
        let since_key = format!("{key}.since");
        let since = match self.claims.get(&since_key).await? {
            (Some(b), _) => parse_time(&b).unwrap_or(now),
            (None, _) => {
                // First sight: whichever replica writes first sets it.
                let stamp = now.to_rfc3339();
                self.claims
                    .swap(&since_key, 0, stamp.into_bytes().into())
                    .await?;
                match self.claims.get(&since_key).await?.0 {
                    Some(b) => parse_time(&b).unwrap_or(now),
                    None => now,
                }
            }
        };
        let last_key = format!("{key}.last");
        let (raw, seq) = self.claims.get(&last_key).await?;
        let last: Option<Fired> = raw.and_then(|b| serde_json::from_slice(&b).ok());
        let Some(slot) = due(
            checked,
            &s.dataset,
            last.as_ref().map(|f| f.slot),
            since,
            now,
        ) else {
            return Ok(None);
        };
        let running = self.still_running(last.as_ref(), now).await?;
        let fired = Fired {
            slot,
            backup_id: match &running {
                // The running one stays the one the next slot waits for.
                Some(r) => Some(r.clone()),
                None => Some(BackupId::generate()),
            },
        };
        // Moving "last fired" on from what was read is the claim: of the
        // replicas that read the same value, one wins, the others move on.
        // It is written before publishing: a crash in between loses this
        // slot (the next fires as usual) rather than firing it twice.
        let v = serde_json::to_vec(&fired).unwrap_or_default();
        if !self.claims.swap(&last_key, seq, v.into()).await? {
            return Ok(None);
        }
        if let Some(running) = running {
            let env = Envelope::new(
                self.source.clone(),
                running.clone(),
                Event::ScheduleSkipped {
                    dataset: s.dataset.clone(),
                    slot: slot.to_rfc3339(),
                    running: running.clone(),
                },
                &[key.as_bytes(), slot.to_rfc3339().as_bytes()],
            );
            self.bus.publish_event(&env).await?;
            tracing::warn!(dataset = %s.dataset, %slot, %running, "scheduled run skipped: the previous one is still running");
            return Ok(Some(Action::Skipped {
                dataset: s.dataset.clone(),
                slot,
                running,
            }));
        }
        let backup_id = fired.backup_id.unwrap_or_else(BackupId::generate);
        let env = Envelope::new(
            self.source.clone(),
            backup_id.clone(),
            Event::BackupRequested(s.request(format!("schedule:{}", s.dataset))),
            &[key.as_bytes(), slot.to_rfc3339().as_bytes()],
        );
        // A new trace for each scheduled backup, whatever span the
        // scheduler runs in.
        let span = tracing::info_span!(
            parent: None,
            "schedule",
            otel.name = "scheduled backup request",
            otel.kind = "producer",
            dataset = %s.dataset,
            backup = %backup_id,
            trace_id = tracing::field::Empty,
        );
        cairn_telemetry::propagate::record_trace_id(&span);
        use tracing::Instrument as _;
        self.bus
            .publish_event(&env)
            .instrument(span.clone())
            .await?;
        span.in_scope(|| tracing::info!(dataset = %s.dataset, %slot, "scheduled backup requested"));
        Ok(Some(Action::Fired {
            dataset: s.dataset.clone(),
            slot,
            backup_id,
        }))
    }

    /// The previous scheduled backup, if it has not finished.
    async fn still_running(
        &self,
        last: Option<&Fired>,
        now: DateTime<Utc>,
    ) -> Result<Option<BackupId>, SchedulerError> {
        let Some(Fired {
            slot,
            backup_id: Some(id),
        }) = last
        else {
            return Ok(None);
        };
        let row = cairn_ledger::query::backup(&self.pg, id.as_str()).await?;
        let window = chrono::Duration::from_std(self.running_window).unwrap_or_default();
        let running = match row.map(|r| r.status) {
            Some(st) => !matches!(
                st.as_str(),
                "completed" | "degraded" | "failed" | "forgotten"
            ),
            // Not recorded yet: it was just asked for, or lost on the way.
            None => now - *slot < window,
        };
        Ok(running.then(|| id.clone()))
    }
}

/// A stream key for a schedule: its dataset and expression, hashed (keys
/// allow only a few characters; dataset names allow more).
fn key_of(s: &Schedule) -> String {
    let h = Sha256::digest(format!("{}\n{}", s.dataset, s.cron).as_bytes());
    hex::encode(&h[..12])
}

fn parse_time(b: &[u8]) -> Option<DateTime<Utc>> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Ticks every second until the process stops; a failed tick is logged
/// and tried again on the next.
pub async fn run(s: Scheduler) -> Result<(), BusError> {
    loop {
        if let Err(e) = s.tick(Utc::now()).await {
            tracing::warn!(error = %e, "schedule tick failed; trying again");
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = cairn_ledger::db::closed(&s.pg) => {
                return Err(BusError::Stopped(cairn_ledger::db::gone("the scheduler")));
            }
        }
    }
}
