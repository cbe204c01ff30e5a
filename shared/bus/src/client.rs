//! What a client of the pipeline does (the CLI, or a factory written in
//! Rust): ask for a backup and follow it to its outcome, ask for a forget
//! and wait for its answer. Followers subscribe before they publish, so no
//! answer can slip past them.

use crate::{Bus, BusError};
use cairn_events::{
    decode, BackupId, BackupRequest, Envelope, Event, Forgotten, Outcome, Progress,
};
use futures::StreamExt;
use std::future::Future;
use std::time::Duration;

/// How a followed backup ended.
#[derive(Debug, Clone)]
pub enum Ending {
    /// Verified (or failed): `completed`, `degraded` or `failed`.
    Finished {
        status: &'static str,
        outcome: Outcome,
    },
    /// No ingest worker took the request in time; it stays queued.
    NotTaken,
    /// Taken, but no outcome in time; it may still finish.
    TimedOut,
}

/// Why following stopped short.
#[derive(Debug, thiserror::Error)]
pub enum FollowError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("lost the connection to NATS")]
    Lost,
    /// The ingest this client ran itself (`--stdin`) failed.
    #[error(transparent)]
    Local(E),
}

/// A backup asked for, with its subscriptions open.
pub struct Requested {
    pub backup_id: BackupId,
    pub envelope: Envelope,
    bus: Bus,
    events: async_nats::Subscriber,
    progress: async_nats::Subscriber,
    /// The ledger's copies of `backup.*` entries (AUDIT), to see it record
    /// the outcome.
    recorded: async_nats::Subscriber,
}

/// How often a follower asks the EVENTS stream for the outcome, in case it
/// was published while this client's connection was away (its node lost:
/// a subscription misses what passed meanwhile).
const LOOK_EVERY: Duration = Duration::from_secs(10);

/// The events that end a backup.
const OUTCOMES: [&str; 3] = ["backup.completed", "backup.degraded", "backup.failed"];

/// How long a client waits, once it saw the outcome, for the ledger to
/// record it (so that `cairn show` right after agrees); it returns anyway
/// after that.
const RECORD_WAIT: Duration = Duration::from_secs(10);

/// Publishes `backup.requested` for a fresh backup id, having subscribed to
/// what will follow.
pub async fn request_backup(
    bus: &Bus,
    source: &str,
    req: BackupRequest,
) -> Result<Requested, BusError> {
    let backup_id = BackupId::generate();
    let sub = |subject: String| async move {
        bus.client
            .subscribe(subject.clone())
            .await
            .map_err(|e| BusError::JetStream(format!("subscribe to {subject}: {e}")))
    };
    let events = sub(bus.subjects.lifecycle(&backup_id)).await?;
    let progress = sub(bus.subjects.progress(&backup_id)).await?;
    let recorded = sub(bus.subjects.audit_entry("backup.*")).await?;
    let envelope = Envelope::new(source, backup_id.clone(), Event::BackupRequested(req), &[]);
    bus.publish_event(&envelope).await?;
    Ok(Requested {
        backup_id,
        envelope,
        bus: bus.clone(),
        events,
        progress,
        recorded,
    })
}

impl Requested {
    /// Follows the backup to its outcome. `local` is ingest work this client
    /// does itself (for `--stdin`; it counts as the worker having taken the
    /// request). `start_timeout` bounds the wait for a worker,
    /// `timeout` the whole wait; `on_progress` sees ingest's progress.
    pub async fn follow<E, F>(
        mut self,
        local: Option<F>,
        start_timeout: Duration,
        timeout: Duration,
        mut on_progress: impl FnMut(Progress),
    ) -> Result<Ending, FollowError<E>>
    where
        E: std::error::Error + 'static,
        F: Future<Output = Result<(), E>>,
    {
        let now = tokio::time::Instant::now();
        let (start_deadline, deadline) = (now + start_timeout, now + timeout);
        let mut started = local.is_some();
        let mut local = local.map(Box::pin);
        let mut local_done = local.is_none();
        // The outcome as the events carried it, and whether the ledger has
        // recorded it yet (its entry can come first: two subjects).
        let mut ending: Option<Ending> = None;
        let mut in_ledger = false;
        let mut record_deadline = deadline;
        let mut look = tokio::time::interval_at(now + LOOK_EVERY, LOOK_EVERY);
        // A client whose user may not read the stream (a factory: the
        // server refuses its asks) relies on its subscriptions alone.
        let mut may_look = true;
        loop {
            if let (Some(_), true) = (&ending, in_ledger) {
                return Ok(ending.take().expect("just matched"));
            }
            let wait_until = match (&ending, started) {
                (Some(_), _) => record_deadline,
                (None, true) => deadline,
                (None, false) => start_deadline.min(deadline),
            };
            tokio::select! {
                msg = self.events.next(), if ending.is_none() => {
                    let msg = msg.ok_or(FollowError::Lost)?;
                    let Ok(env) = decode::<Envelope>(&msg.payload, "event") else { continue };
                    if matches!(env.event, Event::BackupStarted { .. }) {
                        started = true;
                    }
                    if let Some((status, o)) = env.event.outcome() {
                        if let (Some(work), false) = (local.as_mut(), local_done) {
                            work.await.map_err(FollowError::Local)?;
                            local_done = true;
                        }
                        ending = Some(Ending::Finished { status, outcome: o.clone() });
                        record_deadline = tokio::time::Instant::now() + RECORD_WAIT;
                    }
                }
                msg = self.recorded.next(), if !in_ledger => {
                    let msg = msg.ok_or(FollowError::Lost)?;
                    if let Ok(env) = decode::<Envelope>(&msg.payload, "ledger entry") {
                        in_ledger = env.backup_id == self.backup_id && env.event.outcome().is_some();
                    }
                }
                done = async { if let Some(w) = local.as_mut() { w.await } else { Ok(()) } }, if !local_done => {
                    local_done = true;
                    done.map_err(FollowError::Local)?;
                }
                _ = look.tick(), if ending.is_none() && may_look && local_done => {
                    let asked = std::time::Instant::now();
                    for kind in OUTCOMES {
                        match self.bus.last_event(kind, &self.backup_id).await {
                            Ok(Some(env)) => {
                                if let Some((status, o)) = env.event.outcome() {
                                    started = true;
                                    ending = Some(Ending::Finished { status, outcome: o.clone() });
                                    record_deadline = tokio::time::Instant::now() + RECORD_WAIT;
                                    break;
                                }
                            }
                            Ok(None) => {}
                            // Unreachable for now (its node lost, no
                            // quorum): asked again next time.
                            Err(_) => {
                                may_look = crate::access::refused_since(asked).is_none();
                                break;
                            }
                        }
                    }
                }
                p = self.progress.next() => {
                    if let Some(p) = p.and_then(|m| serde_json::from_slice::<Progress>(&m.payload).ok()) {
                        on_progress(p);
                    }
                }
                _ = tokio::time::sleep_until(wait_until) => {
                    if let Some(e) = ending.take() {
                        tracing::warn!(backup = %self.backup_id, "the ledger has not recorded the outcome yet (is `cairn serve ledger` running?)");
                        return Ok(e);
                    }
                    return Ok(if started { Ending::TimedOut } else { Ending::NotTaken });
                }
            }
        }
    }
}

/// Retention's answer to a forget.
#[derive(Debug, Clone)]
pub enum ForgetAnswer {
    Forgotten(Forgotten),
    /// Nothing was deleted, for this reason.
    Refused(String),
    /// No retention worker answered in time; the request stays queued.
    NoAnswer,
}

/// Publishes `forget.requested` for `backup` and waits up to `timeout` for
/// retention's answer.
pub async fn request_forget(
    bus: &Bus,
    source: &str,
    backup: &BackupId,
    requested_by: String,
    timeout: Duration,
) -> Result<ForgetAnswer, BusError> {
    let seed = cairn_events::now_rfc3339();
    request_forget_seeded(bus, source, backup, requested_by, seed.as_bytes(), timeout).await
}

/// [`request_forget`] whose event id derives from `seed` (and the backup),
/// so that the same request published twice is one request.
pub async fn request_forget_seeded(
    bus: &Bus,
    source: &str,
    backup: &BackupId,
    requested_by: String,
    seed: &[u8],
    timeout: Duration,
) -> Result<ForgetAnswer, BusError> {
    let subject = bus.subjects.events_of_backup(backup);
    let mut events = bus
        .client
        .subscribe(subject.clone())
        .await
        .map_err(|e| BusError::JetStream(format!("subscribe to {subject}: {e}")))?;
    let env = Envelope::new(
        source,
        backup.clone(),
        Event::ForgetRequested { requested_by },
        &[seed],
    );
    bus.publish_event(&env).await?;
    let answer = async {
        while let Some(msg) = events.next().await {
            match decode::<Envelope>(&msg.payload, "event").map(|e| e.event) {
                Ok(Event::BackupForgotten(f)) => return ForgetAnswer::Forgotten(f),
                Ok(Event::ForgetRefused { reason }) => return ForgetAnswer::Refused(reason),
                _ => {}
            }
        }
        ForgetAnswer::NoAnswer
    };
    Ok(tokio::time::timeout(timeout, answer)
        .await
        .unwrap_or(ForgetAnswer::NoAnswer))
}
