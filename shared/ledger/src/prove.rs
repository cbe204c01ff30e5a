//! Proofs from the ledger's stored tree: inclusion of an entry, as a C2SP
//! tlog-proof file against the newest signed checkpoint that covers it
//! (`cairn audit prove`), and consistency between two signed checkpoints
//! (`cairn audit consistency`).

use crate::tree::{self, TreeError};
use cairn_tlog::proof_file;
use cairn_tlog::reader::Known;
use std::collections::BTreeMap;
use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("the ledger has no entry {0}")]
    NoEntry(u64),
    #[error("no signed checkpoint covers entry {0} yet: run `cairn audit checkpoint`")]
    NoCheckpoint(u64),
    #[error("no checkpoint was signed at size {0} (see ledger_checkpoints)")]
    NoCheckpointAt(u64),
    #[error("the older size {0} must be below the newer {1}")]
    Order(u64, u64),
}

/// Entry `seq` (1-based) with its proof file.
pub struct EntryProof {
    pub seq: u64,
    /// The exact bytes that were logged (and hashed).
    pub entry: Vec<u8>,
    /// The C2SP tlog-proof file.
    pub file: Vec<u8>,
    pub checkpoint_size: u64,
}

/// Checkpoints cosigned by witnesses, by size (`audit.cosigned` on the
/// AUDIT stream; the newest cosignature of a size wins).
pub async fn cosigned(bus: &cairn_bus::Bus) -> Result<BTreeMap<u64, Vec<u8>>, cairn_bus::BusError> {
    let mut out = BTreeMap::new();
    let mut r = bus.replay_audit(&bus.subjects.cosigned()).await?;
    while let Some(m) = r.next().await {
        let m = m?;
        if let Ok((size, _)) = cairn_tlog::checkpoint::unverified(&m.payload) {
            out.insert(size, m.payload.to_vec());
        }
    }
    Ok(out)
}

/// The checkpoint to prove entries up to `seq` against: the newest
/// cosigned one covering it (`cosigned`, see [`cosigned`]) if any, else the
/// newest one the log signed.
pub async fn checkpoint_for(
    pg: &Client,
    seq: u64,
    cosigned: &BTreeMap<u64, Vec<u8>>,
) -> Result<(u64, Vec<u8>), ProveError> {
    if let Some((size, note)) = cosigned.range(seq..).next_back() {
        return Ok((*size, note.clone()));
    }
    let cp = pg
        .query_opt(
            "SELECT size, note FROM ledger_checkpoints WHERE size >= $1 ORDER BY size DESC LIMIT 1",
            &[&(seq as i64)],
        )
        .await?
        .ok_or(ProveError::NoCheckpoint(seq))?;
    Ok((cp.get::<_, i64>(0) as u64, cp.get(1)))
}

/// Entry `seq`'s bytes and inclusion proof against the checkpoint `checkpoint_for` picks.
pub async fn inclusion(
    pg: &Client,
    seq: u64,
    cosigned: &BTreeMap<u64, Vec<u8>>,
) -> Result<EntryProof, ProveError> {
    let entry: Vec<u8> = pg
        .query_opt(
            "SELECT entry FROM ledger_entries WHERE seq = $1",
            &[&(seq as i64)],
        )
        .await?
        .ok_or(ProveError::NoEntry(seq))?
        .get(0);
    let (size, note) = checkpoint_for(pg, seq, cosigned).await?;
    let proof = entry_proof(pg, &mut Known::new(), size, seq).await?;
    Ok(EntryProof {
        seq,
        file: proof_file::format(seq - 1, &proof, &note),
        entry,
        checkpoint_size: size,
    })
}

/// The inclusion proof of entry `seq` (1-based) in the tree of `size` entries.
pub async fn entry_proof(
    pg: &Client,
    known: &mut Known,
    size: u64,
    seq: u64,
) -> Result<Vec<cairn_tlog::Hash>, ProveError> {
    Ok(tree::compute(pg, known, |r| {
        tlog_tiles::tlog::prove_record(size, seq - 1, r)
    })
    .await?)
}

/// A consistency proof between the signed checkpoints at sizes `old` and
/// `new` (both must have been signed), as `cairn_tlog::proof_file` writes it.
pub async fn consistency(pg: &Client, old: u64, new: u64) -> Result<Vec<u8>, ProveError> {
    if old == 0 || old >= new {
        return Err(ProveError::Order(old, new));
    }
    let note = |size: u64| async move {
        pg.query_opt(
            "SELECT note FROM ledger_checkpoints WHERE size = $1",
            &[&(size as i64)],
        )
        .await?
        .map(|r| r.get::<_, Vec<u8>>(0))
        .ok_or(ProveError::NoCheckpointAt(size))
    };
    let (old_note, new_note) = (note(old).await?, note(new).await?);
    let proof = tree::consistency_proof(pg, &mut Known::new(), old, new).await?;
    Ok(proof_file::format_consistency(&old_note, &new_note, &proof))
}
