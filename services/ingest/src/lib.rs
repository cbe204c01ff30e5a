//! The ingest stage: takes `backup.requested`, reads the source, and hands
//! new chunks to encrypt.
//!
//! * [`sources`]: the kinds of source (files, streams, PostgreSQL dumps and
//!   base backups, WAL files, MariaDB, Redis), one module each.
//! * [`source`]: reading a source's input (files, a stream, a tar stream)
//!   into chunks and tree records (blocking thread, bounded channel).
//! * [`job`]: one backup's ingest (dedup, compression, chunk list, manifest).
//! * [`ingest`]: one request, start to end; the worker and `cairn backup
//!   --stdin` (which alone can read its standard input) both run it.
//!
//! Ingest holds the chunk-id key only: it can name chunks but not read or
//! seal them.

pub mod chunker;
pub mod files_cache;
pub mod job;
pub mod quota;
pub mod source;
pub mod sources;
pub mod wal;

use cairn_bus::claims::Claims;
use cairn_bus::lease::Lease;
use cairn_bus::{Bus, BusError, Delivery, Failure, Handler};
use cairn_events::{decode, BackupId, BackupRequest, Envelope, Event, Outcome, Progress, Stage};
use job::{IngestContext, JobError};
use source::{Counters, Input};
use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Why a request could not be ingested now (a source at fault is not an
/// error: it is recorded as `backup.failed`).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("expected backup.requested, got {0}")]
    NotARequest(&'static str),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl From<IngestError> for Failure {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::NotARequest(_) => Failure::permanent(e),
            // Infrastructure: the chunk index or the broker.
            IngestError::Job(_) | IngestError::Bus(_) => Failure::retry(e),
        }
    }
}

/// Records a failed backup (the request or its source was at fault).
pub async fn publish_failure(
    bus: &Bus,
    source: &str,
    backup_id: &BackupId,
    reason: String,
) -> Result<(), BusError> {
    let env = Envelope::new(
        source,
        backup_id.clone(),
        Event::BackupFailed(Outcome {
            reasons: vec![reason.clone()],
            ..Default::default()
        }),
        &[reason.as_bytes()],
    );
    bus.publish_event(&env).await
}

/// Publishes progress on core NATS (never stored) until aborted.
pub fn report_progress(
    bus: &Bus,
    backup_id: &BackupId,
    counters: Arc<Counters>,
) -> tokio::task::JoinHandle<()> {
    let client = bus.client.clone();
    let subject = bus.subjects.progress(backup_id);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let p = Progress {
                bytes_read: counters.bytes_read.load(Ordering::Relaxed),
                bytes_total: counters.bytes_total.load(Ordering::Relaxed),
                files: counters.files.load(Ordering::Relaxed),
            };
            if let Ok(body) = serde_json::to_vec(&p) {
                let _ = client.publish(subject.clone(), body.into()).await;
            }
        }
    })
}

/// What a request reads: its source, or the stream the client hands
/// over. `Err` is the reason the backup fails.
fn open_input(req: &BackupRequest, client: Option<Box<dyn Read + Send>>) -> Result<Input, String> {
    sources::kind_of(&req.source).open(client)
}

/// Ingests the backup `request` asks for: records `backup.started`, reads
/// the source (or `stdin`, for a `--stdin` backup), and ends with
/// `backup.ingested`, or `backup.failed` naming what was wrong with the
/// source. `lease`, the worker's on this backup, is told the run's name.
pub async fn ingest(
    ctx: &IngestContext,
    request: &Envelope,
    stdin: Option<Box<dyn Read + Send>>,
    lease: Option<&Lease>,
) -> Result<(), IngestError> {
    let Event::BackupRequested(req) = &request.event else {
        return Err(IngestError::NotARequest(request.event.kind()));
    };
    let id = &request.backup_id;
    if let Some(reason) = job::refused_by_profile(ctx, req) {
        tracing::warn!(backup = %id, %reason, "refused by its compliance profile");
        return Ok(publish_failure(&ctx.bus, &ctx.source, id, reason).await?);
    }
    // Quotas next, still before the source is opened.
    let placed = match job::place(ctx, req).await {
        Ok(p) => p,
        Err(JobError::Source(reason)) => {
            tracing::warn!(backup = %id, %reason, "not placed");
            return Ok(publish_failure(&ctx.bus, &ctx.source, id, reason).await?);
        }
        Err(e) => return Err(e.into()),
    };
    let input = match open_input(req, stdin) {
        Ok(i) => i,
        Err(reason) => return Ok(publish_failure(&ctx.bus, &ctx.source, id, reason).await?),
    };
    let counters = Arc::new(Counters::default());
    let progress = report_progress(&ctx.bus, id, counters.clone());
    let result = job::run(ctx, request, req, input, counters, placed, lease).await;
    progress.abort();
    match result {
        Ok(ingested) => {
            tracing::info!(backup = %id, chunks = ingested.stats.chunks_total, new = ingested.stats.chunks_new, "ingested");
            Ok(())
        }
        Err(JobError::Source(reason)) => {
            Ok(publish_failure(&ctx.bus, &ctx.source, id, reason).await?)
        }
        Err(e) => Err(e.into()),
    }
}

struct IngestWorker {
    ctx: Arc<IngestContext>,
    /// The backups being ingested here, each behind its own lock.
    running: std::sync::Mutex<HashMap<BackupId, Arc<tokio::sync::Mutex<()>>>>,
    /// This process, as it signs its leases on backups.
    holder: String,
}

/// How long an ingest process's lease on a backup lasts unrenewed: twice
/// the consumer's `ack_wait` (renewed every third of it), and no less than
/// 10 s, so a busy machine's late renewal does not pass the backup on.
pub fn lease_ttl(ack_wait_secs: u64) -> Duration {
    Duration::from_secs((2 * ack_wait_secs).max(10))
}

/// What ends a backup's ingest: once the EVENTS stream holds one of these,
/// a delivery of its request is not ingested again.
const ENDED: [&str; 2] = ["backup.ingested", "backup.failed"];

impl IngestWorker {
    fn lock_of(&self, id: &BackupId) -> Arc<tokio::sync::Mutex<()>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.entry(id.clone()).or_default().clone()
    }

    fn done_with(&self, id: &BackupId, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        // Ours and the map's: nobody else waits for it.
        if Arc::strong_count(&lock) == 2 {
            running.remove(id);
        }
    }

    /// A request delivered again while its backup is being ingested (its
    /// acks late on a busy machine, or lost, as when JetStream is briefly
    /// without quorum), or after it was (its last ack lost), must not be
    /// ingested a second time beside the first: a second run seals its
    /// manifest, catalogue and chunk list under another data key, and what
    /// the networks keep and what the ledger records would come from
    /// different runs. So a backup is ingested by one delivery at a time
    /// in this process, by one process at a time across replicas (a lease
    /// on the RUNS stream, renewed while it runs), and not again once it
    /// has ended. A process that stops renewing (killed, frozen, its host
    /// cut off) has its backup taken over by another once the lease runs
    /// out, as a new run, and gives its own run up when it next finds the
    /// lease taken (not while it merely cannot reach JetStream: nobody can
    /// take the lease then, or what it sends no longer counts). The lease
    /// then names
    /// that run, and store, the ledger and verify pass over whatever the
    /// old one still sends (`cairn_bus::runs`).
    async fn once(&self, env: &Envelope, attempt: i64) -> Result<(), Failure> {
        let id = &env.backup_id;
        let lock = self.lock_of(id);
        let result = {
            let _one_at_a_time = lock.lock().await;
            self.leased(env, attempt).await
        };
        self.done_with(id, lock);
        result
    }

    /// The kind of event that ended `id`'s ingest, if one did.
    async fn ended(&self, id: &BackupId) -> Result<Option<&'static str>, BusError> {
        for kind in ENDED {
            if self.ctx.bus.has_event(kind, id).await? {
                return Ok(Some(kind));
            }
        }
        Ok(None)
    }

    async fn leased(&self, env: &Envelope, attempt: i64) -> Result<(), Failure> {
        let id = &env.backup_id;
        let claims = Claims::runs(&self.ctx.bus);
        let ttl = lease_ttl(self.ctx.bus.cfg.ack_wait_secs);
        let mut waiting = false;
        let lease = loop {
            if let Some(kind) = self.ended(id).await? {
                tracing::info!(backup = %id, attempt, ended = kind, "delivered again after it ended; not ingested again");
                return Ok(());
            }
            match Lease::try_take(&claims, id.as_str(), &self.holder, ttl, None).await? {
                Ok(lease) => break lease,
                Err(held) => {
                    if !waiting {
                        tracing::info!(backup = %id, attempt, holder = %held.holder, "another ingest process runs this backup; waiting for it to end or to stop renewing its lease");
                        waiting = true;
                    }
                    // The delivery stays ours meanwhile (the worker tells
                    // the server it is in progress).
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        // It may have ended just before the lease was given up.
        if let Some(kind) = self.ended(id).await? {
            tracing::info!(backup = %id, attempt, ended = kind, "ended meanwhile; not ingested again");
            lease.release().await;
            return Ok(());
        }
        let taken_over = lease
            .previous
            .as_ref()
            .filter(|p| p.run.is_some() && p.holder != self.holder)
            .map(|p| p.holder.clone());
        if let Some(before) = taken_over
            .filter(|h| !h.is_empty())
            .or(waiting.then(String::new))
        {
            tracing::warn!(backup = %id, attempt, holder = %self.holder, previous = %before, "the process running this backup stopped renewing its lease; running it here, as a new run");
        } else {
            tracing::info!(backup = %id, attempt, holder = %self.holder, "took the lease on this backup; ingesting");
        }
        let result = tokio::select! {
            r = ingest(&self.ctx, env, None, Some(&lease)) => r.map_err(Failure::from),
            () = lease.lost() => Err(Failure::retry(format!(
                "lost the lease on backup {id} (another process took it over after {} s without a renewal): gave this run up",
                ttl.as_secs()
            ))),
        };
        if result.is_ok() {
            lease.release().await;
        }
        result
    }
}

#[async_trait::async_trait]
impl Handler for IngestWorker {
    async fn handle(&self, d: &Delivery) -> Result<(), Failure> {
        let env: Envelope = decode(&d.payload, "event")?;
        // The server allows a factory to publish requests for its own
        // datasets by the subject alone; one that names its dataset in the
        // subject and another in the request is refused here.
        let belongs = self.ctx.bus.subjects.event(&env.event, &env.backup_id);
        // A request published before requests named their dataset, still
        // on the stream after an upgrade (no factory may publish one).
        let before_datasets = format!(
            "{}.evt.{}.{}",
            self.ctx.bus.subjects.prefix(),
            env.event.kind(),
            env.backup_id
        );
        if d.subject != belongs && d.subject != before_datasets {
            return Err(Failure::Permanent(format!(
                "a {} arrived on {} but belongs on {belongs}: a request's subject must name its backup and dataset",
                env.event.kind(),
                d.subject
            )));
        }
        if let Event::BackupRequested(BackupRequest { source, .. }) = &env.event {
            if source.read_by_client() {
                // Only the requesting client can read it; it ingests itself.
                return Ok(());
            }
        }
        self.once(&env, d.deliveries).await
    }
}

/// Runs the ingest worker until the process stops.
pub async fn run(ctx: Arc<IngestContext>, concurrency: usize) -> Result<(), BusError> {
    let bus = ctx.bus.clone();
    let watched = ctx.clone();
    let closed = async move {
        cairn_ledger::db::closed(&watched.pg).await;
        BusError::Stopped(
            "the chunk index's PostgreSQL connection is gone; stopping, to be started again with a new one".into(),
        )
    };
    let work = cairn_bus::worker::run(
        bus,
        Stage::Ingest,
        None,
        concurrency,
        Arc::new(IngestWorker {
            holder: format!("{}/{}", ctx.source, uuid::Uuid::now_v7()),
            ctx,
            running: Default::default(),
        }),
    );
    tokio::select! {
        r = work => r,
        e = closed => Err(e),
    }
}
