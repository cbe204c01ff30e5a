//! The verify stage: after `backup.ingested`, reads every object of the
//! backup back from every target network and checks it against the digest the
//! ledger recorded when it was sealed; checks the public chunk list against the
//! Merkle root ingest reported; then emits `backup.completed`, `.degraded` or
//! `.failed` with per-network findings. It holds no key: everything it checks
//! is ciphertext and hashes.

pub mod care;
pub mod witness;

use cairn_bus::{Bus, BusError, Delivery, Failure, Handler};
use cairn_crypto::merkle::RootBuilder;
use cairn_events::{
    decode, BackupId, Checked, ChunkId, Envelope, Event, Ingested, NetworkReport, ObjectKey,
    Outcome, Redundancy, Stage, Stats,
};
use cairn_repo::check::{self, Expected};
use cairn_repo::format::Location;
use cairn_repo::{chunklist, layout, Repository};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Every object of a backup, in a fixed order: its data objects (packs, or
/// chunks stored alone, in chunk-list order of first use), its chunk-list
/// pages, its manifest. Health and repair use the same list.
pub struct BackupObjects {
    pub keys: Vec<ObjectKey>,
    /// How many of `keys` are data objects (they come first).
    pub chunk_count: usize,
    /// Indices of data objects this backup wrote (holding its new chunks).
    pub new_chunks: Vec<usize>,
    /// Chunks that were new in this backup.
    pub chunks_new: u64,
    /// Every chunk in chunk-list order.
    pub chunks: Vec<ChunkPlace>,
}

/// Where one chunk of a backup is.
#[derive(Debug, Clone, Copy)]
pub struct ChunkPlace {
    pub id: ChunkId,
    /// Index (in [`BackupObjects::keys`]) of the object holding it.
    pub object: usize,
    /// Offset and length in that object, if it is a pack.
    pub range: Option<(u32, u32)>,
}

impl BackupObjects {
    /// The objects of `backup`: its data objects, chunk-list `pages`,
    /// manifest, (format 3) the wrapped `data_key` it was sealed under and,
    /// if ingest wrote one, its `catalogue` entry.
    pub fn of(
        backup: &BackupId,
        pages: &[cairn_repo::format::ChunkListPage],
        data_key: Option<cairn_events::KeyId>,
        catalogue: bool,
    ) -> Result<Self, String> {
        let mut keys = Vec::new();
        let mut index: HashMap<ObjectKey, usize> = HashMap::new();
        let mut new_chunks = std::collections::BTreeSet::new();
        let mut chunks = Vec::new();
        let mut chunks_new = 0;
        for p in pages {
            let fresh: std::collections::HashSet<u32> = p.new.iter().copied().collect();
            for (i, (id, loc)) in p.ids.iter().zip(p.locations()?).enumerate() {
                let key = loc.object();
                let at = *index.entry(key.clone()).or_insert_with(|| {
                    keys.push(key);
                    keys.len() - 1
                });
                if fresh.contains(&(i as u32)) {
                    new_chunks.insert(at);
                    chunks_new += 1;
                }
                let range = match loc {
                    Location::Alone(_) => None,
                    Location::Packed { offset, len, .. } => Some((offset, len)),
                };
                chunks.push(ChunkPlace {
                    id: *id,
                    object: at,
                    range,
                });
            }
        }
        let chunk_count = keys.len();
        for page in 0..pages.len() as u32 {
            keys.push(ObjectKey::ChunkList {
                backup_id: backup.clone(),
                page,
            });
        }
        keys.push(ObjectKey::Manifest {
            backup_id: backup.clone(),
        });
        if let Some(id) = data_key {
            keys.push(ObjectKey::DataKey { id });
        }
        if catalogue {
            keys.push(ObjectKey::Catalogue {
                backup_id: backup.clone(),
            });
        }
        Ok(BackupObjects {
            keys,
            chunk_count,
            new_chunks: new_chunks.into_iter().collect(),
            chunks_new,
            chunks,
        })
    }

    pub fn paths(&self) -> Vec<String> {
        self.keys.iter().map(layout::object).collect()
    }

    /// The first chunk (its index in chunk-list order) held by each of
    /// `objects` (indices of data objects).
    pub fn first_chunks(&self, objects: &[usize]) -> Vec<usize> {
        let wanted: std::collections::HashSet<usize> = objects.iter().copied().collect();
        let mut seen = std::collections::HashSet::new();
        self.chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| wanted.contains(&c.object) && seen.insert(c.object))
            .map(|(i, _)| i)
            .collect()
    }
}

/// The sealed root's leaves, in chunk-list order
/// ([`cairn_repo::format::sealed_leaf`]); `digest` gives each data object's
/// hex digest.
pub fn sealed_leaves(objects: &BackupObjects, digest: impl Fn(usize) -> String) -> Vec<Vec<u8>> {
    objects
        .chunks
        .iter()
        .map(|c| cairn_repo::format::sealed_leaf(&c.id, &digest(c.object), c.range))
        .collect()
}

pub struct VerifyWorker {
    pub bus: Bus,
    pub repo: Repository,
    pub pg: tokio_postgres::Client,
    pub timeout: Duration,
    /// While JetStream is unavailable (this process's quorum watch), the
    /// timeout does not run: nothing can reach a network meanwhile.
    pub outages: Option<cairn_bus::quorum::Outages>,
    pub source: String,
    /// Per network, whether its new data objects are read back (its
    /// `read_back`); a network not named here is.
    pub read_back: HashMap<String, bool>,
}

/// How often verify looks again for what the ledger has not recorded yet:
/// the ledger commits a backup's last events some tens of milliseconds
/// after ingest ends, and every pause here is added to the backup's time.
const POLL: Duration = Duration::from_millis(50);

/// The id a data object is recorded under in the ledger's chunk copies.
fn object_id(key: &ObjectKey) -> Option<Vec<u8>> {
    match key {
        ObjectKey::Chunk { id } => Some(id.0.to_vec()),
        ObjectKey::Pack { id } => Some(id.0.to_vec()),
        _ => None,
    }
}

impl VerifyWorker {
    /// Paths among `objects` (path, ledger id) that the ledger has not
    /// recorded as stored on `network` by `deadline`: a store worker may
    /// lag behind, so this waits for them as a read-back would.
    async fn unrecorded(
        &self,
        network: &str,
        objects: &[(String, Vec<u8>)],
        deadline: &check::Deadline,
    ) -> Vec<String> {
        let mut pending: Vec<&(String, Vec<u8>)> = objects.iter().collect();
        loop {
            for part in pending.clone().chunks(10_000) {
                let ids: Vec<Vec<u8>> = part.iter().map(|(_, id)| id.clone()).collect();
                match cairn_ledger::query::stored_on(&self.pg, network, &ids).await {
                    Ok(found) => pending.retain(|(_, id)| !found.contains(id)),
                    Err(e) => tracing::warn!(error = %e, network, "stored-copies lookup failed"),
                }
            }
            if pending.is_empty() || deadline.passed() {
                return pending.into_iter().map(|(p, _)| p.clone()).collect();
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// When verify stops waiting for a backup's objects: its timeout from
    /// now, but never while JetStream is unavailable (this process's
    /// quorum watch), and a whole timeout (and one `ack_wait`, for what
    /// the outage left to be delivered again) once it is back: nothing
    /// could reach a network meanwhile, and consumers take a while to
    /// resume.
    fn deadline(&self) -> check::Deadline {
        let start = Instant::now();
        let at = start + self.timeout;
        let Some(outages) = self.outages.clone() else {
            return at.into();
        };
        let (timeout, grace) = (
            self.timeout,
            Duration::from_secs(self.bus.cfg.ack_wait_secs),
        );
        let start = start.into_std();
        check::Deadline::moving(at, move || {
            let now = std::time::Instant::now();
            outages
                .deadline(start, timeout, grace, now)
                .saturating_duration_since(start + timeout)
        })
    }

    async fn outcome(&self, backup: &BackupId, ing: &Ingested) -> Outcome {
        let deadline = self.deadline();
        let mut outcome = Outcome {
            stats: ing.stats.clone(),
            merkle_root: ing.merkle_root.clone(),
            ..Default::default()
        };
        let targets = self.repo.subset(&ing.networks);
        let unknown: Vec<&String> = ing
            .networks
            .iter()
            .filter(|n| self.repo.network(n).is_none())
            .collect();
        for n in &unknown {
            outcome.networks.push(NetworkReport {
                network: (*n).clone(),
                ok: false,
                detail: "not configured on this verify worker".into(),
                ..Default::default()
            });
        }

        // 1. The public chunk list, checked against the root from ingest.
        let pages = loop {
            // Short reads while polling: a network that does not answer must
            // not keep verify from finding the pages on one that does.
            match targets
                .chunk_pages_within(POLL * 40, backup, ing.chunk_pages)
                .await
            {
                Ok(p) => break p,
                Err(e) if deadline.passed() => {
                    outcome.reasons.push(format!("chunk list unreadable: {e}"));
                    return outcome;
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        };
        let (count, root) = chunklist::root_of_pages(&pages);
        if hex::encode(root) != ing.merkle_root || count != ing.stats.chunks_total {
            outcome.reasons.push(format!(
                "chunk list ({count} chunks, root {}) does not match what ingest reported ({} chunks, root {})",
                hex::encode(root),
                ing.stats.chunks_total,
                ing.merkle_root
            ));
            return outcome;
        }

        // 2. Every object's expected digest, from the ledger.
        let backup_objects = match BackupObjects::of(backup, &pages, ing.data_key, ing.catalogue) {
            Ok(o) => o,
            Err(e) => {
                outcome.reasons.push(e);
                return outcome;
            }
        };
        let paths = backup_objects.paths();
        let chunk_count = backup_objects.chunk_count;
        let mut digests: HashMap<String, (String, u64)> = HashMap::new();
        loop {
            let missing: Vec<String> = paths
                .iter()
                .filter(|p| !digests.contains_key(*p))
                .cloned()
                .collect();
            if missing.is_empty() {
                break;
            }
            for part in missing.chunks(10_000) {
                match cairn_ledger::query::digests(&self.pg, part).await {
                    Ok(found) => digests.extend(found),
                    Err(e) => tracing::warn!(error = %e, "digest lookup failed"),
                }
            }
            if deadline.passed() {
                let n = paths.iter().filter(|p| !digests.contains_key(*p)).count();
                outcome.reasons.push(format!(
                    "{n} objects have no digest in the ledger (is the ledger worker running?)"
                ));
                return outcome;
            }
            if paths.iter().any(|p| !digests.contains_key(p)) {
                tokio::time::sleep(POLL).await;
            }
        }
        // Read back what this backup wrote (its new chunks, chunk lists and
        // manifest). Chunks it shares with earlier backups were read back and
        // checked when they were written: here they only have to be present
        // (one listing per network); `cairn health --full` re-reads them all.
        let fresh: std::collections::HashSet<usize> =
            backup_objects.new_chunks.iter().copied().collect();
        let (read, listed): (Vec<usize>, Vec<usize>) =
            (0..paths.len()).partition(|i| *i >= chunk_count || fresh.contains(i));
        let expected = |i: &usize| Expected {
            path: paths[*i].clone(),
            sha256: digests[&paths[*i]].0.clone(),
        };
        // An erasure-coded pack is held to its shard's digest on each network.
        let shards = if ing.redundancy.erasure().is_some() {
            let packs: Vec<String> = read
                .iter()
                .filter(|i| **i < chunk_count)
                .map(|i| paths[*i].clone())
                .collect();
            match cairn_ledger::query::shard_digests(&self.pg, &packs).await {
                Ok(found) => found,
                Err(e) => {
                    outcome
                        .reasons
                        .push(format!("shard digests unreadable: {e}"));
                    return outcome;
                }
            }
        } else {
            HashMap::new()
        };
        let everything_on = |network: &str| -> Arc<Vec<Expected>> {
            let index = ing.networks.iter().position(|n| n == network);
            Arc::new(
                read.iter()
                    .map(|i| {
                        let e = expected(i);
                        match (shards.get(&e.path), index) {
                            (Some(s), Some(at)) if at < s.files.len() => Expected {
                                sha256: s.files[at].0.clone(),
                                ..e
                            },
                            _ => e,
                        }
                    })
                    .collect(),
            )
        };
        // Where a network's `read_back` is off: its chunk list and manifest
        // are read back, its new data objects held on the store worker's
        // word (recorded in the ledger as stored there).
        let metadata: Arc<Vec<Expected>> = Arc::new(
            read.iter()
                .filter(|i| **i >= chunk_count)
                .map(expected)
                .collect(),
        );
        let new_data: Vec<(String, Vec<u8>)> = read
            .iter()
            .filter(|i| **i < chunk_count)
            .filter_map(|i| object_id(&backup_objects.keys[*i]).map(|id| (paths[*i].clone(), id)))
            .collect();
        let shared: Vec<String> = listed.iter().map(|&i| paths[i].clone()).collect();

        // 3. Every network, in parallel; where a network locks objects and
        // a compliance rule keeps the backup, every object of it (shared
        // chunks too) locked at least that long.
        let retain_until = ing.retain_until.as_deref().and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(std::time::SystemTime::from)
        });
        let all_paths = &paths;
        let deadline = &deadline;
        let checks = targets.networks().iter().map(|net| {
            let read_back = self.read_back.get(net.name()).copied().unwrap_or(true);
            let (everything, metadata) = (everything_on(net.name()), metadata.clone());
            let (shared, new_data) = (&shared, &new_data);
            async move {
                let mut f = if read_back {
                    check::check_network(net.clone(), everything, deadline.clone()).await
                } else {
                    let mut f = check::check_network(net.clone(), metadata, deadline.clone()).await;
                    f.missing
                        .extend(self.unrecorded(net.name(), new_data, deadline).await);
                    f
                };
                f.missing
                    .extend(check::absent(net, shared, deadline.clone()).await);
                let locked = match retain_until {
                    Some(until) if net.locks() && f.ok() => {
                        Some(lock_all(net, all_paths, until).await)
                    }
                    _ => None,
                };
                (f, read_back, locked)
            }
        });
        for (f, read_back, locked) in futures::future::join_all(checks).await {
            let (mut ok, mut detail) = (f.ok(), f.detail());
            let locked_until = match locked {
                Some(Ok(())) => ing.retain_until.clone(),
                Some(Err(e)) => {
                    ok = false;
                    detail = format!(
                        "not locked until {}: {e}",
                        ing.retain_until.as_deref().unwrap_or_default()
                    );
                    None
                }
                None => None,
            };
            if !ok {
                outcome
                    .reasons
                    .push(format!("network {}: {detail}", f.network));
            }
            outcome.networks.push(NetworkReport {
                network: f.network.clone(),
                ok,
                missing: f.missing.len() as u64,
                corrupt: f.corrupt.len() as u64,
                detail,
                checked: if read_back {
                    Checked::Read
                } else {
                    Checked::Stored
                },
                locked_until,
            });
        }

        // 4. Figures and the sealed root (chunk id ‖ ciphertext digest).
        let mut sealed = RootBuilder::new();
        for leaf in sealed_leaves(&backup_objects, |i| digests[&paths[i]].0.clone()) {
            sealed.push(&leaf);
        }
        let new_chunks = &backup_objects.new_chunks;
        outcome.sealed_root = hex::encode(sealed.root());
        let meta_bytes: u64 = paths[chunk_count..].iter().map(|p| digests[p].1).sum();
        // What one network got of a pack: all of it, or one shard.
        let chunk_bytes: u64 = new_chunks
            .iter()
            .map(|&i| {
                shards
                    .get(&paths[i])
                    .and_then(|s| s.files.first())
                    .map(|f| f.1)
                    .unwrap_or(digests[&paths[i]].1)
            })
            .sum();
        outcome.stats = Stats {
            bytes_stored: chunk_bytes + meta_bytes,
            chunks_new: backup_objects.chunks_new,
            ..ing.stats.clone()
        };
        outcome
    }
}

/// Locks every object at `paths` on `net` at least until `until` (a few
/// at a time); the first failure, if any.
pub(crate) async fn lock_all(
    net: &cairn_networks::DynNetwork,
    paths: &[String],
    until: std::time::SystemTime,
) -> Result<(), String> {
    use futures::StreamExt;
    let results: Vec<Option<String>> = futures::stream::iter(paths.to_vec())
        .map(|p| {
            let net = net.clone();
            async move {
                // The lock the network reports now, not the request's word.
                match net.retain(&p, until).await {
                    Ok(Some(l)) if l.until.is_some_and(|u| u >= until) => None,
                    Ok(Some(l)) => Some(format!(
                        "{p}: the network reports its lock ending {}",
                        l.until
                            .map(|u| time::OffsetDateTime::from(u).to_string())
                            .unwrap_or_else(|| "never set".into())
                    )),
                    Ok(None) => Some(format!("{p}: the network locks nothing")),
                    Err(e) => Some(e.to_string()),
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let failures: Vec<String> = results.into_iter().flatten().collect();
    match failures.first() {
        None => Ok(()),
        Some(first) => Err(format!(
            "{} of {} objects: {first}",
            failures.len(),
            paths.len()
        )),
    }
}

/// The event that ends a backup. Replicated: `completed` when at least
/// `min_copies` networks (and at least one) hold it whole, `degraded` when
/// some do, `failed` when none does. Erasure-coded `k/n`: `completed` when
/// all `n` hold their part, `degraded` while at least `k` do (it restores,
/// with less to spare; repair rebuilds the rest), `failed` below `k`.
pub fn verdict(mut outcome: Outcome, redundancy: &Redundancy) -> Event {
    let healthy = outcome.networks.iter().filter(|n| n.ok).count();
    let (complete, restorable) = match redundancy {
        Redundancy::Replicate { min_copies } => (*min_copies as usize, 1),
        Redundancy::Erasure(e) => (e.n as usize, e.k as usize),
    };
    if healthy == 0 || healthy < restorable {
        if healthy > 0 {
            outcome.reasons.push(format!(
                "{healthy} network(s) hold their shards, and {redundancy} needs {restorable} to rebuild each pack"
            ));
        }
        return Event::BackupFailed(outcome);
    }
    if healthy >= complete {
        // The policy holds; per-network findings stay in `networks`.
        outcome.reasons.clear();
        Event::BackupCompleted(outcome)
    } else {
        Event::BackupDegraded(outcome)
    }
}

#[async_trait::async_trait]
impl Handler for VerifyWorker {
    async fn handle(&self, d: &Delivery) -> Result<(), Failure> {
        let env: Envelope = decode(&d.payload, "event")?;
        let Event::BackupIngested(ing) = &env.event else {
            return Err(Failure::Permanent(format!(
                "expected backup.ingested on {}, got {}",
                d.subject,
                env.event.kind()
            )));
        };
        // A run whose ingest was taken over by another process may still
        // have finished: the backup is the later run's to verify.
        let current = cairn_bus::runs::current(&self.bus, &env.backup_id).await?;
        if cairn_bus::runs::not_current(current.as_ref(), ing.run.as_ref()) {
            tracing::info!(backup = %env.backup_id, "backup.ingested of a superseded run; not verified");
            return Ok(());
        }
        let outcome = self.outcome(&env.backup_id, ing).await;
        let event = verdict(outcome, &ing.redundancy);
        tracing::info!(backup = %env.backup_id, result = event.kind(), "verified");
        let out = Envelope::answer(self.source.clone(), &env, event);
        Ok(self.bus.publish_event(&out).await?)
    }
}

/// Runs the verify worker until the process stops.
pub async fn run(worker: VerifyWorker, concurrency: usize) -> Result<(), BusError> {
    let bus = worker.bus.clone();
    let worker = Arc::new(worker);
    let watched = worker.clone();
    tokio::select! {
        r = cairn_bus::worker::run(bus, Stage::Verify, None, concurrency, worker) => r,
        () = cairn_ledger::db::closed(&watched.pg) => Err(BusError::Stopped(
            "verify's PostgreSQL connection is gone; stopping, to be started again with a new one".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ok: &[bool]) -> Outcome {
        Outcome {
            networks: ok
                .iter()
                .enumerate()
                .map(|(i, ok)| NetworkReport {
                    network: format!("n{i}"),
                    ok: *ok,
                    ..Default::default()
                })
                .collect(),
            reasons: vec!["network n1: 3 objects missing".into()],
            ..Default::default()
        }
    }

    #[test]
    fn the_verdict_follows_the_copies_the_policy_needs() {
        let policy = |min_copies| Redundancy::Replicate { min_copies };
        match verdict(outcome(&[true, true]), &policy(2)) {
            Event::BackupCompleted(o) => assert!(o.reasons.is_empty()),
            e => panic!("{e:?}"),
        }
        // One copy is enough when the policy says so; the finding stays.
        match verdict(outcome(&[true, false]), &policy(1)) {
            Event::BackupCompleted(o) => assert!(!o.networks[1].ok && o.reasons.is_empty()),
            e => panic!("{e:?}"),
        }
        match verdict(outcome(&[true, false]), &policy(2)) {
            Event::BackupDegraded(o) => assert_eq!(o.reasons.len(), 1),
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            verdict(outcome(&[false, false]), &policy(1)),
            Event::BackupFailed(_)
        ));
        // No network at all is never a success, whatever the policy.
        assert!(matches!(
            verdict(outcome(&[]), &policy(0)),
            Event::BackupFailed(_)
        ));
    }

    #[test]
    fn an_erasure_coded_backup_is_complete_with_every_shard_and_restorable_with_k() {
        let ec = Redundancy::Erasure(cairn_events::Erasure { k: 3, n: 5 });
        match verdict(outcome(&[true; 5]), &ec) {
            Event::BackupCompleted(o) => assert!(o.reasons.is_empty()),
            e => panic!("{e:?}"),
        }
        // Four or three networks whole: it restores, with less to spare.
        for ok in [
            [true, false, true, true, true],
            [true, false, true, false, true],
        ] {
            assert!(
                matches!(verdict(outcome(&ok), &ec), Event::BackupDegraded(_)),
                "{ok:?}"
            );
        }
        // Two: no pack can be rebuilt from what verify saw whole.
        match verdict(outcome(&[true, false, false, false, true]), &ec) {
            Event::BackupFailed(o) => assert!(
                o.reasons
                    .iter()
                    .any(|r| r.contains("2 network(s) hold their shards")
                        && r.contains("erasure 3/5 needs 3")),
                "{:?}",
                o.reasons
            ),
            e => panic!("{e:?}"),
        }
    }
}
