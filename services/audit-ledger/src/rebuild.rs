//! Rebuilding the ledger from its copy on JetStream (`cairn audit rebuild`).
//! The ledger re-publishes every committed entry on `audit.entry.<kind>`
//! (AUDIT stream: kept, no delete, no purge) with its place in the log, so
//! replaying that history into an empty database appends the same bytes in
//! the same order: the same tree and root, and the projections with them.
//! The signed checkpoints published on `audit.checkpoint` are restored too,
//! each only if the rebuilt tree has exactly its root.
//!
//! (The EVENTS stream holds the same events, but in the order stages
//! published them; the ledger's order also depends on redeliveries, so the
//! tree is rebuilt from the ledger's own copy.)

use crate::append::Ledger;
use cairn_bus::{Bus, BusError};
use cairn_events::{decode, Envelope};
use cairn_ledger::tree::{self, TreeError};
use cairn_tlog::reader::Known;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("the ledger database already holds {0} entries: rebuild into an empty database (a new postgres.url)")]
    NotEmpty(u64),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(
        "audit.entry message {stream_seq} has no entry sequence number (Nats-Msg-Id {msg_id:?})"
    )]
    NoSeq {
        stream_seq: u64,
        msg_id: Option<String>,
    },
    #[error("entry {0} appears twice on audit.entry with different bytes")]
    Conflict(u64),
    #[error("entry {seq} from audit.entry does not decode: {detail}")]
    Undecodable { seq: u64, detail: String },
    #[error("entry {0} is missing from audit.entry (the copy holds later entries): cannot rebuild past it")]
    Gap(u64),
    #[error("the event of entry {seq} appears again on audit.entry under a later number: the copy is not a log (discard this database)")]
    Duplicate { seq: u64 },
}

/// What a rebuild produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rebuilt {
    pub entries: u64,
    /// Merkle root of the rebuilt log (hex).
    pub root: String,
    /// Signed checkpoints found on `audit.checkpoint` whose root the rebuilt
    /// tree has (restored into `ledger_checkpoints`).
    pub checkpoints_matching: Vec<u64>,
    /// Those whose root it does not have, or whose size exceeds the log.
    pub checkpoints_not_matching: Vec<u64>,
}

const BATCH: usize = 500;

/// Replays `audit.entry.>` into the empty ledger behind `pg`.
pub async fn rebuild(bus: &Bus, pg: tokio_postgres::Client) -> Result<Rebuilt, RebuildError> {
    let size: i64 = pg
        .query_one("SELECT size FROM ledger_head WHERE id = 1", &[])
        .await?
        .get(0);
    if size != 0 {
        return Err(RebuildError::NotEmpty(size as u64));
    }
    let ledger = Ledger::new(pg, None);
    let mut next = 1u64;
    // Entries that arrived ahead of their turn (two publishers interleaved).
    let mut ahead: BTreeMap<u64, bytes::Bytes> = BTreeMap::new();
    let mut earlier: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    let mut batch: Vec<bytes::Bytes> = Vec::new();
    let mut replay = bus.replay_audit(&bus.subjects.all_audit_entries()).await?;
    while let Some(m) = replay.next().await {
        let m = m?;
        let seq = m.entry_seq().ok_or(RebuildError::NoSeq {
            stream_seq: m.stream_seq,
            msg_id: m.msg_id.clone(),
        })?;
        let leaf = cairn_tlog::leaf_hash(&m.payload).0;
        if seq < next || ahead.contains_key(&seq) {
            // Re-published after the duplicate window: must be the same bytes.
            let same = earlier.get(&seq).map(|h| *h == leaf).unwrap_or_else(|| {
                ahead
                    .get(&seq)
                    .is_some_and(|b| cairn_tlog::leaf_hash(b).0 == leaf)
            });
            if !same {
                return Err(RebuildError::Conflict(seq));
            }
            continue;
        }
        ahead.insert(seq, m.payload);
        while let Some(entry) = ahead.remove(&next) {
            earlier.insert(next, cairn_tlog::leaf_hash(&entry).0);
            batch.push(entry);
            next += 1;
        }
        if batch.len() >= BATCH {
            append(&ledger, next - batch.len() as u64, &mut batch).await?;
        }
    }
    append(&ledger, next - batch.len() as u64, &mut batch).await?;
    if !ahead.is_empty() {
        return Err(RebuildError::Gap(next));
    }
    let entries = next - 1;
    let pg = ledger.into_client();
    let mut known = Known::new();
    let root = tree::root(&pg, &mut known, entries).await?;

    let mut matching = Vec::new();
    let mut not_matching = Vec::new();
    let mut checkpoints = bus.replay_audit(&bus.subjects.checkpoint()).await?;
    while let Some(m) = checkpoints.next().await {
        let m = m?;
        let Ok((size, signed_root)) = cairn_tlog::checkpoint::unverified(&m.payload) else {
            continue;
        };
        let ours = if size <= entries && size > 0 {
            Some(tree::root(&pg, &mut known, size).await?)
        } else {
            None
        };
        if ours == Some(signed_root) {
            pg.execute(
                "INSERT INTO ledger_checkpoints (size, root, note) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING",
                &[&(size as i64), &signed_root.0.as_slice(), &m.payload.as_ref()],
            )
            .await?;
            matching.push(size);
        } else {
            not_matching.push(size);
        }
    }
    Ok(Rebuilt {
        entries,
        root: hex::encode(root.0),
        checkpoints_matching: matching,
        checkpoints_not_matching: not_matching,
    })
}

/// Re-publishes on `audit.entry` the entries the log holds and the stream
/// lacks: a log written before entries were re-published, or entries whose
/// publishing was lost. Cheap when nothing is missing (one count). Returns
/// how many were published.
pub async fn republish_missing(
    bus: &Bus,
    pg: &tokio_postgres::Client,
) -> Result<u64, RebuildError> {
    let size: i64 = pg
        .query_one("SELECT size FROM ledger_head WHERE id = 1", &[])
        .await?
        .get(0);
    let size = size as u64;
    let mut replay = bus.replay_audit(&bus.subjects.all_audit_entries()).await?;
    if replay.total() >= size {
        return Ok(0);
    }
    let mut present = vec![false; size as usize + 1];
    while let Some(m) = replay.next().await {
        if let Some(seq) = m?.entry_seq() {
            if let Some(p) = present.get_mut(seq as usize) {
                *p = true;
            }
        }
    }
    let rows = pg
        .query_raw(
            "SELECT seq, kind, entry FROM ledger_entries WHERE seq <= $1 ORDER BY seq",
            &[&(size as i64)],
        )
        .await?;
    futures::pin_mut!(rows);
    let mut batch: Vec<(u64, &'static str, bytes::Bytes)> = Vec::new();
    let mut published = 0;
    use futures::TryStreamExt;
    while let Some(r) = rows.try_next().await? {
        let seq = r.get::<_, i64>(0) as u64;
        if present.get(seq as usize).copied().unwrap_or(true) {
            continue;
        }
        let kind: String = r.get(1);
        let kind = cairn_events::Event::known_kind(&kind).unwrap_or("unknown");
        batch.push((seq, kind, r.get::<_, Vec<u8>>(2).into()));
        if batch.len() >= BATCH {
            bus.publish_entries(&batch).await?;
            published += batch.len() as u64;
            batch.clear();
        }
    }
    bus.publish_entries(&batch).await?;
    published += batch.len() as u64;
    Ok(published)
}

async fn append(
    ledger: &Ledger,
    first: u64,
    batch: &mut Vec<bytes::Bytes>,
) -> Result<(), RebuildError> {
    if batch.is_empty() {
        return Ok(());
    }
    let envs = batch
        .iter()
        .enumerate()
        .map(|(i, b)| {
            decode::<Envelope>(b, "ledger entry").map_err(|e| RebuildError::Undecodable {
                seq: first + i as u64,
                detail: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let items: Vec<(&[u8], &Envelope)> = batch.iter().map(|b| &b[..]).zip(&envs).collect();
    let done = ledger.append(&items).await?;
    if let Some((seq, _, _)) = done.entries.iter().find(|(seq, _, _)| *seq < first) {
        return Err(RebuildError::Duplicate { seq: *seq });
    }
    batch.clear();
    Ok(())
}
