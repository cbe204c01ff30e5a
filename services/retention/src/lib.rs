//! The retention stage. For now: `forget`. It removes a backup's manifest
//! first (so the backup is gone even if what follows is interrupted), then
//! its chunk list, then every chunk that no other backup's chunk list names.
//! It needs no key: chunk lists are public.
//!
//! Nothing is deleted on incomplete knowledge (invariant 7). A forget is
//! refused, deleting nothing and recording `forget.refused` with the reason,
//! when any network cannot list its backups or any backup's chunk list
//! cannot be read ([`references`]), or while a backup that may have
//! deduplicated against the doomed chunks is unfinished ([`plan`]). Policies,
//! schedules and a collector safe beside running backups come later.
//!
//! * [`references`]: what the networks say is still referenced.
//! * [`plan`]: what may be deleted (pure, tested).
//! * [`hold`]: legal holds, which nothing deletes.
//! * [`policy`]: each dataset's retention plan (`cairn_lifecycle` decides).
//! * [`schedule`]: the configured schedules and their next and last runs.
//! * [`scheduler`]: fires them, once per slot across replicas.

pub mod hold;
pub mod plan;
pub mod policy;
pub mod references;
pub mod schedule;
pub mod scheduler;

use cairn_bus::{Bus, BusError, Delivery, Failure, Handler};
use cairn_events::{decode, BackupId, DecodeError, Envelope, Event, Forgotten, ObjectKey, Stage};
use cairn_networks::NetworkError;
use cairn_repo::{layout, Repository};
use references::{Listing, ReferenceError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Why a forget did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("expected forget.requested on {subject}, got {kind}")]
    NotARequest { subject: String, kind: &'static str },
    /// Deleting is not safe now; nothing was deleted.
    #[error("{0}")]
    Refused(String),
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl From<ReferenceError> for ForgetError {
    fn from(e: ReferenceError) -> Self {
        ForgetError::Refused(format!(
            "cannot establish what is still referenced ({e}); nothing was deleted"
        ))
    }
}

impl From<ForgetError> for Failure {
    fn from(e: ForgetError) -> Self {
        match e {
            ForgetError::Decode(_) | ForgetError::NotARequest { .. } => Failure::permanent(e),
            // Refusals are recorded and acknowledged, never retried; the
            // others are a network, the database or the broker away mid-way
            // (deleting again is harmless).
            ForgetError::Refused(_)
            | ForgetError::Db(_)
            | ForgetError::Network(_)
            | ForgetError::Bus(_) => Failure::retry(e),
        }
    }
}

pub struct RetentionWorker {
    pub bus: Bus,
    pub repo: Repository,
    /// The ledger (read only): which backups are unfinished.
    pub pg: tokio_postgres::Client,
    /// An unfinished backup idle for longer than this no longer holds off
    /// a forget (`[retention] running_backup_secs`).
    pub running_window: Duration,
    pub source: String,
}

impl RetentionWorker {
    async fn forget(&self, backup: &BackupId) -> Result<Forgotten, ForgetError> {
        let networks: Vec<(String, bool)> = self
            .repo
            .networks()
            .iter()
            .map(|n| (n.name().to_string(), n.capabilities().can_delete))
            .collect();
        let (deleting_from, retained_on) = plan::split_networks(&networks);

        // 0. A backup under legal hold is never deleted.
        if let Some(h) = cairn_ledger::query::hold(&self.pg, backup.as_str()).await? {
            return Err(ForgetError::Refused(format!(
                "backup {backup} is under legal hold since {} by {} ({}); nothing was deleted. Lift the hold first with `cairn release {backup} --reason ...`",
                h.held_at, h.held_by, h.reason
            )));
        }

        // 1. No backup that may lean on these chunks is still being written.
        let unfinished = cairn_ledger::query::unfinished_backups(&self.pg).await?;
        let holding = plan::holding_off(
            &unfinished,
            backup.as_str(),
            &deleting_from,
            self.running_window.as_secs(),
        );
        if !holding.is_empty() {
            let list: Vec<String> = holding
                .iter()
                .map(|u| format!("{} (dataset {:?}, {})", u.backup_id, u.dataset, u.status))
                .collect();
            return Err(ForgetError::Refused(format!(
                "{} unfinished: it may share chunks with backup {backup}, so nothing was deleted; forget again once it has finished (`cairn list` shows its status)",
                list.join(", ")
            )));
        }

        // 2. Everything still referenced, or no deleting at all.
        let listing = Listing::read(&self.repo).await?;
        let doomed = listing.chunks_of(&self.repo, backup).await?;
        let mut live = HashSet::new();
        for other in listing.backups().filter(|b| *b != backup) {
            live.extend(listing.chunks_of(&self.repo, other).await?);
        }
        let delete = plan::unshared(&doomed, &live);

        // 3. Manifest, chunk list, then the unshared chunks.
        let mut deleted = 0u64;
        for net in self.repo.networks() {
            if !deleting_from.iter().any(|n| n == net.name()) {
                continue;
            }
            let manifest = layout::object(&ObjectKey::Manifest {
                backup_id: backup.clone(),
            });
            net.delete(&manifest).await?;
            for p in net.list(&layout::backup_dir(backup)).await? {
                net.delete(&p).await?;
            }
            for id in &delete {
                let object = ObjectKey::Chunk { id: *id };
                let path = layout::object(&object);
                if net.exists(&path).await? {
                    net.delete(&path).await?;
                    let env = Envelope::new(
                        self.source.clone(),
                        backup.clone(),
                        Event::ObjectDeleted {
                            network: net.name().to_string(),
                            object,
                        },
                        &[net.name().as_bytes(), path.as_bytes()],
                    );
                    self.bus.publish_event(&env).await?;
                    deleted += 1;
                }
            }
        }
        Ok(Forgotten {
            chunks_deleted: deleted,
            networks: deleting_from,
            retained_on,
        })
    }

    async fn handle_request(&self, d: &Delivery) -> Result<(), ForgetError> {
        let env: Envelope = decode(&d.payload, "event")?;
        if !matches!(env.event, Event::ForgetRequested { .. }) {
            return Err(ForgetError::NotARequest {
                subject: d.subject.clone(),
                kind: env.event.kind(),
            });
        }
        let event = match self.forget(&env.backup_id).await {
            Ok(f) => {
                tracing::info!(backup = %env.backup_id, chunks = f.chunks_deleted, "forgotten");
                Event::BackupForgotten(f)
            }
            Err(ForgetError::Refused(reason)) => {
                tracing::warn!(backup = %env.backup_id, %reason, "forget refused");
                Event::ForgetRefused { reason }
            }
            Err(e) => return Err(e),
        };
        let out = Envelope::answer(self.source.clone(), &env, event);
        Ok(self.bus.publish_event(&out).await?)
    }
}

#[async_trait::async_trait]
impl Handler for RetentionWorker {
    async fn handle(&self, d: &Delivery) -> Result<(), Failure> {
        Ok(self.handle_request(d).await?)
    }
}

/// Runs the retention worker until the process stops.
pub async fn run(worker: RetentionWorker) -> Result<(), BusError> {
    let bus = worker.bus.clone();
    cairn_bus::worker::run(bus, Stage::Retention, None, 1, Arc::new(worker)).await
}
