//! `cairn compliance check`, as a library call: reads the facts of the
//! backups in scope, judges each against the profiles that apply to it (and
//! any the caller names), and puts the findings in a [`Document`] with the
//! cited entries' proofs.

use crate::document::{self, BackupReport, Document, DocumentError};
use crate::evaluate::{evaluate, kept_by_rule, DatasetFacts, RepoFacts};
use crate::gather::{self, GatherError};
use crate::profile::{Profile, ProfileError, Selector};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::{BTreeMap, HashMap};
use tokio_postgres::Client;

/// Which backups to judge.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    Backup(String),
    Dataset(String),
    All,
}

#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error(transparent)]
    Gather(#[from] GatherError),
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
}

/// What the judge needs besides the ledger.
pub struct Judge<'a> {
    pub selector: &'a Selector,
    /// Profiles to apply to every backup in scope, besides those selected.
    pub also: Vec<String>,
    /// `[datasets.<name>] shreddable`.
    pub shreddable: &'a dyn Fn(&str) -> bool,
    pub repo: RepoFacts,
    /// Checkpoints a witness cosigned, by size.
    pub cosigned: &'a BTreeMap<u64, Vec<u8>>,
    /// The time rules are judged at (drills after it do not count).
    pub now: DateTime<Utc>,
    /// Judge this profile only (a report's), leaving out backups it does
    /// not apply to.
    pub only: Option<String>,
    /// Only backups taken in this period (both ends included).
    pub taken: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Judge<'_> {
    fn profiles(
        &self,
        dataset: &str,
        tags: &[String],
    ) -> Result<Vec<(String, Profile)>, ProfileError> {
        let mut p = self.selector.applying(dataset, tags);
        for name in &self.also {
            if !p.iter().any(|(n, _)| n == name) {
                p.push((name.clone(), self.selector.config.named(name)?));
            }
        }
        if let Some(only) = &self.only {
            p.retain(|(n, _)| n == only);
        }
        p.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(p)
    }

    async fn dataset(&self, pg: &Client, name: &str) -> Result<DatasetFacts, JudgeError> {
        let mut facts = gather::dataset(pg, name, (self.shreddable)(name), self.now).await?;
        for b in cairn_ledger::query::list_backups(pg, Some(name), None).await? {
            let profiles = self.selector.applying(&b.dataset, &b.tags);
            if let Some(r) = kept_by_rule(
                &profiles,
                &b.status,
                b.requested_at.as_deref(),
                b.finished_at.as_deref(),
                self.now,
            ) {
                facts.kept_by_rule.push(format!("{} ({r})", b.backup_id));
            }
        }
        Ok(facts)
    }

    /// Judges every backup in `scope` that a profile applies to (a backup
    /// named alone is reported even when none does, with no findings).
    pub async fn run(&self, pg: &Client, scope: &Scope) -> Result<Document, JudgeError> {
        for name in self.also.iter().chain(&self.only) {
            self.selector.config.named(name)?;
        }
        let ids = match scope {
            Scope::Backup(id) => vec![id.clone()],
            Scope::Dataset(d) => gather::backup_ids(pg, Some(d)).await?,
            Scope::All => gather::backup_ids(pg, None).await?,
        };
        let mut datasets: HashMap<String, DatasetFacts> = HashMap::new();
        let mut reports = Vec::new();
        for id in ids {
            let b = gather::backup(pg, &id).await?;
            if let Some((from, to)) = self.taken {
                if b.requested_at < from || b.requested_at > to {
                    continue;
                }
            }
            let profiles = self.profiles(&b.dataset, &b.tags)?;
            if profiles.is_empty() && (self.only.is_some() || !matches!(scope, Scope::Backup(_))) {
                continue;
            }
            if !datasets.contains_key(&b.dataset) {
                let facts = self.dataset(pg, &b.dataset).await?;
                datasets.insert(b.dataset.clone(), facts);
            }
            let ds = &datasets[&b.dataset];
            let findings = profiles
                .iter()
                .flat_map(|(name, p)| evaluate(name, p, &b, ds, &self.repo, self.now))
                .collect();
            reports.push(BackupReport {
                backup_id: b.backup_id.clone(),
                dataset: b.dataset.clone(),
                tags: b.tags.clone(),
                status: b.status.clone(),
                requested_at: b.requested_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                profiles: profiles.into_iter().map(|(n, _)| n).collect(),
                reasons: b.reasons.clone(),
                findings,
            });
        }
        Ok(document::build(
            pg,
            reports,
            self.cosigned,
            Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            self.now.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
        .await?)
    }
}
