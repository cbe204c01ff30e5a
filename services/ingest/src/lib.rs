//! The ingest stage: takes `backup.requested`, reads the source, and hands
//! new chunks to encrypt.
//!
//! * [`source`]: reading files, streams and `pg_dump` into chunks and tree
//!   records (blocking thread, bounded channel).
//! * [`job`]: one backup's ingest (dedup, compression, chunk list, manifest).
//!
//! Ingest holds the chunk-id key only: it can name chunks but not read or
//! seal them.

pub mod job;
pub mod source;

use cairn_bus::{Bus, Delivery, Failure, Handler};
use cairn_events::subjects::stage;
use cairn_events::{decode, BackupId, Envelope, Event, Outcome, Source};
use job::{IngestContext, JobError};
use source::{Counters, Input};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

struct IngestWorker {
    ctx: Arc<IngestContext>,
}

/// Records a failed backup (the request or its source was at fault).
pub async fn publish_failure(
    bus: &Bus,
    source: &str,
    backup_id: &BackupId,
    reason: String,
) -> Result<(), Failure> {
    let env = Envelope::new(
        source,
        backup_id.clone(),
        Event::BackupFailed(Outcome {
            reasons: vec![reason.clone()],
            ..Default::default()
        }),
        &[reason.as_bytes()],
    );
    bus.publish_event(&env)
        .await
        .map_err(|e| Failure::Retry(e.to_string()))
}

/// Publishes progress on core NATS (never stored) until dropped.
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
            let body = serde_json::json!({
                "bytes_read": counters.bytes_read.load(Ordering::Relaxed),
                "bytes_total": counters.bytes_total.load(Ordering::Relaxed),
                "files": counters.files.load(Ordering::Relaxed),
            });
            let _ = client
                .publish(subject.clone(), body.to_string().into())
                .await;
        }
    })
}

#[async_trait::async_trait]
impl Handler for IngestWorker {
    async fn handle(&self, d: &Delivery) -> Result<(), Failure> {
        let env: Envelope =
            decode(&d.payload, "event").map_err(|e| Failure::Permanent(e.to_string()))?;
        let Event::BackupRequested(req) = &env.event else {
            return Err(Failure::Permanent(format!(
                "expected backup.requested on {}, got {}",
                d.subject,
                env.event.kind()
            )));
        };
        let ctx = &self.ctx;
        let input = match &req.source {
            // Only the requesting client can read its stdin; it ingests itself.
            Source::Stdin { .. } => return Ok(()),
            Source::Paths { paths } if paths.is_empty() => {
                return publish_failure(
                    &ctx.bus,
                    &ctx.source,
                    &env.backup_id,
                    "no paths to back up".into(),
                )
                .await
            }
            Source::Paths { paths } => Input::Paths(paths.iter().map(Into::into).collect()),
            Source::Postgres { url } => {
                if let Err(reason) = source::check_pg_url(url) {
                    return publish_failure(&ctx.bus, &ctx.source, &env.backup_id, reason).await;
                }
                match source::PgDump::start(url) {
                    Ok(dump) => Input::Stream {
                        name: format!("{}.pgdump", source::database_name(url)),
                        reader: Box::new(dump),
                    },
                    Err(e) => {
                        return publish_failure(
                            &ctx.bus,
                            &ctx.source,
                            &env.backup_id,
                            e.to_string(),
                        )
                        .await
                    }
                }
            }
        };
        let started = Envelope::new(
            ctx.source.clone(),
            env.backup_id.clone(),
            Event::BackupStarted {
                worker: ctx.source.clone(),
            },
            &[&d.deliveries.to_be_bytes()],
        );
        ctx.bus
            .publish_event(&started)
            .await
            .map_err(|e| Failure::Retry(e.to_string()))?;
        let counters = Arc::new(Counters::default());
        let progress = report_progress(&ctx.bus, &env.backup_id, counters.clone());
        let result = job::run(ctx, &env.backup_id, req, &env.at, input, counters).await;
        progress.abort();
        match result {
            Ok(ingested) => {
                tracing::info!(backup = %env.backup_id, chunks = ingested.stats.chunks_total, new = ingested.stats.chunks_new, "ingested");
                Ok(())
            }
            Err(JobError::Source(reason)) => {
                publish_failure(&ctx.bus, &ctx.source, &env.backup_id, reason).await
            }
            Err(e) => Err(Failure::Retry(e.to_string())),
        }
    }
}

/// Runs the ingest worker until the process stops.
pub async fn run(ctx: Arc<IngestContext>, concurrency: usize) -> anyhow::Result<()> {
    let bus = ctx.bus.clone();
    cairn_bus::worker::run(
        bus,
        stage::INGEST,
        None,
        concurrency,
        Arc::new(IngestWorker { ctx }),
    )
    .await?;
    Ok(())
}
