//! Applying the retention policies: every backup the [`policy`] plan drops
//! is forgotten through the retention worker, as `cairn forget` would
//! (`cairn retention apply`, and the service's own rounds,
//! `[retention] apply_interval_secs`).
//!
//! Only drop decisions act, and a decision changes nothing by itself: the
//! worker still refuses a held backup or one still being written when the
//! request reaches it. Chunks stay for the collector.
//!
//! [`policy`]: crate::policy

use crate::policy::{self, PlanError};
use cairn_bus::claims::Claims;
use cairn_bus::client::{request_forget_seeded, ForgetAnswer};
use cairn_bus::{Bus, BusError};
use cairn_events::BackupId;
use cairn_lifecycle::Policy;
use futures::{stream, StreamExt};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("backup id {id:?} in the ledger: {reason}")]
    BadId { id: String, reason: String },
}

/// What became of one dropped backup.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Forgotten {
        objects_deleted: u64,
    },
    /// The worker deleted nothing, for this reason.
    Refused {
        reason: String,
    },
    /// No worker answered in time; the request stays queued.
    NoAnswer,
}

#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub dataset: String,
    pub backup_id: String,
    /// The rules' verdict, e.g. "no rule keeps it".
    pub reasons: Vec<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// Backups the plan keeps.
    pub kept: usize,
    pub applied: Vec<Applied>,
}

impl ApplyReport {
    pub fn forgotten(&self) -> usize {
        self.applied
            .iter()
            .filter(|a| matches!(a.outcome, Outcome::Forgotten { .. }))
            .count()
    }
}

/// A dataset's policy and the name errors give it (`RetentionConfig::policy_for`).
pub type PolicyFor = Arc<dyn Fn(&str) -> (Policy, String) + Send + Sync>;

pub struct Applier {
    pub bus: Bus,
    /// The ledger (read only): backups and holds.
    pub pg: tokio_postgres::Client,
    pub policy_for: PolicyFor,
    /// The compliance profiles, whose retention rules keep backups longer.
    pub selector: cairn_compliance::Selector,
    /// Recorded as the forget's `requested_by`.
    pub requested_by: String,
    pub source: String,
    /// How long to wait for the worker's answer to each forget.
    pub timeout: Duration,
}

impl Applier {
    /// Plans every dataset (or `dataset`) and forgets what the plan drops.
    /// `round` seeds the requests' event ids: one round asked twice (by two
    /// replicas) is asked once.
    pub async fn apply(
        &self,
        dataset: Option<&str>,
        round: &str,
    ) -> Result<ApplyReport, ApplyError> {
        let plans = policy::plan(
            &self.pg,
            dataset,
            |d| (self.policy_for)(d),
            &self.selector,
            chrono::Utc::now(),
        )
        .await?;
        let mut report = ApplyReport::default();
        let mut drops = Vec::new();
        for p in &plans {
            for d in &p.decisions {
                if d.keep {
                    report.kept += 1;
                    continue;
                }
                let id: BackupId = d.backup_id.parse().map_err(|e| ApplyError::BadId {
                    id: d.backup_id.clone(),
                    reason: format!("{e}"),
                })?;
                drops.push((p.dataset.clone(), id, d.reasons.clone()));
            }
        }
        let answers: Vec<Result<Applied, BusError>> = stream::iter(drops)
            .map(|(dataset, id, reasons)| async move {
                let seed = format!("policy\n{round}");
                let answer = request_forget_seeded(
                    &self.bus,
                    &self.source,
                    &id,
                    self.requested_by.clone(),
                    seed.as_bytes(),
                    self.timeout,
                )
                .await?;
                let outcome = match answer {
                    ForgetAnswer::Forgotten(f) => Outcome::Forgotten {
                        objects_deleted: f.objects_deleted,
                    },
                    ForgetAnswer::Refused(reason) => Outcome::Refused { reason },
                    ForgetAnswer::NoAnswer => Outcome::NoAnswer,
                };
                Ok(Applied {
                    dataset,
                    backup_id: id.to_string(),
                    reasons,
                    outcome,
                })
            })
            .buffered(4)
            .collect()
            .await;
        for a in answers {
            report.applied.push(a?);
        }
        Ok(report)
    }
}

/// Applies the policies every `every`, one replica per round (a claim on
/// the schedules stream); a failed round is logged and the next one tries
/// again.
pub async fn run(a: Applier, every: Duration) -> Result<(), BusError> {
    let claims = Claims::new(&a.bus);
    let secs = every.as_secs().max(1) as i64;
    loop {
        let round = chrono::Utc::now().timestamp() / secs;
        match claims.claim_round("retention-apply", round).await {
            Ok(true) => match a.apply(None, &round.to_string()).await {
                Ok(r) => tracing::info!(
                    kept = r.kept,
                    dropped = r.applied.len(),
                    forgotten = r.forgotten(),
                    "retention policies applied"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "applying the retention policies failed; trying again next round")
                }
            },
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "claiming a retention round failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1).min(every)) => {}
            () = cairn_ledger::db::closed(&a.pg) => {
                return Err(BusError::Stopped(cairn_ledger::db::gone("the retention applier")));
            }
        }
    }
}
