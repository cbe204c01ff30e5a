//! Projections of the log that the CLI and the stages query: backups and
//! their status, the digest each object must have, which network holds
//! which chunk or pack, which pack holds which chunk, and what each network
//! holds and was asked ([`cairn_ledger::usage`]). Each is a pure function of
//! the log's entries, so `cairn audit rebuild` rebuilds them with the log.

use cairn_events::{Envelope, Event, KeyId, ObjectKey, Run};
use std::collections::HashMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Statement, Transaction};

/// Which shard of a pack a network holds (index, k); None: all of it.
type HeldShard = Option<(i16, i16)>;

/// Applies a batch's events to the projections inside its transaction.
/// `object.sealed` and chunk `object.stored` (nearly every event) are
/// gathered and written as one statement per table; any other event first
/// writes what was gathered, so the projections see the events in log order
/// wherever order matters. Other statements are prepared once per batch.
#[derive(Default)]
pub struct Projector {
    prepared: Prepared,
    /// Object path → (SHA-256, length): the last sealing of a path wins.
    digests: HashMap<String, (String, i64)>,
    /// (chunk or pack, network, which shard it holds: index and k).
    copies: Vec<(Vec<u8>, String, HeldShard)>,
    /// (path, index, k, n, SHA-256, length) of each shard sealing made.
    shards: Vec<(String, i16, i16, i16, String, i64)>,
    /// (chunk, pack, offset, length) from packs' `object.sealed`.
    packed: Vec<(Vec<u8>, Vec<u8>, i32, i32)>,
    /// What each network holds and what was asked of it.
    usage: cairn_ledger::usage::UsageProjector,
    /// Each backup's latest run, as far as read ([`cairn_bus::runs`]).
    runs: HashMap<String, Option<Run>>,
}

impl Projector {
    pub async fn apply(
        &mut self,
        tx: &Transaction<'_>,
        env: &Envelope,
    ) -> Result<(), tokio_postgres::Error> {
        self.usage.apply(tx, env).await?;
        match &env.event {
            // An earlier run's manifest, catalogue or chunk list page, read
            // after anything of a later run of its backup, would not be
            // what the networks keep.
            Event::ObjectSealed(d) if self.superseded(tx, env, d.run.as_ref()).await? => {
                tracing::info!(backup = %env.backup_id, object = %cairn_repo::layout::describe(&d.object), "of a superseded run; not recorded");
                Ok(())
            }
            Event::ObjectSealed(d) => {
                self.digest(d);
                Ok(())
            }
            Event::BackupIngested(i) if self.superseded(tx, env, i.run.as_ref()).await? => {
                tracing::info!(backup = %env.backup_id, "backup.ingested of a superseded run; not recorded");
                Ok(())
            }
            Event::BackupStarted { run, .. } if self.superseded(tx, env, run.as_ref()).await? => {
                tracing::info!(backup = %env.backup_id, "backup.started of a superseded run; not recorded");
                Ok(())
            }
            Event::ObjectStored(st) => {
                // A pack's copies are kept under its id, beside chunks'.
                let shard = st.shard.map(|s| (s.index as i16, s.k as i16));
                match &st.digest.object {
                    ObjectKey::Chunk { id } => {
                        self.copies.push((id.0.to_vec(), st.network.clone(), None))
                    }
                    ObjectKey::Pack { id } => {
                        self.copies.push((id.0.to_vec(), st.network.clone(), shard))
                    }
                    _ => {}
                }
                Ok(())
            }
            // As `object.sealed` and, on each network named, `object.stored`.
            Event::ObjectsRecovered(r) => {
                for d in &r.objects {
                    self.digest(d);
                    if let ObjectKey::Chunk {
                        id: cairn_events::ChunkId(id),
                    }
                    | ObjectKey::Pack {
                        id: cairn_events::PackId(id),
                    } = &d.object
                    {
                        let path = cairn_repo::layout::object(&d.object);
                        for n in &r.networks {
                            let shard = r
                                .shards
                                .iter()
                                .find(|s| s.path == path && &s.network == n)
                                .zip(d.shards.as_ref())
                                .map(|(s, sh)| (s.index as i16, sh.k as i16));
                            self.copies.push((id.to_vec(), n.clone(), shard));
                        }
                    }
                }
                Ok(())
            }
            _ => {
                self.flush(tx).await?;
                apply(tx, &mut self.prepared, env).await
            }
        }
    }

    /// Whether `run` is of a run of `env`'s backup that a later one read
    /// so far replaced ([`cairn_bus::runs`]). A later run than any read
    /// becomes the backup's run, whatever event names it first: events of
    /// one backup can reach the ledger out of order, and a run's objects
    /// must not be dropped for coming before its `backup.started`.
    async fn superseded(
        &mut self,
        tx: &Transaction<'_>,
        env: &Envelope,
        run: Option<&Run>,
    ) -> Result<bool, tokio_postgres::Error> {
        let Some(run) = run else {
            return Ok(false);
        };
        let id = env.backup_id.as_str();
        if !self.runs.contains_key(id) {
            let known = tx
                .query_opt(
                    "SELECT run, run_order FROM backups WHERE backup_id = $1",
                    &[&id],
                )
                .await?
                .and_then(|r| {
                    let key = KeyId::parse(r.get::<_, Option<&str>>(0)?).ok()?;
                    let order = r.get::<_, Option<i64>>(1)?;
                    Some(Run {
                        key,
                        order: order as u64,
                    })
                });
            self.runs.insert(id.to_string(), known);
        }
        let known = self.runs.get(id).copied().flatten();
        if cairn_bus::runs::superseded(known.as_ref(), Some(run)) {
            return Ok(true);
        }
        let latest = cairn_bus::runs::latest(known, Some(*run));
        if latest != known {
            self.runs.insert(id.to_string(), latest);
            self.prepared
                .execute(
                    tx,
                    "UPDATE backups SET run = $2, run_order = $3 WHERE backup_id = $1",
                    &[&id, &run.key.to_hex(), &(run.order as i64)],
                )
                .await?;
        }
        Ok(false)
    }

    /// Gathers an object's digest and, for a pack, where each of its chunks
    /// is: the last sealing of a path wins.
    fn digest(&mut self, d: &cairn_events::ObjectDigest) {
        if let ObjectKey::Pack { id: pack } = &d.object {
            for c in &d.packed {
                self.packed.push((
                    c.id.0.to_vec(),
                    pack.0.to_vec(),
                    c.offset as i32,
                    c.len as i32,
                ));
            }
        }
        let path = cairn_repo::layout::object(&d.object);
        if let Some(sh) = &d.shards {
            let (k, n) = (sh.k as i16, sh.files.len() as i16);
            for (i, f) in sh.files.iter().enumerate() {
                self.shards
                    .push((path.clone(), i as i16, k, n, f.sha256.clone(), f.len as i64));
            }
        }
        self.digests.insert(path, (d.sha256.clone(), d.len as i64));
    }

    /// Writes what was gathered; call before the transaction commits.
    pub async fn flush(&mut self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        self.usage.flush(tx).await?;
        if !self.digests.is_empty() {
            let (mut paths, mut sums, mut lens) = (Vec::new(), Vec::new(), Vec::new());
            for (path, (sha, len)) in self.digests.drain() {
                paths.push(path);
                sums.push(sha);
                lens.push(len);
            }
            tx.execute(
                "INSERT INTO object_digests (path, sha256, len)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
                 ON CONFLICT (path) DO UPDATE SET sha256 = EXCLUDED.sha256, len = EXCLUDED.len",
                &[&paths, &sums, &lens],
            )
            .await?;
        }
        if !self.packed.is_empty() {
            let (mut chunks, mut packs, mut offs, mut lens) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (c, p, o, l) in self.packed.drain(..) {
                chunks.push(c);
                packs.push(p);
                offs.push(o);
                lens.push(l);
            }
            tx.execute(
                "INSERT INTO pack_chunks (chunk_id, pack_id, off, len)
                 SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::int[], $4::int[])
                 ON CONFLICT DO NOTHING",
                &[&chunks, &packs, &offs, &lens],
            )
            .await?;
        }
        if !self.shards.is_empty() {
            let (mut paths, mut idx, mut ks, mut ns, mut sums, mut lens) = (
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            );
            // One row per shard in one statement (the last sealing wins).
            let last: HashMap<(String, i16), (i16, i16, String, i64)> = self
                .shards
                .drain(..)
                .map(|(p, i, k, n, sha, len)| ((p, i), (k, n, sha, len)))
                .collect();
            for ((p, i), (k, n, sha, len)) in last {
                paths.push(p);
                idx.push(i);
                ks.push(k);
                ns.push(n);
                sums.push(sha);
                lens.push(len);
            }
            tx.execute(
                "INSERT INTO shard_digests (path, shard, k, n, sha256, len)
                 SELECT * FROM unnest($1::text[], $2::int2[], $3::int2[], $4::int2[], $5::text[], $6::bigint[])
                 ON CONFLICT (path, shard) DO UPDATE
                 SET k = EXCLUDED.k, n = EXCLUDED.n, sha256 = EXCLUDED.sha256, len = EXCLUDED.len",
                &[&paths, &idx, &ks, &ns, &sums, &lens],
            )
            .await?;
        }
        if !self.copies.is_empty() {
            let (mut chunks, mut nets, mut shard, mut shard_k) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            // One row per copy in one statement: the last word stands.
            let last: HashMap<(Vec<u8>, String), HeldShard> =
                self.copies.drain(..).map(|(c, n, s)| ((c, n), s)).collect();
            for ((c, n), s) in last {
                chunks.push(c);
                nets.push(n);
                shard.push(s.map(|s| s.0));
                shard_k.push(s.map(|s| s.1));
            }
            // What a network holds now: a shard, or the whole pack.
            tx.execute(
                "INSERT INTO chunk_copies (chunk_id, network, shard, shard_k)
                 SELECT * FROM unnest($1::bytea[], $2::text[], $3::int2[], $4::int2[])
                 ON CONFLICT (chunk_id, network) DO UPDATE
                 SET shard = EXCLUDED.shard, shard_k = EXCLUDED.shard_k",
                &[&chunks, &nets, &shard, &shard_k],
            )
            .await?;
            // A chunk written again is live again: its mark goes.
            tx.execute(
                "DELETE FROM chunk_marks m USING unnest($1::bytea[], $2::text[]) AS s(chunk_id, network)
                 WHERE m.chunk_id = s.chunk_id AND m.network = s.network",
                &[&chunks, &nets],
            )
            .await?;
        }
        Ok(())
    }
}

/// Statements prepared in one transaction, so each projection is one round
/// trip (a batch of a thousand events would otherwise prepare a thousand).
#[derive(Default)]
pub struct Prepared(HashMap<&'static str, Statement>);

impl Prepared {
    async fn execute(
        &mut self,
        tx: &Transaction<'_>,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let stmt = match self.0.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = tx.prepare(sql).await?;
                self.0.insert(sql, s.clone());
                s
            }
        };
        tx.execute(&stmt, params).await
    }
}

/// A batch's chunk and pack ids (kept side by side in `chunk_marks` and
/// `chunk_copies`).
fn raw(b: &cairn_events::ChunkBatch) -> Vec<&[u8]> {
    b.chunks
        .iter()
        .map(|i| i.0.as_slice())
        .chain(b.packs.iter().map(|p| p.0.as_slice()))
        .collect()
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("event parts serialize")
}

/// What one event changes, as one statement (all but the two kinds
/// `Projector` gathers).
async fn apply(
    tx: &Transaction<'_>,
    prepared: &mut Prepared,
    env: &Envelope,
) -> Result<(), tokio_postgres::Error> {
    let id = env.backup_id.as_str();
    match &env.event {
        Event::BackupRequested(r) => {
            prepared.execute(
                tx,
                "INSERT INTO backups (backup_id, dataset, tags, source, networks, status, requested_at, requested_by)
                 VALUES ($1, $2, $3, $4::text::jsonb, $5, 'requested', $6::text::timestamptz, $7)
                 ON CONFLICT (backup_id) DO UPDATE SET dataset = $2, tags = $3, source = $4::text::jsonb,
                     requested_at = $6::text::timestamptz, requested_by = $7",
                &[&id, &r.dataset, &r.tags, &json(&r.source), &r.networks, &env.at, &r.requested_by],
            )
            .await?;
        }
        Event::BackupStarted { .. } => {
            // Its run, if later than any read, was recorded by
            // `Projector::superseded`.
            prepared.execute(
                tx,
                "UPDATE backups SET status = CASE WHEN status = 'requested' THEN 'running' ELSE status END
                 WHERE backup_id = $1",
                &[&id],
            )
            .await?;
        }
        Event::BackupIngested(i) => {
            prepared.execute(
                tx,
                "UPDATE backups SET status = CASE WHEN status IN ('requested', 'running') THEN 'verifying' ELSE status END,
                     stats = $2::text::jsonb, networks = $3, wal = $4::text::jsonb, rerouted = $5::text::jsonb
                 WHERE backup_id = $1",
                &[&id, &json(&i.stats), &i.networks, &i.wal.as_ref().map(json),
                  &(!i.rerouted.is_empty()).then(|| json(&i.rerouted))],
            )
            .await?;
        }
        Event::BackupCompleted(_) | Event::BackupDegraded(_) | Event::BackupFailed(_) => {
            let (status, o) = env.event.outcome().expect("an outcome");
            prepared.execute(
                tx,
                "INSERT INTO backups (backup_id, status, finished_at, stats, outcome)
                 VALUES ($1, $2, $3::text::timestamptz, $4::text::jsonb, $5::text::jsonb)
                 ON CONFLICT (backup_id) DO UPDATE SET status = $2, finished_at = $3::text::timestamptz,
                     stats = $4::text::jsonb, outcome = $5::text::jsonb",
                &[&id, &status, &env.at, &json(&o.stats), &json(o)],
            )
            .await?;
        }
        Event::BackupRecovered(r) => {
            let finished = (!r.ingested_at.is_empty()).then_some(r.ingested_at.as_str());
            // What health holds the digests to, as verify would have recorded.
            let outcome = cairn_events::Outcome {
                stats: r.stats.clone(),
                merkle_root: r.merkle_root.clone(),
                sealed_root: r.sealed_root.clone(),
                networks: Vec::new(),
                reasons: Vec::new(),
            };
            prepared.execute(
                tx,
                "INSERT INTO backups (backup_id, dataset, tags, source, networks, status, requested_at, requested_by,
                                      finished_at, stats, outcome, wal)
                 VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7::text::timestamptz, $8,
                         $9::text::timestamptz, $10::text::jsonb, $11::text::jsonb, $12::text::jsonb)
                 ON CONFLICT (backup_id) DO UPDATE SET dataset = $2, tags = $3, source = $4::text::jsonb,
                     networks = $5, status = $6, requested_at = $7::text::timestamptz, requested_by = $8,
                     finished_at = $9::text::timestamptz, stats = $10::text::jsonb, outcome = $11::text::jsonb,
                     wal = $12::text::jsonb",
                &[&id, &r.dataset, &r.tags, &json(&r.source), &r.networks, &r.status,
                  &r.requested_at, &r.requested_by, &finished, &json(&r.stats), &json(&outcome),
                  &r.wal.as_ref().map(json)],
            )
            .await?;
        }
        Event::DatasetKeyed(k) => {
            prepared
                .execute(
                    tx,
                    "INSERT INTO dataset_keys (fingerprint, tag, public_key, mac, created_at)
                     VALUES ($1, $2, $3, $4, $5::text::timestamptz) ON CONFLICT (fingerprint) DO NOTHING",
                    &[&k.fingerprint.to_hex(), &k.tag.to_hex(), &k.public_key, &k.mac, &env.at],
                )
                .await?;
        }
        Event::DatasetShredded(s) => {
            let keys: Vec<String> = s.keys.iter().map(|k| k.to_hex()).collect();
            let backups: Vec<&str> = s.backups.iter().map(|b| b.as_str()).collect();
            prepared
                .execute(
                    tx,
                    "UPDATE dataset_keys SET shredded_at = $3::text::timestamptz
                     WHERE (tag = $1 OR fingerprint = ANY($2)) AND shredded_at IS NULL",
                    &[&s.tag.to_hex(), &keys, &env.at],
                )
                .await?;
            prepared
                .execute(
                    tx,
                    "UPDATE backups SET status = 'shredded' WHERE backup_id = ANY($1)",
                    &[&backups],
                )
                .await?;
        }
        Event::BackupForgotten(_) => {
            prepared
                .execute(
                    tx,
                    "UPDATE backups SET status = 'forgotten' WHERE backup_id = $1",
                    &[&id],
                )
                .await?;
        }
        Event::BackupHeld(h) => {
            prepared
                .execute(
                    tx,
                    "INSERT INTO holds (backup_id, reason, held_by, held_at)
                     VALUES ($1, $2, $3, $4::text::timestamptz)
                     ON CONFLICT (backup_id) DO UPDATE SET reason = $2, held_by = $3, held_at = $4::text::timestamptz",
                    &[&id, &h.reason, &h.by, &env.at],
                )
                .await?;
        }
        Event::BackupReleased(_) => {
            prepared
                .execute(tx, "DELETE FROM holds WHERE backup_id = $1", &[&id])
                .await?;
        }
        // Gathered and written per batch by `Projector`.
        Event::ObjectSealed(_) | Event::ObjectStored(_) => {}
        Event::ObjectDeleted { network, object } => {
            let id: Option<&[u8]> = match object {
                ObjectKey::Chunk { id } => Some(&id.0),
                ObjectKey::Pack { id } => Some(&id.0),
                _ => None,
            };
            if let Some(id) = id {
                prepared
                    .execute(
                        tx,
                        "DELETE FROM chunk_copies WHERE chunk_id = $1 AND network = $2",
                        &[&id, network],
                    )
                    .await?;
            }
        }
        Event::ChunksMarked(b) => {
            // The first mark stands: a chunk marked again keeps its older time.
            prepared
                .execute(
                    tx,
                    "INSERT INTO chunk_marks (chunk_id, network, marked_at)
                     SELECT c, $2, $3::text::timestamptz FROM unnest($1::bytea[]) AS c
                     ON CONFLICT (network, chunk_id) DO NOTHING",
                    &[&raw(b), &b.network, &b.at],
                )
                .await?;
        }
        Event::ChunksRevived(b) => {
            prepared
                .execute(
                    tx,
                    "DELETE FROM chunk_marks WHERE network = $2 AND chunk_id = ANY($1)",
                    &[&raw(b), &b.network],
                )
                .await?;
        }
        Event::ChunksCondemned(b) => {
            prepared
                .execute(
                    tx,
                    "UPDATE chunk_marks SET condemned_at = $3::text::timestamptz
                     WHERE network = $2 AND chunk_id = ANY($1)",
                    &[&raw(b), &b.network, &b.at],
                )
                .await?;
        }
        Event::ChunksDeleted(b) => {
            let ids = raw(b);
            prepared
                .execute(
                    tx,
                    "DELETE FROM chunk_copies WHERE network = $2 AND chunk_id = ANY($1)",
                    &[&ids, &b.network],
                )
                .await?;
            // A pack gone from its last network: what it held goes too.
            if !b.packs.is_empty() {
                let packs: Vec<&[u8]> = b.packs.iter().map(|p| p.0.as_slice()).collect();
                prepared
                    .execute(
                        tx,
                        "DELETE FROM pack_chunks pc WHERE pc.pack_id = ANY($1)
                         AND NOT EXISTS (SELECT 1 FROM chunk_copies cc WHERE cc.chunk_id = pc.pack_id)",
                        &[&packs],
                    )
                    .await?;
            }
            prepared
                .execute(
                    tx,
                    "DELETE FROM chunk_marks WHERE network = $2 AND chunk_id = ANY($1)",
                    &[&ids, &b.network],
                )
                .await?;
        }
        Event::DrillCompleted(d) | Event::DrillFailed(d) => {
            let ok = matches!(env.event, Event::DrillCompleted(_));
            prepared
                .execute(
                    tx,
                    "INSERT INTO drills (event_id, backup_id, dataset, ok, pick, target, bytes, files, chunks,
                                         duration_ms, started_at, finished_at, reason, drilled_by)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::timestamptz,
                             $12::text::timestamptz, $13, $14)
                     ON CONFLICT (event_id) DO NOTHING",
                    &[
                        &env.id.as_str(),
                        &id,
                        &d.dataset,
                        &ok,
                        &d.pick,
                        &d.target,
                        &(d.bytes as i64),
                        &(d.files as i64),
                        &(d.chunks as i64),
                        &(d.duration_ms as i64),
                        &d.started_at,
                        &env.at,
                        &d.reason,
                        &d.by,
                    ],
                )
                .await?;
        }
        Event::ScheduleAdded { schedule, by } => {
            prepared
                .execute(
                    tx,
                    "INSERT INTO schedules (dataset, cron, spec, added_by, added_at)
                     VALUES ($1, $2, $3::text::jsonb, $4, $5::text::timestamptz)
                     ON CONFLICT (dataset, cron) DO UPDATE SET spec = $3::text::jsonb, added_by = $4,
                         added_at = $5::text::timestamptz",
                    &[&schedule.dataset, &schedule.cron, &json(schedule), by, &env.at],
                )
                .await?;
        }
        Event::ScheduleRemoved { dataset, cron, .. } => {
            prepared
                .execute(
                    tx,
                    "DELETE FROM schedules WHERE dataset = $1 AND cron = $2",
                    &[dataset, cron],
                )
                .await?;
        }
        Event::BackupMigrated(m) => {
            prepared
                .execute(
                    tx,
                    "UPDATE backups SET networks = array_append(networks, $2)
                     WHERE backup_id = $1 AND NOT ($2 = ANY(networks))",
                    &[&id, &m.to],
                )
                .await?;
        }
        Event::BackupLeft(l) => {
            prepared
                .execute(
                    tx,
                    "UPDATE backups SET networks = ARRAY(SELECT n FROM unnest(networks) AS n WHERE n <> ALL($2))
                     WHERE backup_id = $1",
                    &[&id, &l.networks],
                )
                .await?;
        }
        Event::BackupMoved(m) => {
            // In the same place: of an erasure-coded backup, network `i`
            // holds shard `i`.
            prepared
                .execute(
                    tx,
                    "UPDATE backups SET networks = array_replace(networks, $2, $3)
                     WHERE backup_id = $1 AND NOT ($3 = ANY(networks))",
                    &[&id, &m.from, &m.to],
                )
                .await?;
        }
        Event::BackupRestored(_)
        | Event::BackupLocked(_)
        | Event::CollectionFinished(_)
        | Event::ForgetRequested { .. }
        | Event::ForgetRefused { .. }
        | Event::ScheduleSkipped { .. }
        | Event::RepoInitialised { .. }
        | Event::KeyAdded(_)
        | Event::KeyRemoved(_)
        | Event::KeySplit(_)
        | Event::WriterIssued(_)
        | Event::KeyUpgraded(_)
        | Event::KeyRotated(_)
        | Event::DeadLettered(_)
        | Event::LedgerRecovered(_) => {}
        // `cairn_ledger::usage`'s, applied by `Projector`.
        Event::NetworkTraffic(_) | Event::OperatorAction(_) => {}
        // Gathered by `Projector`.
        Event::ObjectsRecovered(_) => {}
    }
    Ok(())
}
