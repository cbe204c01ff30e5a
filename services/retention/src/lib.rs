//! The retention stage: forgetting backups, collecting the chunks nothing
//! references any more, legal holds, policies and schedules.
//!
//! Forgetting and deleting chunks are separate. `forget` takes a backup out
//! of the catalogue: its manifest first (so the backup is gone even if what
//! follows is interrupted), then its chunk list, on every network that can
//! delete. It deletes no chunk, so it is safe beside running backups. The
//! [`collect`]or later deletes the chunks no remaining chunk list names, in
//! two phases with a grace period. Neither needs a key: chunk lists are
//! public.
//!
//! Nothing is deleted on incomplete knowledge (invariant 7): a backup under
//! legal hold is never forgotten, and the collector deletes nothing where a
//! reference could be missing.
//!
//! * [`references`]: what the networks say is still referenced.
//! * [`plan`]: which running backups hold off a sweep (pure, tested).
//! * [`gc`]: what a collection marks, revives and deletes (pure, tested).
//! * [`collect`]: the collector.
//! * [`lease`]: one collector at a time.
//! * [`hold`]: legal holds, which nothing deletes.
//! * [`policy`]: each dataset's retention plan (`cairn_lifecycle` decides).
//! * [`apply`]: forgets what the plan drops.
//! * [`schedule`]: the configured schedules and their next and last runs.
//! * [`scheduler`]: fires them, once per slot across replicas.
//! * [`cost`]: what the networks hold and cost, now and over the next
//!   months (`cairn cost`).
//! * [`drill`]: restore drills, the one part of this stage that needs the
//!   key (it decrypts, to prove backups come back).

pub mod apply;
pub mod collect;
pub mod cost;
pub mod drill;
pub mod gc;
pub mod hold;
pub mod lease;
pub mod plan;
pub mod policy;
pub mod references;
pub mod schedule;
pub mod scheduler;
pub mod vitals;

use cairn_bus::{Bus, BusError, Delivery, Failure, Handler};
use cairn_events::{decode, BackupId, DecodeError, Envelope, Event, Forgotten, ObjectKey, Stage};
use cairn_networks::NetworkError;
use cairn_repo::{layout, Repository};
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
    /// An unfinished backup idle for longer than this was abandoned, and
    /// may be forgotten (`[retention] running_backup_secs`).
    pub running_window: Duration,
    /// The compliance profiles: their retention rules refuse a forget
    /// before the backup's time is up, whoever asks.
    pub selector: cairn_compliance::Selector,
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

        // A backup under legal hold is never deleted.
        if let Some(h) = cairn_ledger::query::hold(&self.pg, backup.as_str()).await? {
            return Err(ForgetError::Refused(format!(
                "backup {backup} is under legal hold since {} by {} ({}); nothing was deleted. Lift the hold first with `cairn release {backup} --reason ...`",
                h.held_at, h.held_by, h.reason
            )));
        }
        // A compliance rule's retention, whoever asks.
        if let Some(b) = cairn_ledger::query::backup(&self.pg, backup.as_str()).await? {
            let profiles = self.selector.applying(&b.dataset, &b.tags);
            if let Some(reason) = cairn_compliance::kept_by_rule(
                &profiles,
                &b.status,
                b.requested_at.as_deref(),
                b.finished_at.as_deref(),
                chrono::Utc::now(),
            ) {
                return Err(ForgetError::Refused(format!(
                    "backup {backup} must be kept ({reason}); nothing was deleted"
                )));
            }
        }
        // One still being written would write its chunk list back.
        let unfinished = cairn_ledger::query::unfinished_backups(&self.pg).await?;
        if let Some(u) = unfinished.iter().find(|u| {
            u.backup_id == backup.as_str() && u.idle_secs <= self.running_window.as_secs()
        }) {
            return Err(ForgetError::Refused(format!(
                "backup {backup} is still being written ({}); nothing was deleted. Forget it once it has finished",
                u.status
            )));
        }

        // Manifest first, then the chunk list; the chunks are the collector's.
        let mut deleted = 0u64;
        for net in self.repo.networks() {
            if !deleting_from.iter().any(|n| n == net.name()) {
                continue;
            }
            let manifest = layout::object(&ObjectKey::Manifest {
                backup_id: backup.clone(),
            });
            if net.exists(&manifest).await? {
                net.delete(&manifest).await?;
                deleted += 1;
            }
            for p in net.list(&layout::backup_dir(backup)).await? {
                net.delete(&p).await?;
                deleted += 1;
            }
        }
        Ok(Forgotten {
            objects_deleted: deleted,
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
                tracing::info!(backup = %env.backup_id, objects = f.objects_deleted, "forgotten");
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
    let worker = Arc::new(worker);
    let watched = worker.clone();
    tokio::select! {
        r = cairn_bus::worker::run(bus, Stage::Retention, None, 1, worker) => r,
        () = cairn_ledger::db::closed(&watched.pg) => Err(BusError::Stopped(
            "retention's PostgreSQL connection is gone; stopping, to be started again with a new one".into(),
        )),
    }
}
