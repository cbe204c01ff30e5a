//! The collector's marks as the ledger projects them (`chunk_marks`), and
//! what ingest may deduplicate against given them: a chunk being swept
//! (condemned) is never leaned on, so that no backup comes to need a chunk
//! in the moment it is deleted.

use cairn_events::{ChunkId, PackId};
use cairn_repo::format::Location;
use std::collections::{HashMap, HashSet};
use tokio_postgres::Client;

/// One chunk's mark on one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Unix seconds, the collector's clock when it found the chunk
    /// referenced by no backup.
    pub marked_at: i64,
    /// A sweep is about to delete it.
    pub condemned: bool,
}

/// Every mark on `network`.
pub async fn marks(
    c: &Client,
    network: &str,
) -> Result<HashMap<ChunkId, Mark>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT chunk_id, extract(epoch FROM marked_at)::bigint, condemned_at IS NOT NULL
             FROM chunk_marks WHERE network = $1",
            &[&network],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let id = <[u8; 32]>::try_from(r.get::<_, &[u8]>(0)).ok()?;
            Some((
                ChunkId(id),
                Mark {
                    marked_at: r.get(1),
                    condemned: r.get(2),
                },
            ))
        })
        .collect())
}

/// How many of `ids` the ledger shows condemned on `network` (the
/// collector waits for its own `chunks.condemned` to be recorded).
pub async fn condemned_count(
    c: &Client,
    network: &str,
    ids: &[ChunkId],
) -> Result<u64, tokio_postgres::Error> {
    let raw: Vec<&[u8]> = ids.iter().map(|i| i.0.as_slice()).collect();
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM chunk_marks
             WHERE network = $1 AND chunk_id = ANY($2) AND condemned_at IS NOT NULL",
            &[&network, &raw],
        )
        .await?
        .get(0);
    Ok(n as u64)
}

/// What ingest may do with a batch of chunk ids.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChunkStates {
    /// Held by every target network (alone, or in one pack that every
    /// target holds) and being swept on none: deduplicate, pointing at
    /// this location.
    pub known: HashMap<ChunkId, Location>,
    /// Not known, and being swept (alone or in a pack) on some target
    /// network: wait until the sweep is over.
    pub condemned: HashSet<ChunkId>,
}

/// Makes `c` plan [`chunk_states`] by index whatever the tables' statistics
/// say, for a connection that asks it hundreds of ids at once. Without
/// statistics (a young repository, or autovacuum off) PostgreSQL estimates
/// `chunk_id = ANY($1)` over a few hundred ids as most of the table and
/// scans all of `pack_chunks` (7 ms at 30,000 rows, growing), or with a
/// JIT compile 120 ms; with sequential scans priced out it probes the
/// primary keys, which is always right for a lookup by id. JIT is off for
/// the same reason: a priced-out plan looks expensive enough to compile.
pub async fn plan_lookups_by_index(c: &Client) -> Result<(), tokio_postgres::Error> {
    c.batch_execute("SET enable_seqscan = off; SET jit = off")
        .await
}

/// Classifies `ids` for a backup to `networks`. A chunk neither known nor
/// condemned is new and written again.
///
/// A pack counts as held by a replicated backup (`erasure_k` None) only
/// where every target network holds it whole; by an erasure-coded backup
/// that needs `k` of its networks, where every target network holds it
/// whole or one shard of it, no two the same shard, of a coding that needs
/// at most `k`: any `k` of the networks then rebuild it.
pub async fn chunk_states(
    c: &Client,
    ids: &[ChunkId],
    networks: &[String],
    erasure_k: Option<u32>,
) -> Result<ChunkStates, tokio_postgres::Error> {
    let raw: Vec<&[u8]> = ids.iter().map(|i| i.0.as_slice()).collect();
    let n = networks.len() as i64;
    let k = erasure_k.map(|k| k.min(i16::MAX as u32) as i16);
    // A pack's copies and marks are kept under its id in `chunk_copies`
    // and `chunk_marks` (migration 9). The batch's rows of `pack_chunks` are
    // found first and each is looked up by index: planned as a join, a
    // fresh repository's stale statistics made PostgreSQL probe
    // `pack_chunks` once per pack it holds (40 ms a batch at 118 packs,
    // growing with the repository).
    let rows = c
        .query(
            "WITH pc AS MATERIALIZED (
                 SELECT chunk_id, pack_id, off, len FROM pack_chunks WHERE chunk_id = ANY($1))
             SELECT cc.chunk_id, NULL::bytea, 0, 0, false FROM chunk_copies cc
             WHERE cc.chunk_id = ANY($1) AND cc.network = ANY($2)
               AND NOT EXISTS (SELECT 1 FROM chunk_marks m WHERE m.chunk_id = cc.chunk_id
                               AND m.network = ANY($2) AND m.condemned_at IS NOT NULL)
             GROUP BY cc.chunk_id HAVING count(*) = $3
             UNION ALL
             SELECT pc.chunk_id, pc.pack_id, pc.off, pc.len, false FROM pc
             WHERE (SELECT count(*) FROM chunk_copies cc
                    WHERE cc.chunk_id = pc.pack_id AND cc.network = ANY($2)
                      AND (cc.shard IS NULL OR cc.shard_k <= $4::int2)) = $3
               AND (SELECT count(DISTINCT cc.shard) = count(cc.shard) FROM chunk_copies cc
                    WHERE cc.chunk_id = pc.pack_id AND cc.network = ANY($2))
               AND NOT EXISTS (SELECT 1 FROM chunk_marks m WHERE m.chunk_id = pc.pack_id
                               AND m.network = ANY($2) AND m.condemned_at IS NOT NULL)
             UNION ALL
             SELECT DISTINCT chunk_id, NULL::bytea, 0, 0, true FROM chunk_marks
             WHERE chunk_id = ANY($1) AND network = ANY($2) AND condemned_at IS NOT NULL
             UNION ALL
             SELECT DISTINCT pc.chunk_id, NULL::bytea, 0, 0, true FROM pc
             WHERE EXISTS (SELECT 1 FROM chunk_marks m WHERE m.chunk_id = pc.pack_id
                           AND m.network = ANY($2) AND m.condemned_at IS NOT NULL)",
            &[&raw, &networks, &n, &k],
        )
        .await?;
    let mut out = ChunkStates::default();
    let mut condemned = HashSet::new();
    for r in &rows {
        let Ok(id) = <[u8; 32]>::try_from(r.get::<_, &[u8]>(0)) else {
            continue;
        };
        let id = ChunkId(id);
        if r.get::<_, bool>(4) {
            condemned.insert(id);
            continue;
        }
        let loc = match r.get::<_, Option<&[u8]>>(1) {
            None => Location::Alone(id),
            Some(pack) => {
                let Ok(pack) = <[u8; 32]>::try_from(pack) else {
                    continue;
                };
                Location::Packed {
                    pack: PackId(pack),
                    offset: r.get::<_, i32>(2) as u32,
                    len: r.get::<_, i32>(3) as u32,
                }
            }
        };
        out.known.entry(id).or_insert(loc);
    }
    out.condemned = condemned
        .into_iter()
        .filter(|id| !out.known.contains_key(id))
        .collect();
    Ok(out)
}

/// Which of `ids` are packs (the ledger saw them sealed as packs).
pub async fn packs_among(
    c: &Client,
    ids: &[ChunkId],
) -> Result<HashSet<ChunkId>, tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let raw: Vec<&[u8]> = ids.iter().map(|i| i.0.as_slice()).collect();
    Ok(c.query(
        "SELECT DISTINCT pack_id FROM pack_chunks WHERE pack_id = ANY($1)",
        &[&raw],
    )
    .await?
    .iter()
    .filter_map(|r| <[u8; 32]>::try_from(r.get::<_, &[u8]>(0)).ok())
    .map(ChunkId)
    .collect())
}

/// Backups the ledger records as forgotten: their chunk lists on networks
/// that cannot delete are no longer references.
pub async fn forgotten(c: &Client) -> Result<HashSet<String>, tokio_postgres::Error> {
    Ok(c.query(
        "SELECT backup_id FROM backups WHERE status = 'forgotten'",
        &[],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// Backups that left networks after migrating to an archive
/// (`backup.left`): per backup, the networks it left. Their chunk lists no
/// longer keep their chunks on those networks.
pub async fn left(
    c: &Client,
) -> Result<std::collections::HashMap<String, Vec<String>>, tokio_postgres::Error> {
    let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
    for r in c
        .query(
            "SELECT entry FROM ledger_entries WHERE kind = 'backup.left' ORDER BY seq",
            &[],
        )
        .await?
    {
        // An entry that does not decode leaves nothing out: its chunks stay
        // referenced everywhere.
        let Ok(env) =
            cairn_events::decode::<cairn_events::Envelope>(&r.get::<_, Vec<u8>>(0), "entry")
        else {
            continue;
        };
        if let cairn_events::Event::BackupLeft(l) = env.event {
            out.entry(env.backup_id.as_str().to_string())
                .or_default()
                .extend(l.networks);
        }
    }
    // A network the backup is on again (a later migration back to it) is
    // not left: its chunks there count as referenced.
    let ids: Vec<String> = out.keys().cloned().collect();
    for r in c
        .query(
            "SELECT backup_id, networks FROM backups WHERE backup_id = ANY($1)",
            &[&ids],
        )
        .await?
    {
        let (id, now): (String, Vec<String>) = (r.get(0), r.get(1));
        if let Some(left) = out.get_mut(&id) {
            left.retain(|n| !now.contains(n));
        }
    }
    out.retain(|_, left| !left.is_empty());
    Ok(out)
}

/// The sealed length the ledger recorded for each of `paths` (0 for a path
/// it never saw).
pub async fn lengths(c: &Client, paths: &[String]) -> Result<u64, tokio_postgres::Error> {
    let n: Option<i64> = c
        .query_one(
            "SELECT sum(len)::bigint FROM object_digests WHERE path = ANY($1)",
            &[&paths],
        )
        .await?
        .get(0);
    Ok(n.unwrap_or(0).max(0) as u64)
}
