//! Backup schedules: a cron expression (seconds optional) in a named time
//! zone, with an optional jitter, and the request each run publishes.
//!
//! [`due`] is the whole firing decision, a pure function of the schedule,
//! the last slot fired and the time: it returns the newest slot that is due
//! and not yet fired, so after downtime a schedule fires once (the newest
//! missed slot), not once per missed slot. A schedule with no history
//! fires nothing from before it was first seen. Jitter delays each slot by
//! an offset derived from the dataset and the slot, the same on every
//! replica, so replicas agree on when a slot is due.

use crate::span::Span;
use cairn_events::{BackupRequest, Source};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::time::Duration;

pub use cairn_events::Schedule;

/// What is wrong with a schedule; `what` names it (`schedule of dataset
/// "db"`, `retention.drills`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{what}: cron expression {cron:?} is not valid ({reason})")]
    Cron {
        what: String,
        cron: String,
        reason: String,
    },
    #[error("{what}: unknown time zone {zone:?} (an IANA name such as Europe/Berlin or UTC)")]
    UnknownTimeZone { what: String, zone: String },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

/// A schedule whose expression and zone were understood.
#[derive(Debug, Clone)]
pub struct Checked {
    cron: Cron,
    tz: Tz,
    jitter: Duration,
}

/// What a [`Schedule`] means: when it fires and what it asks for.
pub trait ScheduleExt {
    /// Its expression, zone and jitter understood, or what is wrong, by name.
    fn check(&self) -> Result<Checked, ScheduleError>;
    /// The request each run publishes.
    fn request(&self, requested_by: String) -> BackupRequest;
}

impl ScheduleExt for Schedule {
    fn check(&self) -> Result<Checked, ScheduleError> {
        let what = format!("schedule of dataset {:?}", self.dataset);
        let invalid = |reason: &str| ScheduleError::Invalid {
            what: what.clone(),
            reason: reason.into(),
        };
        if self.dataset.trim().is_empty() {
            return Err(invalid("the dataset name is empty"));
        }
        match &self.source {
            Source::Stdin { .. } | Source::Wal { .. } => return Err(invalid(
                "a schedule cannot read standard input or a WAL file; give paths or a database URL",
            )),
            Source::Paths { paths } if paths.is_empty() => {
                return Err(invalid("source.paths is empty"))
            }
            _ => {}
        }
        let mut checked = cadence(&what, &self.cron, self.timezone.as_deref())?;
        if let Some(j) = &self.jitter {
            checked.jitter = j
                .parse::<Span>()
                .map_err(|e| invalid(&format!("jitter: {e}")))?
                .0;
        }
        Ok(checked)
    }

    fn request(&self, requested_by: String) -> BackupRequest {
        BackupRequest {
            dataset: self.dataset.clone(),
            tags: self.tags.clone(),
            source: self.source.clone(),
            networks: self.networks.clone(),
            min_copies: self.min_copies,
            requested_by,
            force_read: false,
        }
    }
}

/// A cron expression read in a time zone (UTC when none is named), no
/// jitter: when something periodic is due. `what` names it in errors.
pub fn cadence(what: &str, cron: &str, timezone: Option<&str>) -> Result<Checked, ScheduleError> {
    let parsed: Cron = cron.parse().map_err(|e| ScheduleError::Cron {
        what: what.into(),
        cron: cron.into(),
        reason: format!("{e}"),
    })?;
    let tz = match timezone {
        None => Tz::UTC,
        Some(z) => z.parse().map_err(|_| ScheduleError::UnknownTimeZone {
            what: what.into(),
            zone: z.into(),
        })?,
    };
    let checked = Checked {
        cron: parsed,
        tz,
        jitter: Duration::ZERO,
    };
    if checked.next_after(Utc::now()).is_none() {
        return Err(ScheduleError::Cron {
            what: what.into(),
            cron: cron.into(),
            reason: "it never matches a time".into(),
        });
    }
    Ok(checked)
}

impl Checked {
    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|s| s.with_timezone(&Utc))
    }

    /// The newest slot at or before `t`.
    pub fn slot_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|s| s.with_timezone(&Utc))
    }

    /// How long after `slot` the run starts: below the jitter, the same for
    /// every replica.
    pub fn delay(&self, dataset: &str, slot: DateTime<Utc>) -> Duration {
        let jitter = self.jitter.as_millis() as u64;
        if jitter == 0 {
            return Duration::ZERO;
        }
        // FNV-1a: stable across processes and versions, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in dataset.bytes().chain(slot.timestamp().to_be_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Duration::from_millis(h % jitter)
    }

    /// When the run for `slot` starts.
    pub fn fires_at(&self, dataset: &str, slot: DateTime<Utc>) -> DateTime<Utc> {
        slot + chrono::Duration::from_std(self.delay(dataset, slot)).unwrap_or_default()
    }
}

/// The slot to fire now, if any: the newest slot whose start time
/// ([`Checked::fires_at`]) has come, that is after `last_fired`, or, with
/// no run fired yet, not before `since` (when the scheduler first saw it).
pub fn due(
    checked: &Checked,
    dataset: &str,
    last_fired: Option<DateTime<Utc>>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut slot = checked.slot_at_or_before(now)?;
    if checked.fires_at(dataset, slot) > now {
        // Inside its jitter: the one before may still be owed.
        slot = checked.slot_at_or_before(slot - chrono::Duration::seconds(1))?;
        if checked.fires_at(dataset, slot) > now {
            return None;
        }
    }
    match last_fired {
        Some(last) if slot <= last => None,
        None if slot < since => None,
        _ => Some(slot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).unwrap()
    }

    fn every_6h() -> Schedule {
        Schedule {
            dataset: "plant".into(),
            cron: "0 */6 * * *".into(),
            timezone: None,
            jitter: None,
            source: Source::Paths {
                paths: vec!["/srv".into()],
            },
            networks: vec![],
            tags: vec![],
            min_copies: None,
        }
    }

    #[test]
    fn a_slot_fires_once_when_it_comes() {
        let c = every_6h().check().unwrap();
        let since = at(1, 5, 0);
        assert_eq!(due(&c, "plant", None, since, at(1, 5, 59)), None);
        assert_eq!(
            due(&c, "plant", None, since, at(1, 6, 0)),
            Some(at(1, 6, 0))
        );
        // Fired: nothing more until 12:00.
        assert_eq!(
            due(&c, "plant", Some(at(1, 6, 0)), since, at(1, 11, 59)),
            None
        );
        assert_eq!(
            due(&c, "plant", Some(at(1, 6, 0)), since, at(1, 12, 0)),
            Some(at(1, 12, 0))
        );
        assert_eq!(c.next_after(at(1, 6, 0)), Some(at(1, 12, 0)));
    }

    #[test]
    fn after_downtime_a_missed_run_fires_once_not_once_per_slot() {
        let c = every_6h().check().unwrap();
        // Down from the 1st 07:00 to the 3rd 14:10: eight slots missed.
        let now = at(3, 14, 10);
        assert_eq!(
            due(&c, "plant", Some(at(1, 6, 0)), at(1, 0, 0), now),
            Some(at(3, 12, 0))
        );
        // That one fired, the others are not owed.
        assert_eq!(due(&c, "plant", Some(at(3, 12, 0)), at(1, 0, 0), now), None);
        // A schedule seen for the first time owes nothing from before.
        assert_eq!(due(&c, "plant", None, at(3, 14, 0), now), None);
    }

    #[test]
    fn seconds_and_time_zones_are_honoured() {
        let mut s = every_6h();
        s.cron = "30 0 2 * * *".into(); // 02:00:30 every day
        s.timezone = Some("Europe/Berlin".into());
        let c = s.check().unwrap();
        // Berlin is UTC+1 in early March: 02:00:30 there is 01:00:30 UTC.
        let slot = Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 30).unwrap();
        assert_eq!(c.next_after(at(2, 0, 0)), Some(slot));
        assert_eq!(due(&c, "plant", None, at(2, 0, 0), slot), Some(slot));
    }

    #[test]
    fn jitter_delays_each_slot_the_same_way_everywhere() {
        let mut s = every_6h();
        s.jitter = Some("10m".parse().unwrap());
        let c = s.check().unwrap();
        let slot = at(1, 6, 0);
        let d = c.delay("plant", slot);
        assert!(d < Duration::from_secs(600), "{d:?}");
        assert_eq!(d, s.check().unwrap().delay("plant", slot), "deterministic");
        let fires = c.fires_at("plant", slot);
        let before = fires - chrono::Duration::milliseconds(1);
        if before >= slot {
            assert_eq!(
                due(&c, "plant", Some(at(1, 0, 0)), at(1, 0, 0), before),
                None
            );
        }
        assert_eq!(
            due(&c, "plant", Some(at(1, 0, 0)), at(1, 0, 0), fires),
            Some(slot)
        );
        let other: Vec<Duration> = (0..20).map(|i| c.delay(&format!("d{i}"), slot)).collect();
        assert!(other.iter().any(|x| *x != d), "datasets are spread");
    }

    #[test]
    fn bad_schedules_are_refused_naming_what_is_wrong() {
        let mut s = every_6h();
        s.cron = "0 */6 * *".into();
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("0 */6 * *") && e.contains("plant"), "{e}");
        let mut s = every_6h();
        s.cron = "0 25 * * *".into();
        assert!(matches!(s.check(), Err(ScheduleError::Cron { .. })));
        let mut s = every_6h();
        s.timezone = Some("Atlantis/Capital".into());
        let e = s.check().unwrap_err().to_string();
        assert!(e.contains("Atlantis/Capital"), "{e}");
        let mut s = every_6h();
        s.source = Source::Stdin { name: "x".into() };
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .contains("standard input"));
        let mut s = every_6h();
        s.source = Source::Paths { paths: vec![] };
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .contains("paths is empty"));
    }
}
