//! `cairn cost`: what each network holds, what was read back from it and
//! asked of it, what that costs a month at the configured prices, and the
//! next 12 months under the schedules and retention policies as they are.
//!
//! Everything is counted from the ledger (`cairn_ledger::usage`), never by
//! listing a network: the same figures for every process, lowered by
//! forget and the collector as they record what they deleted. The months
//! ahead are `cairn_lifecycle::projection`'s model; the prices are the
//! operator's (`price_gb_month`, `price_gb_egress`, `price_gb_once` per
//! network, in one currency), per decimal GB as providers quote them.

use crate::schedule::{self, SchedulesError};
use cairn_events::NetworkRequests;
use cairn_ledger::{query, usage};
use cairn_lifecycle::projection::{self, Trend};
use cairn_lifecycle::{Candidate, Policy, PolicyError, Schedule, ScheduleExt, Status};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Schedules(#[from] SchedulesError),
    #[error(transparent)]
    Schedule(#[from] cairn_lifecycle::ScheduleError),
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
}

/// A network's prices (any one currency, per decimal GB).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Prices {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gb_month: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gb_egress: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gb_once: Option<f64>,
}

impl Prices {
    pub fn any(&self) -> bool {
        self.gb_month.is_some() || self.gb_egress.is_some() || self.gb_once.is_some()
    }
}

/// What the configuration says of one network.
#[derive(Debug, Clone)]
pub struct Terms {
    pub network: String,
    pub quota_bytes: Option<u64>,
    pub prices: Prices,
    /// False for a network that keeps everything written to it.
    pub can_delete: bool,
}

/// A month's cost on one network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Monthly {
    /// What it holds, for a month.
    pub storage: f64,
    /// What was read back.
    pub egress: f64,
    /// What was written, where writing is paid once (permanent storage).
    pub once: f64,
    pub total: f64,
}

const GB: f64 = 1e9;

/// The cost of holding `held` bytes for a month, reading `read` back and
/// writing `written` where writes are paid once.
pub fn monthly(p: &Prices, held: u64, read: u64, written: u64) -> Monthly {
    let gb = |b: u64| b as f64 / GB;
    let storage = gb(held) * p.gb_month.unwrap_or(0.0);
    let egress = gb(read) * p.gb_egress.unwrap_or(0.0);
    let once = gb(written) * p.gb_once.unwrap_or(0.0);
    Monthly {
        storage,
        egress,
        once,
        total: storage + egress + once,
    }
}

/// One network now.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkCost {
    pub network: String,
    /// Objects and bytes it holds (of the dataset's backups, with `--dataset`).
    pub objects: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    /// Bytes written in the last 30 days that are still there.
    pub written_30d: u64,
    /// Requests and bytes each way in the last 30 days, and since the
    /// ledger began (all purposes; not per dataset).
    pub last_30d: NetworkRequests,
    pub all_time: NetworkRequests,
    /// Egress in the last 30 days by what read it (`restore`, `drill`,
    /// `serve`...).
    pub egress_30d_by: BTreeMap<String, u64>,
    pub prices: Prices,
    /// At the prices: holding what it holds for a month, the last 30 days'
    /// egress and the last 30 days' writes.
    pub monthly: Monthly,
}

/// One month ahead.
#[derive(Debug, Clone, Serialize)]
pub struct MonthCost {
    pub month: String,
    /// Backups the schedules take in it.
    pub backups: u64,
    pub networks: Vec<MonthNetwork>,
    pub total: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonthNetwork {
    pub network: String,
    /// Bytes held at the month's end.
    pub bytes: u64,
    /// Bytes written in it.
    pub written: u64,
    pub cost: Monthly,
}

/// What `cairn cost` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    pub as_of: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    pub networks: Vec<NetworkCost>,
    /// The sum of every network's month.
    pub monthly_total: f64,
    pub projection: Vec<MonthCost>,
    /// What the figures rest on, and what they leave out.
    pub notes: Vec<String>,
}

/// How to ask the ledger and the configuration.
pub struct Ask<'a> {
    pub terms: &'a [Terms],
    pub dataset: Option<&'a str>,
    /// Each dataset's retention policy and its name.
    pub policy_for: &'a dyn Fn(&str) -> (Policy, String),
    /// The configured schedules (those added at run time come from the ledger).
    pub schedules: &'a [Schedule],
    pub selector: &'a cairn_compliance::Selector,
    pub now: DateTime<Utc>,
    pub months: u32,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The report.
pub async fn report(pg: &Client, a: &Ask<'_>) -> Result<CostReport, CostError> {
    let since = rfc3339(a.now - chrono::Duration::days(30));
    let mut notes = Vec::new();
    let held: BTreeMap<String, usage::Held> = usage::held(pg, a.dataset)
        .await?
        .into_iter()
        .map(|h| (h.network.clone(), h))
        .collect();
    let written: BTreeMap<String, u64> = usage::stored_since(pg, &since, a.dataset)
        .await?
        .into_iter()
        .collect();
    let recent: BTreeMap<String, NetworkRequests> = usage::traffic(pg, Some(&since))
        .await?
        .into_iter()
        .map(|t| (t.network.clone(), t))
        .collect();
    let ever: BTreeMap<String, NetworkRequests> = usage::traffic(pg, None)
        .await?
        .into_iter()
        .map(|t| (t.network.clone(), t))
        .collect();
    let mut by: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (net, purpose, bytes) in usage::egress_by_purpose(pg, Some(&since)).await? {
        by.entry(net).or_default().insert(purpose, bytes);
    }
    if a.dataset.is_some() {
        notes.push(
            "egress and requests are counted per network, not per dataset: with --dataset they are shown but not costed"
                .into(),
        );
    }
    let mut names: Vec<String> = a.terms.iter().map(|t| t.network.clone()).collect();
    for n in held.keys().chain(ever.keys()) {
        if !names.contains(n) {
            names.push(n.clone());
            notes.push(format!(
                "network {n} is in the ledger but not in the configuration: no prices"
            ));
        }
    }
    let terms = |n: &str| a.terms.iter().find(|t| t.network == n);
    let mut networks = Vec::new();
    for n in &names {
        let h = held.get(n).cloned().unwrap_or_default();
        let prices = terms(n).map(|t| t.prices).unwrap_or_default();
        let last_30d = recent.get(n).cloned().unwrap_or(NetworkRequests {
            network: n.clone(),
            ..Default::default()
        });
        let read = if a.dataset.is_some() {
            0
        } else {
            last_30d.bytes_read
        };
        let w = written.get(n).copied().unwrap_or(0);
        if !prices.any() && terms(n).is_some() {
            notes.push(format!("network {n} has no prices configured: costed at 0"));
        }
        networks.push(NetworkCost {
            network: n.clone(),
            objects: h.objects,
            bytes: h.bytes,
            quota_bytes: terms(n).and_then(|t| t.quota_bytes),
            written_30d: w,
            all_time: ever.get(n).cloned().unwrap_or(NetworkRequests {
                network: n.clone(),
                ..Default::default()
            }),
            last_30d,
            egress_30d_by: by.remove(n).unwrap_or_default(),
            prices,
            monthly: monthly(&prices, h.bytes, read, w),
        });
    }
    let monthly_total = networks.iter().map(|n| n.monthly.total).sum();
    let projection = project(pg, a, &networks, &mut notes).await?;
    Ok(CostReport {
        as_of: rfc3339(a.now),
        dataset: a.dataset.map(str::to_string),
        networks,
        monthly_total,
        projection,
        notes,
    })
}

/// The months ahead: each dataset's trend, from the ledger and the
/// configuration, through the model, priced.
async fn project(
    pg: &Client,
    a: &Ask<'_>,
    now: &[NetworkCost],
    notes: &mut Vec<String>,
) -> Result<Vec<MonthCost>, CostError> {
    let mut held_by: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (dataset, net, bytes) in usage::held_by_dataset(pg).await? {
        held_by.entry(dataset).or_default().insert(net, bytes);
    }
    let holds: BTreeMap<String, String> = query::holds(pg)
        .await?
        .into_iter()
        .map(|h| (h.backup_id, h.reason))
        .collect();
    let schedules = schedule::list(pg, a.schedules, a.now).await?;
    // Backups the catalogue shows, per dataset, oldest first.
    let mut rows: BTreeMap<String, Vec<query::BackupRow>> = BTreeMap::new();
    for b in query::list_backups(pg, a.dataset, None).await? {
        if b.status == "shredded" || matches!(b.source, Some(cairn_events::Source::Wal { .. })) {
            continue;
        }
        rows.entry(b.dataset.clone()).or_default().push(b);
    }
    for s in &schedules {
        if a.dataset.is_none_or(|d| d == s.schedule.dataset) {
            rows.entry(s.schedule.dataset.clone()).or_default();
        }
    }
    let mut trends = Vec::new();
    for (dataset, mut backups) in rows {
        backups.reverse();
        let (policy, policy_name) = (a.policy_for)(&dataset);
        let tz = policy.check(&policy_name)?;
        let time = |b: &query::BackupRow| {
            b.requested_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let mut floors = BTreeMap::new();
        let mut candidates = Vec::new();
        let mut added = Vec::new();
        for b in &backups {
            let t = time(b);
            let status = match t {
                Some(_) => Status::from_ledger(&b.status),
                None => Status::Unfinished,
            };
            if let (Some(t), true) = (t, status != Status::Failed) {
                if let Some((until, _)) =
                    cairn_compliance::retention_floor(&a.selector.applying(&dataset, &b.tags), t)
                {
                    floors.insert(b.backup_id.clone(), until);
                }
            }
            if status == Status::Completed {
                added.push(b.stats.as_ref().map(|s| s.bytes_stored).unwrap_or(0));
            }
            candidates.push(Candidate {
                backup_id: b.backup_id.clone(),
                tags: b.tags.clone(),
                status,
                time: t.unwrap_or(DateTime::UNIX_EPOCH),
                hold: holds.get(&b.backup_id).cloned(),
                floor: None,
            });
        }
        let mut cadences = Vec::new();
        let mut future_floor = None;
        for s in schedules.iter().filter(|s| s.schedule.dataset == dataset) {
            cadences.push((s.schedule.check()?, s.schedule.tags.clone()));
            let profiles = a.selector.applying(&dataset, &s.schedule.tags);
            if let Some((until, _)) = cairn_compliance::retention_floor(&profiles, a.now) {
                let f = until - a.now;
                future_floor = Some(future_floor.map_or(f, |g: chrono::Duration| g.max(f)));
            }
        }
        let change = projection::change_per_backup(&added, 10);
        if change.is_none() && !cadences.is_empty() {
            notes.push(format!(
                "dataset {dataset}: fewer than two completed backups, no change rate yet: its scheduled backups are projected to add nothing"
            ));
        }
        if cadences.is_empty() && !backups.is_empty() {
            notes.push(format!(
                "dataset {dataset}: no schedule, so no new backups in the projection"
            ));
        }
        trends.push(Trend {
            held: held_by.remove(&dataset).unwrap_or_default(),
            dataset,
            policy,
            tz,
            schedules: cadences,
            floors,
            floor: future_floor,
            backups: candidates,
            change: change.unwrap_or(0),
        });
    }
    // What the model does not cover (objects of backups the ledger lost
    // track of, datasets with nothing left to decide) stays as it is.
    let other: BTreeMap<String, u64> = now
        .iter()
        .map(|n| {
            let modelled: u64 = trends.iter().filter_map(|t| t.held.get(&n.network)).sum();
            (n.network.clone(), n.bytes.saturating_sub(modelled))
        })
        .collect();
    let permanent: Vec<String> = a
        .terms
        .iter()
        .filter(|t| !t.can_delete)
        .map(|t| t.network.clone())
        .collect();
    let months = projection::project(&trends, &other, &permanent, a.now, a.months);
    Ok(months
        .into_iter()
        .map(|m| {
            let networks: Vec<MonthNetwork> = now
                .iter()
                .map(|n| {
                    let bytes = m.held.get(&n.network).copied().unwrap_or(0);
                    let written = m.added.get(&n.network).copied().unwrap_or(0);
                    // Egress at the last 30 days' rate.
                    let read = if a.dataset.is_some() {
                        0
                    } else {
                        n.last_30d.bytes_read
                    };
                    MonthNetwork {
                        network: n.network.clone(),
                        bytes,
                        written,
                        cost: monthly(&n.prices, bytes, read, written),
                    }
                })
                .collect();
            MonthCost {
                total: networks.iter().map(|n| n.cost.total).sum(),
                month: m.month,
                backups: m.backups,
                networks,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_is_storage_egress_and_once_at_decimal_gigabytes() {
        let p = Prices {
            gb_month: Some(0.004),
            gb_egress: Some(0.007),
            gb_once: None,
        };
        let m = monthly(&p, 150_000_000_000, 2_000_000_000, 5_000_000_000);
        assert!((m.storage - 0.6).abs() < 1e-9, "{m:?}");
        assert!((m.egress - 0.014).abs() < 1e-9, "{m:?}");
        assert_eq!(m.once, 0.0);
        assert!((m.total - 0.614).abs() < 1e-9);
        let arweave = Prices {
            gb_once: Some(8.0),
            ..Prices::default()
        };
        let m = monthly(&arweave, 10_000_000_000, 0, 500_000_000);
        assert_eq!((m.storage, m.once), (0.0, 4.0));
    }
}
