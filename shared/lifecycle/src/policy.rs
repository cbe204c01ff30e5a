//! Retention policies with restic's `forget` semantics: which of a
//! dataset's backups to keep, and the rule that decided each.
//!
//! * Only backups that ended `completed` count toward the keep rules.
//! * `keep_last N` keeps the N newest; `keep_hourly|daily|weekly|monthly|yearly N`
//!   keep the newest backup of each of the last N hours, days, ISO weeks,
//!   months or years that have one, in the policy's time zone.
//! * `keep_within D` keeps every backup within D of the newest completed
//!   one (not of now, as restic does: a dataset whose backups stopped
//!   does not lose its last ones to the calendar); `keep_tagged_within`
//!   does the same for backups carrying a tag (compliance: 7 years).
//! * `keep_tag T` keeps every backup carrying T.
//!
//! Above every rule: a dataset's newest completed backup is always kept,
//! a backup under legal hold is always kept, and a backup that has not
//! finished, or finished degraded (repair may complete it), is kept.
//! Only a failed backup, or a completed one no rule keeps, is dropped.

use crate::span::Span;
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A dataset's retention policy (`[retention.policies.<dataset>]`, or
/// `[retention.default_policy]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<Span>,
    /// Backups carrying one of these tags are kept for ever.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keep_tag: Vec<String>,
    /// Backups carrying a tag are kept this long (`compliance = "2555d"`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub keep_tagged_within: BTreeMap<String, Span>,
    /// Time zone of the calendar rules (IANA name; default UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("retention policy {0:?} has no keep rule: it would delete every backup but the newest; give at least one keep_* rule")]
    NoKeepRule(String),
    #[error("retention policy {policy:?}: unknown time zone {zone:?} (an IANA name such as Europe/Berlin or UTC)")]
    UnknownTimeZone { policy: String, zone: String },
    #[error("retention policy {policy:?}: {rule} is zero, which keeps nothing")]
    ZeroSpan { policy: String, rule: String },
}

impl Policy {
    /// The seeds' default: regular backups 90 days, backups tagged
    /// `compliance` 2555 days (7 years).
    pub fn seeds_default() -> Policy {
        Policy {
            keep_within: Some(Span::days(90)),
            keep_tagged_within: [("compliance".to_string(), Span::days(2555))].into(),
            ..Policy::default()
        }
    }

    /// Refuses a policy that would keep nothing, or names an unknown zone.
    /// `name` is how the error names the policy (its dataset).
    pub fn check(&self, name: &str) -> Result<Tz, PolicyError> {
        let counts = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ];
        let any_count = counts.iter().any(|c| c.unwrap_or(0) > 0);
        for (rule, span) in self
            .keep_within
            .iter()
            .map(|s| ("keep_within".to_string(), s))
            .chain(
                self.keep_tagged_within
                    .iter()
                    .map(|(t, s)| (format!("keep_tagged_within.{t}"), s)),
            )
        {
            if span.0.is_zero() {
                return Err(PolicyError::ZeroSpan {
                    policy: name.into(),
                    rule,
                });
            }
        }
        if !any_count
            && self.keep_within.is_none()
            && self.keep_tag.is_empty()
            && self.keep_tagged_within.is_empty()
        {
            return Err(PolicyError::NoKeepRule(name.into()));
        }
        match &self.timezone {
            None => Ok(Tz::UTC),
            Some(z) => z.parse().map_err(|_| PolicyError::UnknownTimeZone {
                policy: name.into(),
                zone: z.clone(),
            }),
        }
    }
}

/// How a backup ended, as far as retention cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Completed,
    Degraded,
    Failed,
    /// Requested, running or being verified.
    Unfinished,
}

impl Status {
    /// From the ledger's `backups.status`; anything unknown is treated as
    /// unfinished, which is never dropped.
    pub fn from_ledger(s: &str) -> Status {
        match s {
            "completed" => Status::Completed,
            "degraded" => Status::Degraded,
            "failed" => Status::Failed,
            _ => Status::Unfinished,
        }
    }
}

/// One backup of the dataset being decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub backup_id: String,
    pub tags: Vec<String>,
    pub status: Status,
    /// When it was requested (what restic calls the snapshot's time).
    pub time: DateTime<Utc>,
    /// The reason of a legal hold, if it is held.
    pub hold: Option<String>,
    /// Why a compliance rule keeps it now, whatever the policy says
    /// (`compliance sox/sox-retention: until 2033-01-08`), if one does: the
    /// caller judges that against the clock.
    pub floor: Option<String>,
}

/// Keep or drop, and every rule that said so.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub backup_id: String,
    pub time: DateTime<Utc>,
    pub status: Status,
    pub keep: bool,
    pub reasons: Vec<String>,
}

#[derive(Clone, Copy)]
enum Calendar {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Calendar {
    fn rule(self) -> &'static str {
        match self {
            Calendar::Last => "keep_last",
            Calendar::Hourly => "keep_hourly",
            Calendar::Daily => "keep_daily",
            Calendar::Weekly => "keep_weekly",
            Calendar::Monthly => "keep_monthly",
            Calendar::Yearly => "keep_yearly",
        }
    }

    /// The period a time falls in; `Last` makes every backup its own.
    fn bucket(self, t: DateTime<Utc>, tz: Tz, index: usize) -> String {
        let l = t.with_timezone(&tz);
        match self {
            Calendar::Last => format!("#{index}"),
            Calendar::Hourly => format!(
                "{:04}-{:02}-{:02} {:02}h",
                l.year(),
                l.month(),
                l.day(),
                l.hour()
            ),
            Calendar::Daily => format!("{:04}-{:02}-{:02}", l.year(), l.month(), l.day()),
            Calendar::Weekly => {
                let w = l.iso_week();
                format!("{:04}-W{:02}", w.year(), w.week())
            }
            Calendar::Monthly => format!("{:04}-{:02}", l.year(), l.month()),
            Calendar::Yearly => format!("{:04}", l.year()),
        }
    }
}

/// What keeps a backup whatever the rules: a legal hold, and a state a
/// later step may still change (unfinished, or degraded until repaired).
pub(crate) fn standing(c: &Candidate) -> Vec<String> {
    let mut reasons = Vec::new();
    if let Some(reason) = &c.hold {
        reasons.push(format!("legal hold: {reason}"));
    }
    if let Some(reason) = &c.floor {
        reasons.push(reason.clone());
    }
    match c.status {
        Status::Unfinished => reasons.push("unfinished".into()),
        Status::Degraded => reasons.push("degraded: repair may complete it".into()),
        Status::Completed | Status::Failed => {}
    }
    reasons
}

/// Decides every backup of one dataset under `policy` (already checked:
/// `tz` is what [`Policy::check`] returned). Decisions come newest first.
pub fn decide(policy: &Policy, tz: Tz, backups: &[Candidate]) -> Vec<Decision> {
    let mut order: Vec<&Candidate> = backups.iter().collect();
    order.sort_by(|a, b| b.time.cmp(&a.time).then(b.backup_id.cmp(&a.backup_id)));
    let newest_completed = order
        .iter()
        .find(|c| c.status == Status::Completed)
        .map(|c| (c.backup_id.clone(), c.time));

    let calendars = [
        (Calendar::Last, policy.keep_last),
        (Calendar::Hourly, policy.keep_hourly),
        (Calendar::Daily, policy.keep_daily),
        (Calendar::Weekly, policy.keep_weekly),
        (Calendar::Monthly, policy.keep_monthly),
        (Calendar::Yearly, policy.keep_yearly),
    ];
    let mut left: Vec<u32> = calendars.iter().map(|(_, n)| n.unwrap_or(0)).collect();
    let mut last_bucket: Vec<Option<String>> = vec![None; calendars.len()];

    let mut out = Vec::with_capacity(order.len());
    for (i, c) in order.iter().enumerate() {
        let mut reasons = standing(c);
        match c.status {
            Status::Unfinished | Status::Degraded | Status::Failed => {}
            Status::Completed => {
                if newest_completed.as_ref().map(|(id, _)| id) == Some(&c.backup_id) {
                    reasons.push("newest completed backup of the dataset".into());
                }
                for (k, (cal, _)) in calendars.iter().enumerate() {
                    if left[k] == 0 {
                        continue;
                    }
                    let b = cal.bucket(c.time, tz, i);
                    if last_bucket[k].as_deref() != Some(b.as_str()) {
                        left[k] -= 1;
                        reasons.push(match cal {
                            Calendar::Last => cal.rule().to_string(),
                            _ => format!("{} ({b})", cal.rule()),
                        });
                        last_bucket[k] = Some(b);
                    }
                }
                if let (Some(span), Some((_, newest))) = (policy.keep_within, &newest_completed) {
                    if within(c.time, *newest, span) {
                        reasons.push(format!("keep_within {span}"));
                    }
                }
                for t in &policy.keep_tag {
                    if c.tags.contains(t) {
                        reasons.push(format!("keep_tag {t}"));
                    }
                }
                for (t, span) in &policy.keep_tagged_within {
                    if let Some((_, newest)) = &newest_completed {
                        if c.tags.contains(t) && within(c.time, *newest, *span) {
                            reasons.push(format!("keep_tagged_within {t} {span}"));
                        }
                    }
                }
            }
        }
        let keep = !reasons.is_empty();
        if !keep {
            reasons.push(match c.status {
                Status::Failed => "failed".into(),
                _ => "no rule keeps it".into(),
            });
        }
        out.push(Decision {
            backup_id: c.backup_id.clone(),
            time: c.time,
            status: c.status,
            keep,
            reasons,
        });
    }
    out
}

fn within(t: DateTime<Utc>, newest: DateTime<Utc>, span: Span) -> bool {
    let age = newest.signed_duration_since(t);
    age.to_std().map(|a| a <= span.0).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn backup(id: &str, t: DateTime<Utc>) -> Candidate {
        Candidate {
            backup_id: id.into(),
            tags: vec![],
            status: Status::Completed,
            time: t,
            hold: None,
            floor: None,
        }
    }

    fn kept(d: &[Decision]) -> Vec<&str> {
        d.iter()
            .filter(|d| d.keep)
            .map(|d| d.backup_id.as_str())
            .collect()
    }

    fn reasons<'a>(d: &'a [Decision], id: &str) -> &'a [String] {
        &d.iter().find(|d| d.backup_id == id).unwrap().reasons
    }

    /// Four backups a day for ten days: 06, 12, 18, 23 h.
    fn four_a_day() -> Vec<Candidate> {
        let mut v = Vec::new();
        for day in 1..=10 {
            for h in [6, 12, 18, 23] {
                v.push(backup(&format!("d{day:02}h{h:02}"), at(2026, 3, day, h)));
            }
        }
        v
    }

    #[test]
    fn keep_daily_keeps_the_newest_of_each_day_like_restic() {
        let p = Policy {
            keep_daily: Some(3),
            ..Policy::default()
        };
        let d = decide(&p, p.check("d").unwrap(), &four_a_day());
        assert_eq!(kept(&d), ["d10h23", "d09h23", "d08h23"]);
        assert_eq!(reasons(&d, "d09h23"), ["keep_daily (2026-03-09)"]);
        assert_eq!(reasons(&d, "d10h06"), ["no rule keeps it"]);
        assert_eq!(d.len(), 40, "every backup is decided");
    }

    #[test]
    fn rules_combine_and_each_reason_is_named() {
        let p = Policy {
            keep_last: Some(2),
            keep_daily: Some(2),
            keep_weekly: Some(2),
            ..Policy::default()
        };
        let d = decide(&p, p.check("d").unwrap(), &four_a_day());
        // 2026-03-10 is in ISO week 11, 03-08 (a Sunday) ends week 10.
        assert_eq!(kept(&d), ["d10h23", "d10h18", "d09h23", "d08h23"]);
        assert_eq!(
            reasons(&d, "d10h23"),
            [
                "newest completed backup of the dataset",
                "keep_last",
                "keep_daily (2026-03-10)",
                "keep_weekly (2026-W11)"
            ]
        );
        assert_eq!(reasons(&d, "d08h23"), ["keep_weekly (2026-W10)"]);
    }

    #[test]
    fn calendar_rules_use_the_policys_time_zone() {
        // 23:00 UTC on the 9th is already the 10th in Tokyo.
        let b = vec![
            backup("late", at(2026, 3, 9, 23)),
            backup("early", at(2026, 3, 9, 10)),
        ];
        let utc = Policy {
            keep_daily: Some(2),
            ..Policy::default()
        };
        let d = decide(&utc, utc.check("d").unwrap(), &b);
        assert_eq!(kept(&d), ["late"]);
        let tokyo = Policy {
            timezone: Some("Asia/Tokyo".into()),
            ..utc
        };
        let d = decide(&tokyo, tokyo.check("d").unwrap(), &b);
        assert_eq!(kept(&d), ["late", "early"]);
    }

    #[test]
    fn monthly_and_yearly_count_periods_that_have_a_backup() {
        let b: Vec<Candidate> = [(2024, 1), (2024, 6), (2025, 2), (2025, 11), (2026, 3)]
            .iter()
            .map(|(y, m)| backup(&format!("{y}-{m}"), at(*y, *m, 15, 12)))
            .collect();
        let p = Policy {
            keep_monthly: Some(2),
            keep_yearly: Some(3),
            ..Policy::default()
        };
        let d = decide(&p, p.check("d").unwrap(), &b);
        assert_eq!(kept(&d), ["2026-3", "2025-11", "2024-6"]);
    }

    #[test]
    fn keep_within_counts_from_the_newest_completed_backup_not_from_now() {
        let b = vec![
            backup("new", at(2020, 5, 1, 0)),
            backup("ten-days", at(2020, 4, 21, 0)),
            backup("old", at(2019, 1, 1, 0)),
        ];
        let p = Policy::seeds_default();
        let d = decide(&p, p.check("d").unwrap(), &b);
        // Years without a backup since do not expire the last ones.
        assert_eq!(kept(&d), ["new", "ten-days"]);
        assert_eq!(reasons(&d, "ten-days"), ["keep_within 90d"]);
    }

    #[test]
    fn compliance_backups_are_kept_seven_years() {
        let mut c = backup("audit-2020", at(2020, 1, 1, 0));
        c.tags = vec!["compliance".into()];
        let mut c_old = backup("audit-2018", at(2018, 1, 1, 0));
        c_old.tags = vec!["compliance".into()];
        let b = vec![
            backup("now", at(2026, 1, 1, 0)),
            c,
            c_old,
            backup("regular-2020", at(2020, 1, 1, 0)),
        ];
        let p = Policy::seeds_default();
        let d = decide(&p, p.check("d").unwrap(), &b);
        assert_eq!(kept(&d), ["now", "audit-2020"]);
        assert_eq!(
            reasons(&d, "audit-2020"),
            ["keep_tagged_within compliance 2555d"]
        );
        let forever = Policy {
            keep_last: Some(1),
            keep_tag: vec!["compliance".into()],
            ..Policy::default()
        };
        let d = decide(&forever, forever.check("d").unwrap(), &b);
        assert_eq!(kept(&d), ["now", "audit-2020", "audit-2018"]);
    }

    #[test]
    fn only_completed_backups_count_and_the_newest_completed_always_stays() {
        let mut failed = backup("failed", at(2026, 3, 10, 12));
        failed.status = Status::Failed;
        let mut running = backup("running", at(2026, 3, 10, 13));
        running.status = Status::Unfinished;
        let mut degraded = backup("degraded", at(2026, 3, 1, 0));
        degraded.status = Status::Degraded;
        let b = vec![
            failed,
            running,
            degraded,
            backup("ok-1", at(2026, 3, 9, 0)),
            backup("ok-2", at(2026, 3, 8, 0)),
        ];
        let p = Policy {
            keep_last: Some(1),
            ..Policy::default()
        };
        let d = decide(&p, p.check("d").unwrap(), &b);
        // keep_last 1 is spent on ok-1, not on the failed or running one.
        assert_eq!(kept(&d), ["running", "ok-1", "degraded"]);
        assert_eq!(reasons(&d, "failed"), ["failed"]);
        assert_eq!(reasons(&d, "running"), ["unfinished"]);
        // A policy whose rules keep nothing still keeps the newest.
        let tag_only = Policy {
            keep_tag: vec!["never-used".into()],
            ..Policy::default()
        };
        let d = decide(&tag_only, tag_only.check("d").unwrap(), &b);
        assert_eq!(
            reasons(&d, "ok-1"),
            ["newest completed backup of the dataset"]
        );
        assert!(!d.iter().find(|d| d.backup_id == "ok-2").unwrap().keep);
    }

    #[test]
    fn a_held_backup_is_kept_whatever_the_rules_say() {
        let mut held = backup("held", at(2001, 1, 1, 0));
        held.hold = Some("litigation 42".into());
        let mut held_failed = backup("held-failed", at(2002, 1, 1, 0));
        held_failed.status = Status::Failed;
        held_failed.hold = Some("inquiry".into());
        let b = vec![backup("now", at(2026, 1, 1, 0)), held, held_failed];
        let p = Policy {
            keep_last: Some(1),
            ..Policy::default()
        };
        let d = decide(&p, p.check("d").unwrap(), &b);
        assert_eq!(kept(&d), ["now", "held-failed", "held"]);
        assert_eq!(reasons(&d, "held"), ["legal hold: litigation 42"]);
    }

    #[test]
    fn a_compliance_floor_keeps_what_the_policy_drops() {
        let mut old = backup("old", at(2020, 1, 1, 0));
        old.floor = Some("compliance sox/sox-retention: until 2027-01-01".into());
        let b = vec![
            backup("now", at(2026, 1, 1, 0)),
            old,
            backup("older", at(2019, 1, 1, 0)),
        ];
        let p = Policy {
            keep_last: Some(1),
            ..Policy::default()
        };
        let d = decide(&p, p.check("d").unwrap(), &b);
        assert_eq!(kept(&d), ["now", "old"]);
        assert_eq!(
            reasons(&d, "old"),
            ["compliance sox/sox-retention: until 2027-01-01"]
        );
    }

    #[test]
    fn policies_that_would_keep_nothing_or_name_no_real_zone_are_refused() {
        let err = Policy::default().check("db").unwrap_err();
        assert_eq!(err, PolicyError::NoKeepRule("db".into()));
        assert!(err.to_string().contains("no keep rule"), "{err}");
        let zeros = Policy {
            keep_last: Some(0),
            keep_daily: Some(0),
            ..Policy::default()
        };
        assert!(matches!(zeros.check("db"), Err(PolicyError::NoKeepRule(_))));
        let zone = Policy {
            keep_last: Some(1),
            timezone: Some("Mars/Olympus".into()),
            ..Policy::default()
        };
        let err = zone.check("db").unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus"), "{err}");
        let zero_span = Policy {
            keep_within: Some(Span::days(0)),
            ..Policy::default()
        };
        assert!(zero_span
            .check("db")
            .unwrap_err()
            .to_string()
            .contains("keep_within"));
    }

    #[test]
    fn a_policy_reads_from_config_and_refuses_unknown_keys() {
        let p: Policy = serde_json::from_str(
            r#"{"keep_daily": 7, "keep_within": "90d", "keep_tagged_within": {"compliance": "7y"}, "timezone": "Europe/Berlin"}"#,
        )
        .unwrap();
        assert_eq!(p.keep_daily, Some(7));
        assert_eq!(p.keep_within, Some(Span::days(90)));
        assert!(p.check("x").is_ok());
        let err = serde_json::from_str::<Policy>(r#"{"keep_dialy": 7}"#).unwrap_err();
        assert!(err.to_string().contains("keep_dialy"), "{err}");
        let err = serde_json::from_str::<Policy>(r#"{"keep_within": "soon"}"#).unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
    }
}
