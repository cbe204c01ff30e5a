//! The collector: deletes data objects (packs, and chunks stored alone)
//! that no remaining backup references, and nothing else. [`gc`](crate::gc)
//! decides; this reads, records and deletes. A pack is deleted only when no
//! chunk list names it: one chunk still referenced keeps the whole pack.
//!
//! * References come from the chunk lists on the networks, every network,
//!   every page ([`Listing`]); a backup the ledger records as forgotten is
//!   not a reference (its chunk list may survive on a network that cannot
//!   delete). Any listing or page that cannot be read aborts the sweep on
//!   every network: a reference it would have named could be anywhere.
//! * Every step is recorded before the next is taken (`chunks.marked`,
//!   `chunks.condemned`, `chunks.deleted`), and every step is repeated
//!   harmlessly, so a collector killed at any point leaves the ledger and
//!   the networks in a state the next run finishes from.
//! * A sweep waits while a backup is running on the network, since such a
//!   backup may have deduplicated against a marked chunk that its chunk
//!   list does not name yet; condemning and then re-reading the references
//!   after `settle` closes the window in which one could start meanwhile.
//! * Networks that cannot delete are skipped, and said to be.
//!
//! The time is passed in ([`Collector::collect`]), so tests drive it.

use crate::gc::{mark_plan, sweep_plan};
use crate::lease::{Lease, TTL};
use crate::plan::holding_off;
use crate::references::{object_id, Listing, ReferenceError, References};
use cairn_bus::{Bus, BusError};
use cairn_events::{
    BackupId, ChunkBatch, ChunkId, Collection, Envelope, Event, EventId, NetworkCollection,
    ObjectKey, PackId,
};
use cairn_ledger::marks;
use cairn_networks::Network;
use cairn_repo::{layout, Repository};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// How long the collector waits for the ledger to record its own steps.
const LEDGER_WAIT: Duration = Duration::from_secs(120);
/// Deletes in flight per network.
const DELETES_AT_ONCE: usize = 16;

/// Why a collection could not run at all (what stops one network's sweep
/// is reported in its [`NetworkCollection`] instead).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("another collection is running ({0} holds the collector lease); nothing was done")]
    Busy(String),
}

/// What stopped one network's sweep.
enum Stop {
    Deferred(String),
    Aborted(String),
    Failed(CollectError),
}

impl From<tokio_postgres::Error> for Stop {
    fn from(e: tokio_postgres::Error) -> Self {
        Stop::Failed(e.into())
    }
}

impl From<BusError> for Stop {
    fn from(e: BusError) -> Self {
        Stop::Failed(e.into())
    }
}

pub struct Collector {
    pub bus: Bus,
    pub repo: Repository,
    /// The ledger (read only): marks, unfinished backups, forgotten ones.
    pub pg: tokio_postgres::Client,
    /// A chunk is swept only once it has been marked this long: longer than
    /// any backup runs (`[retention] gc_grace_secs`).
    pub grace: Duration,
    /// Pause between condemning and the last look at the references
    /// (`[retention] gc_settle_secs`).
    pub settle: Duration,
    /// An unfinished backup idle this long was abandoned and no longer
    /// holds off a sweep (`[retention] running_backup_secs`).
    pub running_window: Duration,
    pub source: String,
}

impl Collector {
    /// One collection over every network, as of `now`; recorded as
    /// `collection.finished`.
    pub async fn collect(&self, now: DateTime<Utc>) -> Result<Collection, CollectError> {
        let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut out = Collection {
            at: at.clone(),
            grace_secs: self.grace.as_secs(),
            networks: Vec::new(),
        };
        let lease =
            match Lease::acquire(&self.bus, &self.source, TTL + Duration::from_secs(10)).await? {
                Ok(l) => l,
                Err(holder) => return Err(CollectError::Busy(holder)),
            };
        let references = self.references().await;
        for net in self.repo.networks() {
            let mut report = NetworkCollection {
                network: net.name().to_string(),
                outcome: "swept".into(),
                reason: None,
                chunks: 0,
                referenced: 0,
                marked: 0,
                revived: 0,
                waiting: 0,
                deleted: 0,
                bytes_freed: 0,
            };
            let stopped = if !net.capabilities().can_delete {
                Some(("skipped", "the network cannot delete (permanent storage or can_delete = false); it keeps every chunk".to_string()))
            } else {
                match &references {
                    Err(e) => Some((
                        "aborted",
                        format!(
                            "cannot establish what is still referenced ({e}); nothing was deleted"
                        ),
                    )),
                    Ok(refs) => match self
                        .network(net, &refs.on(net.name()), now, &lease, &mut report)
                        .await
                    {
                        Ok(()) => None,
                        Err(Stop::Deferred(r)) => Some(("deferred", r)),
                        Err(Stop::Aborted(r)) => Some(("aborted", r)),
                        Err(Stop::Failed(e)) => return Err(e),
                    },
                }
            };
            if let Some((outcome, reason)) = stopped {
                tracing::warn!(network = %report.network, outcome, %reason, "collection stopped");
                report.outcome = outcome.into();
                report.reason = Some(reason);
            }
            out.networks.push(report);
        }
        let digest = Sha256::digest(serde_json::to_vec(&out).unwrap_or_default());
        let env = Envelope::new(
            self.source.clone(),
            BackupId::repo(),
            Event::CollectionFinished(out.clone()),
            &[digest.as_slice()],
        );
        self.bus.publish_event(&env).await?;
        lease.release().await;
        Ok(out)
    }

    /// Every chunk some backup's chunk list names, on any network, except
    /// on the networks a backup is recorded to have left for an archive.
    async fn references(&self) -> Result<References, ReferenceError> {
        let ledger = |e: tokio_postgres::Error| ReferenceError::Ledger(e.to_string());
        let forgotten = marks::forgotten(&self.pg).await.map_err(ledger)?;
        let left = marks::left(&self.pg).await.map_err(ledger)?;
        let listing = Listing::read(&self.repo).await?;
        let mut refs = References::default();
        for backup in listing.backups() {
            if forgotten.contains(backup.as_str()) {
                continue;
            }
            let ids = listing.objects_of(&self.repo, backup).await?;
            match left.get(backup.as_str()) {
                Some(networks) => refs.partial.push((networks.clone(), ids)),
                None => refs.everywhere.extend(ids),
            }
        }
        Ok(refs)
    }

    async fn network(
        &self,
        net: &Arc<dyn Network>,
        references: &HashSet<ChunkId>,
        now: DateTime<Utc>,
        lease: &Lease,
        report: &mut NetworkCollection,
    ) -> Result<(), Stop> {
        let lost = || {
            Stop::Aborted(
                "lost the collector lease (another collector may have taken over); stopped before deleting more".into(),
            )
        };
        let name = net.name();
        let mut kinds = Kinds::default();
        for dir in [layout::CHUNKS_DIR, layout::PACKS_DIR] {
            let listed = net
                .list(dir)
                .await
                .map_err(|e| Stop::Aborted(format!("cannot list its {dir}: {e}")))?;
            for key in listed.iter().filter_map(|p| layout::data_object(p)) {
                kinds.add(&key);
            }
        }
        let present: HashSet<ChunkId> = kinds.present.clone();
        report.chunks = present.len() as u64;
        report.referenced = present.intersection(references).count() as u64;

        // Phase one: mark what nothing references, revive what is again.
        let before = marks::marks(&self.pg, name).await?;
        // Marked objects no longer listed: the ledger knows which are packs.
        let unlisted: Vec<ChunkId> = before
            .keys()
            .filter(|id| !present.contains(id))
            .copied()
            .collect();
        kinds
            .packs
            .extend(marks::packs_among(&self.pg, &unlisted).await?);
        let plan = mark_plan(
            &present,
            references,
            &before,
            now.timestamp(),
            self.grace.as_secs(),
        );
        let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut ids = self
            .record(&kinds, name, &at, &plan.revive, 0, Event::ChunksRevived)
            .await?;
        ids.extend(
            self.record(&kinds, name, &at, &plan.mark, 0, Event::ChunksMarked)
                .await?,
        );
        if !plan.gone.is_empty() {
            let bytes = self.bytes(&kinds, &plan.gone).await?;
            ids.extend(
                self.record(&kinds, name, &at, &plan.gone, bytes, Event::ChunksDeleted)
                    .await?,
            );
            report.deleted += plan.gone.len() as u64;
            report.bytes_freed += bytes;
        }
        report.marked = plan.mark.len() as u64;
        report.revived = plan.revive.len() as u64;
        self.wait_for_ledger(&ids, "the marks").await?;
        let marks_now = marks::marks(&self.pg, name).await?;
        // With no grace period (`cairn gc --grace 0`), what was just marked is due.
        let plan = mark_plan(
            &present,
            references,
            &marks_now,
            now.timestamp(),
            self.grace.as_secs(),
        );
        report.waiting = plan.waiting;
        if plan.due.is_empty() {
            return Ok(());
        }

        // Phase two: condemn, let any backup that looked before see it, look again.
        if let Err(stop) = self.check_running(name).await {
            // Chunks a dead collector condemned would keep the running
            // backup waiting on them: nobody is sweeping them now.
            let stale: Vec<ChunkId> = marks_now
                .iter()
                .filter(|(_, m)| m.condemned)
                .map(|(id, _)| *id)
                .collect();
            self.record(&kinds, name, &at, &stale, 0, Event::ChunksRevived)
                .await?;
            report.revived += stale.len() as u64;
            return Err(stop);
        }
        if !lease.held() {
            return Err(lost());
        }
        let ids = self
            .record(&kinds, name, &at, &plan.due, 0, Event::ChunksCondemned)
            .await?;
        self.wait_for_ledger(&ids, "the condemnation").await?;
        tokio::time::sleep(self.settle).await;
        if let Err(stop) = self.check_running(name).await {
            self.record(&kinds, name, &at, &plan.due, 0, Event::ChunksRevived)
                .await?;
            return Err(stop);
        }
        let fresh = match self.references().await {
            Ok(r) => r.on(name),
            Err(e) => {
                self.record(&kinds, name, &at, &plan.due, 0, Event::ChunksRevived)
                    .await?;
                return Err(Stop::Aborted(format!(
                    "cannot establish what is still referenced ({e}); nothing was deleted"
                )));
            }
        };
        let marks_now = marks::marks(&self.pg, name).await?;
        let (delete, spare) = sweep_plan(&plan.due, &fresh, &marks_now);
        self.record(&kinds, name, &at, &spare, 0, Event::ChunksRevived)
            .await?;
        report.revived += spare.len() as u64;

        for batch in delete.chunks(ChunkBatch::MAX) {
            if !lease.held() {
                return Err(lost());
            }
            let results = delete_all(net.clone(), &kinds, batch.to_vec()).await;
            let done: Vec<ChunkId> = results
                .iter()
                .filter(|(_, r)| r.is_ok())
                .map(|(id, _)| *id)
                .collect();
            let bytes = self.bytes(&kinds, &done).await?;
            self.record(&kinds, name, &at, &done, bytes, Event::ChunksDeleted)
                .await?;
            report.deleted += done.len() as u64;
            report.bytes_freed += bytes;
            if let Some((id, Err(e))) = results.iter().find(|(_, r)| r.is_err()) {
                let left: Vec<ChunkId> = delete
                    .iter()
                    .filter(|c| !done.contains(c))
                    .copied()
                    .collect();
                self.record(&kinds, name, &at, &left, 0, Event::ChunksRevived)
                    .await?;
                return Err(Stop::Aborted(format!(
                    "cannot delete {}: {e}; {} left for a later collection",
                    layout::describe(&kinds.key(id)),
                    left.len()
                )));
            }
        }
        Ok(())
    }

    /// A backup running on `network` holds off its sweep.
    async fn check_running(&self, network: &str) -> Result<(), Stop> {
        let unfinished = cairn_ledger::query::unfinished_backups(&self.pg).await?;
        let nets = [network.to_string()];
        let holding = holding_off(&unfinished, "", &nets, self.running_window.as_secs());
        if holding.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = holding
            .iter()
            .map(|u| format!("{} (dataset {:?}, {})", u.backup_id, u.dataset, u.status))
            .collect();
        Err(Stop::Deferred(format!(
            "{} unfinished on it: it may have deduplicated against marked chunks, so the sweep waits for a later collection",
            list.join(", ")
        )))
    }

    /// Records one step for `chunks` (chunks stored alone and packs, by
    /// [`object_id`]) on `network`, in batches.
    async fn record(
        &self,
        kinds: &Kinds,
        network: &str,
        at: &str,
        chunks: &[ChunkId],
        bytes: u64,
        event: fn(ChunkBatch) -> Event,
    ) -> Result<Vec<EventId>, BusError> {
        let mut ids = Vec::new();
        for (i, part) in chunks.chunks(ChunkBatch::MAX).enumerate() {
            let mut h = Sha256::new();
            for c in part {
                h.update(c.0);
            }
            let (packs, alone): (Vec<ChunkId>, Vec<ChunkId>) =
                part.iter().partition(|id| kinds.packs.contains(id));
            let batch = ChunkBatch {
                network: network.to_string(),
                chunks: alone,
                at: at.to_string(),
                // The bytes go with the first batch, so that the events add up.
                bytes: if i == 0 { bytes } else { 0 },
                packs: packs.iter().map(|p| PackId(p.0)).collect(),
            };
            let env = Envelope::new(
                self.source.clone(),
                BackupId::repo(),
                event(batch),
                &[network.as_bytes(), at.as_bytes(), h.finalize().as_slice()],
            );
            self.bus.publish_event(&env).await?;
            ids.push(env.id);
        }
        Ok(ids)
    }

    /// Sealed bytes of `chunks`, as the ledger recorded them.
    async fn bytes(&self, kinds: &Kinds, chunks: &[ChunkId]) -> Result<u64, tokio_postgres::Error> {
        let paths: Vec<String> = chunks
            .iter()
            .map(|id| layout::object(&kinds.key(id)))
            .collect();
        marks::lengths(&self.pg, &paths).await
    }

    /// Waits until the ledger has recorded the events `ids` (and with
    /// them, their effect on the marks).
    async fn wait_for_ledger(&self, ids: &[EventId], what: &str) -> Result<(), Stop> {
        let ids: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
        let started = std::time::Instant::now();
        loop {
            let n: i64 = self
                .pg
                .query_one(
                    "SELECT count(*) FROM ledger_entries WHERE event_id = ANY($1)",
                    &[&ids],
                )
                .await?
                .get(0);
            if n as usize >= ids.len() {
                return Ok(());
            }
            if started.elapsed() > LEDGER_WAIT {
                return Err(Stop::Aborted(format!(
                    "the ledger did not record {what} within {} s (is the ledger service running?); nothing more was deleted",
                    LEDGER_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Which of the collector's ids are packs (the rest are chunks stored
/// alone), and which are on the network.
#[derive(Default)]
struct Kinds {
    present: HashSet<ChunkId>,
    packs: HashSet<ChunkId>,
}

impl Kinds {
    fn add(&mut self, key: &ObjectKey) {
        if let Some(id) = object_id(key) {
            self.present.insert(id);
            if matches!(key, ObjectKey::Pack { .. }) {
                self.packs.insert(id);
            }
        }
    }

    fn key(&self, id: &ChunkId) -> ObjectKey {
        if self.packs.contains(id) {
            ObjectKey::Pack { id: PackId(id.0) }
        } else {
            ObjectKey::Chunk { id: *id }
        }
    }
}

/// Deletes `chunks` from `net`, a few at a time; each with its result.
async fn delete_all(
    net: Arc<dyn Network>,
    kinds: &Kinds,
    chunks: Vec<ChunkId>,
) -> Vec<(ChunkId, Result<(), String>)> {
    futures::stream::iter(chunks.into_iter().map(move |id| {
        let net = net.clone();
        let path = layout::object(&kinds.key(&id));
        async move { (id, net.delete(&path).await.map_err(|e| e.to_string())) }
    }))
    .buffer_unordered(DELETES_AT_ONCE)
    .collect()
    .await
}

/// Collects every `every` until the process stops; a collection that fails
/// is logged and tried again at the next.
pub async fn run(c: Collector, every: Duration) -> Result<(), BusError> {
    loop {
        match c.collect(Utc::now()).await {
            Ok(done) => {
                for n in &done.networks {
                    tracing::info!(network = %n.network, outcome = %n.outcome, deleted = n.deleted, bytes_freed = n.bytes_freed, "collected");
                }
            }
            Err(e) => tracing::warn!(error = %e, "collection failed; trying again later"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = cairn_ledger::db::closed(&c.pg) => {
                return Err(BusError::Stopped(cairn_ledger::db::gone("the collector")));
            }
        }
    }
}
