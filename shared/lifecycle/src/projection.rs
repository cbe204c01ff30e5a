//! How much each network will hold month by month, under the schedules and
//! retention policies as they are now: the next 12 months of `cairn cost`.
//!
//! The model is the one capacity planning uses for deduplicating backups:
//! a dataset holds one full copy plus what each further kept backup
//! changed. Its backups so far give that change (the median of what its
//! recent backups added); its schedule says when backups come; its policy,
//! run at the end of each month over the backups there would be by then
//! ([`decide`]), says how many are kept. The months differ from today by
//! the kept backups gained or lost, times the change per backup.
//!
//! A network that cannot delete (Arweave) keeps every byte written to it:
//! there the months only add.
//!
//! It is an estimate, and says what it rests on: a dataset with one backup
//! has no change rate yet, a dataset with no schedule gains no backups.

use crate::policy::{decide, Candidate, Policy, Status};
use crate::schedule::Checked;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::BTreeMap;

/// One dataset as it stands, and what comes next for it.
#[derive(Debug, Clone)]
pub struct Trend {
    pub dataset: String,
    pub policy: Policy,
    /// The policy's zone (what [`Policy::check`] returned).
    pub tz: Tz,
    /// When its next backups come, with the tags they carry; none: no new
    /// backups.
    pub schedules: Vec<(Checked, Vec<String>)>,
    /// Until when a compliance rule keeps each of its backups (by id), if
    /// one does.
    pub floors: BTreeMap<String, DateTime<Utc>>,
    /// How long a compliance rule keeps each of its scheduled backups.
    pub floor: Option<chrono::Duration>,
    /// Its backups the catalogue still shows.
    pub backups: Vec<Candidate>,
    /// Sealed bytes a further backup adds to each network it goes to.
    pub change: u64,
    /// What it holds now, per network.
    pub held: BTreeMap<String, u64>,
}

/// How the backups a schedule will take are named in the model.
const FUTURE: &str = "future-";

/// One month of the projection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Month {
    /// `2027-01`.
    pub month: String,
    /// Bytes held per network at the month's end.
    pub held: BTreeMap<String, u64>,
    /// Bytes written per network during the month (what a network that
    /// charges once per stored byte charges for it).
    pub added: BTreeMap<String, u64>,
    /// Backups taken during the month, over every dataset.
    pub backups: u64,
}

/// The first instant of the month after the one `t` is in.
fn next_month(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .expect("the first of a month exists")
}

/// Backups `policy` keeps at `at` among `backups`, with compliance floors
/// judged at `at`.
fn kept(t: &Trend, backups: &[Candidate], at: DateTime<Utc>) -> u64 {
    let judged: Vec<Candidate> = backups
        .iter()
        .filter(|c| c.time <= at)
        .map(|c| {
            let mut c = c.clone();
            let until = match t.floors.get(&c.backup_id) {
                Some(u) => Some(*u),
                None if c.backup_id.starts_with(FUTURE) => t.floor.map(|f| c.time + f),
                None => None,
            };
            c.floor = until
                .filter(|u| *u > at && c.status != Status::Failed)
                .map(|u| format!("compliance: until {u}"));
            c
        })
        .collect();
    decide(&t.policy, t.tz, &judged)
        .iter()
        .filter(|d| d.keep && d.status != Status::Failed)
        .count() as u64
}

/// `months` months, the rest of `now`'s first, for `trends` and the bytes
/// no dataset accounts for (`other`, kept as they are).
pub fn project(
    trends: &[Trend],
    other: &BTreeMap<String, u64>,
    permanent: &[String],
    now: DateTime<Utc>,
    months: u32,
) -> Vec<Month> {
    // Each dataset's future backups, from its schedules.
    let end = (0..months).fold(now, |t, _| next_month(t));
    let future: Vec<Vec<Candidate>> = trends
        .iter()
        .map(|t| {
            let mut out = Vec::new();
            for (checked, tags) in &t.schedules {
                let mut at = now;
                while let Some(next) = checked.next_after(at) {
                    if next >= end {
                        break;
                    }
                    out.push(Candidate {
                        backup_id: format!("{FUTURE}{}", out.len()),
                        tags: tags.clone(),
                        status: Status::Completed,
                        time: next,
                        hold: None,
                        floor: None,
                    });
                    at = next;
                }
            }
            out
        })
        .collect();
    let kept_now: Vec<u64> = trends.iter().map(|t| kept(t, &t.backups, now)).collect();

    let mut out = Vec::with_capacity(months as usize);
    // On a network that cannot delete, what is written stays: its bytes
    // only grow, whatever the policies drop.
    let mut written: BTreeMap<(usize, String), u64> = BTreeMap::new();
    let mut start = now;
    for _ in 0..months {
        let stop = next_month(start);
        let mut held = other.clone();
        let mut added: BTreeMap<String, u64> = BTreeMap::new();
        let mut taken = 0u64;
        for (i, t) in trends.iter().enumerate() {
            let mut all = t.backups.clone();
            all.extend(future[i].iter().filter(|c| c.time < stop).cloned());
            let new_here = future[i]
                .iter()
                .filter(|c| c.time >= start && c.time < stop)
                .count() as u64;
            taken += new_here;
            let k = kept(t, &all, stop);
            for (net, &bytes) in &t.held {
                *added.entry(net.clone()).or_default() += new_here * t.change;
                if permanent.contains(net) {
                    let w = written.entry((i, net.clone())).or_default();
                    *w += new_here * t.change;
                    *held.entry(net.clone()).or_default() += bytes + *w;
                    continue;
                }
                // Never below one full copy: what is gained or lost is
                // the change each kept backup beyond the first brings.
                let floor = bytes.saturating_sub(kept_now[i].saturating_sub(1) * t.change);
                let projected = if k >= kept_now[i] {
                    bytes + (k - kept_now[i]) * t.change
                } else {
                    bytes
                        .saturating_sub((kept_now[i] - k) * t.change)
                        .max(floor)
                };
                *held.entry(net.clone()).or_default() += projected;
            }
        }
        out.push(Month {
            month: format!("{:04}-{:02}", start.year(), start.month()),
            held,
            added,
            backups: taken,
        });
        start = stop;
    }
    out
}

/// What a further backup of a dataset adds: the median of what its
/// completed backups after the first added, newest `recent` of them
/// (`None` with fewer than two backups: no change rate yet).
pub fn change_per_backup(added_oldest_first: &[u64], recent: usize) -> Option<u64> {
    if added_oldest_first.len() < 2 {
        return None;
    }
    let mut v: Vec<u64> = added_oldest_first[1..]
        .iter()
        .rev()
        .take(recent)
        .copied()
        .collect();
    v.sort_unstable();
    Some(v[v.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::cadence;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn backup(id: &str, t: &str) -> Candidate {
        Candidate {
            backup_id: id.into(),
            tags: vec![],
            status: Status::Completed,
            time: at(t),
            hold: None,
            floor: None,
        }
    }

    fn trend(policy: Policy, schedule: Option<&str>, backups: Vec<Candidate>) -> Trend {
        Trend {
            dataset: "d".into(),
            tz: policy.check("d").unwrap(),
            policy,
            schedules: schedule
                .map(|c| vec![(cadence("s", c, None).unwrap(), vec![])])
                .unwrap_or_default(),
            floors: BTreeMap::new(),
            floor: None,
            backups,
            change: 10,
            held: [("s3".to_string(), 1000)].into(),
        }
    }

    #[test]
    fn a_daily_schedule_grows_until_the_policy_window_is_full_then_stays() {
        let policy = Policy {
            keep_daily: Some(30),
            ..Policy::default()
        };
        let t = trend(
            policy,
            Some("0 3 * * *"),
            vec![backup("a", "2026-12-05T03:00:00Z")],
        );
        let mut t = t;
        t.held.insert("arweave".into(), 1000);
        // A second dataset with no schedule: what the first writes is not
        // its.
        let mut idle = trend(Policy::seeds_default(), None, vec![]);
        idle.held = [("arweave".to_string(), 5)].into();
        let m = project(
            &[t, idle],
            &BTreeMap::new(),
            &["arweave".into()],
            at("2026-12-06T12:00:00Z"),
            12,
        );
        assert_eq!(m.len(), 12);
        assert_eq!(m[0].month, "2026-12");
        // December: 25 more daily backups (7th..31st), all kept.
        assert_eq!(m[0].backups, 25);
        assert_eq!(m[0].held["s3"], 1000 + 25 * 10);
        assert_eq!(m[0].added["s3"], 25 * 10);
        // From January the 30-day window is full: 30 kept, 29 beyond the first.
        assert_eq!(m[1].held["s3"], 1000 + 29 * 10);
        assert_eq!(m[11].held["s3"], m[1].held["s3"]);
        assert_eq!(m[11].month, "2027-11");
        // Arweave keeps every backup ever written: 25 + 31 in two months.
        assert_eq!(m[1].held["arweave"], 1000 + 56 * 10 + 5);
        assert_eq!(m[1].added["arweave"], 31 * 10);
    }

    #[test]
    fn no_schedule_no_growth_and_a_compliance_floor_keeps_what_the_policy_drops() {
        let policy = Policy {
            keep_last: Some(1),
            ..Policy::default()
        };
        let flat = trend(
            policy.clone(),
            None,
            vec![backup("a", "2026-12-01T00:00:00Z")],
        );
        let m = project(
            &[flat],
            &BTreeMap::new(),
            &[],
            at("2026-12-06T00:00:00Z"),
            3,
        );
        assert!(m.iter().all(|m| m.held["s3"] == 1000 && m.backups == 0));

        let mut floored = trend(
            policy,
            Some("0 0 * * 0"),
            vec![backup("a", "2026-12-01T00:00:00Z")],
        );
        let m = project(
            &[floored.clone()],
            &BTreeMap::new(),
            &[],
            at("2026-12-06T00:00:00Z"),
            2,
        );
        assert_eq!(
            m[1].held["s3"], 1000,
            "keep_last 1: one copy whatever comes"
        );
        floored.floor = Some(chrono::Duration::days(365));
        let m = project(
            &[floored],
            &BTreeMap::new(),
            &[],
            at("2026-12-06T00:00:00Z"),
            2,
        );
        // Sundays 13..27 Dec and 3..31 Jan: 3 + 5 backups, all kept a
        // year; `a`, older than the newest and with no floor, goes.
        assert_eq!(m[1].held["s3"], 1000 + 7 * 10);
    }

    #[test]
    fn bytes_no_dataset_accounts_for_are_carried_as_they_are() {
        let other: BTreeMap<String, u64> = [("arweave".to_string(), 77)].into();
        let m = project(&[], &other, &[], at("2026-12-06T00:00:00Z"), 1);
        assert_eq!(m[0].held["arweave"], 77);
    }

    #[test]
    fn the_change_rate_is_the_median_of_recent_backups_after_the_first() {
        assert_eq!(change_per_backup(&[1000], 10), None);
        assert_eq!(change_per_backup(&[1000, 5, 7, 900, 6], 10), Some(7));
        assert_eq!(change_per_backup(&[1000, 5, 7, 900, 6], 2), Some(900));
    }
}
