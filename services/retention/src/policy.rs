//! `cairn retention plan`: every backup of every dataset (or one), keep or
//! drop under its dataset's policy, with the rules that decided. The
//! decision itself is `cairn_lifecycle::decide`; this reads the ledger
//! (backups and legal holds) and groups by dataset.

use cairn_ledger::query;
use cairn_lifecycle::{decide, decide_wal, Base, Candidate, Decision, Policy, PolicyError, Status};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
}

/// One dataset's plan.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetPlan {
    pub dataset: String,
    /// Where the policy came from (`retention.policies.<dataset>` or
    /// `retention.default_policy`).
    pub policy_name: String,
    pub policy: Policy,
    /// Newest first.
    pub decisions: Vec<Decision>,
}

impl DatasetPlan {
    pub fn dropped(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.keep)
    }
}

/// The plan for every dataset in the ledger, or only `dataset`.
/// `policy_for` names each dataset's policy (`RetentionConfig::policy_for`);
/// the compliance profiles `selector` applies keep a backup, whatever the
/// policy says, until their retention rules let it go (judged at `now`).
pub async fn plan(
    pg: &Client,
    dataset: Option<&str>,
    policy_for: impl Fn(&str) -> (Policy, String),
    selector: &cairn_compliance::Selector,
    now: DateTime<Utc>,
) -> Result<Vec<DatasetPlan>, PlanError> {
    let holds: HashMap<String, String> = query::holds(pg)
        .await?
        .into_iter()
        .map(|h| (h.backup_id, h.reason))
        .collect();
    let mut by_dataset: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    // Archived WAL files, decided by what the kept base backups need.
    let mut wal_of: BTreeMap<String, Vec<(Candidate, String)>> = BTreeMap::new();
    let mut bases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in query::list_backups(pg, dataset, None).await? {
        let time = b
            .requested_at
            .as_deref()
            .or(b.finished_at.as_deref())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        // A backup the ledger cannot date is not weighed by any rule: it is
        // kept, as if unfinished.
        let status = match time {
            Some(_) => Status::from_ledger(&b.status),
            None => Status::Unfinished,
        };
        let floor = time.filter(|_| status != Status::Failed).and_then(|t| {
            cairn_compliance::floor_reason(&selector.applying(&b.dataset, &b.tags), t, now)
        });
        let candidate = Candidate {
            floor,
            hold: holds.get(&b.backup_id).cloned(),
            backup_id: b.backup_id.clone(),
            tags: b.tags,
            status,
            time: time.unwrap_or(DateTime::UNIX_EPOCH),
        };
        match &b.source {
            Some(cairn_events::Source::Wal { name, .. }) => {
                wal_of
                    .entry(b.dataset.clone())
                    .or_default()
                    .push((candidate, name.clone()));
                continue;
            }
            Some(cairn_events::Source::PostgresBase { .. }) => {
                bases
                    .entry(b.dataset.clone())
                    .or_default()
                    .push(b.backup_id);
            }
            _ => {}
        }
        by_dataset
            .entry(b.dataset.clone())
            .or_default()
            .push(candidate);
    }
    for d in wal_of.keys() {
        by_dataset.entry(d.clone()).or_default();
    }
    let mut out = Vec::new();
    for (dataset, candidates) in by_dataset {
        let (policy, policy_name) = policy_for(&dataset);
        let tz = policy.check(&policy_name)?;
        let mut decisions = decide(&policy, tz, &candidates);
        if let Some(wal) = wal_of.get(&dataset) {
            let kept: HashMap<&str, bool> = decisions
                .iter()
                .map(|d| (d.backup_id.as_str(), d.keep))
                .collect();
            let ranges: HashMap<String, Option<String>> = query::base_backups(pg, &dataset)
                .await?
                .into_iter()
                .map(|(row, wal)| (row.backup_id, wal.map(|w| w.start_segment)))
                .collect();
            let dataset_bases: Vec<Base> = bases
                .get(&dataset)
                .into_iter()
                .flatten()
                .map(|id| Base {
                    kept: kept.get(id.as_str()).copied().unwrap_or(true),
                    start_segment: ranges.get(id).cloned().flatten(),
                    backup_id: id.clone(),
                })
                .collect();
            decisions.extend(decide_wal(&dataset_bases, wal));
        }
        out.push(DatasetPlan {
            decisions,
            dataset,
            policy_name,
            policy,
        });
    }
    Ok(out)
}
