//! The ledger's RFC 6962 Merkle tree in PostgreSQL (`ledger_tree`): appending
//! the stored hashes each new entry completes, the root at any size, and
//! rebuilding the tree of a log written before the tree existed. The tree
//! arithmetic is `tlog_tiles`'; this module only moves hashes between it and
//! the database (`cairn_tlog::reader` explains the two-pass reads).

use cairn_tlog::reader::{run_with, Known, Recorder};
use cairn_tlog::{stored_hashes_for_record_hash, tree_hash, Hash};
use tokio_postgres::GenericClient;

/// SHA-256 of nothing: the root of the empty tree.
pub fn empty_root() -> Hash {
    use sha2::Digest;
    Hash(sha2::Sha256::digest([]).into())
}

/// The stored hashes at `indexes` (those that exist).
async fn fetch<C: GenericClient>(
    c: &C,
    indexes: Vec<u64>,
) -> Result<Vec<(u64, Hash)>, tokio_postgres::Error> {
    let idx: Vec<i64> = indexes.iter().map(|&i| i as i64).collect();
    let rows = c
        .query(
            "SELECT idx, hash FROM ledger_tree WHERE idx = ANY($1)",
            &[&idx],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let i: i64 = r.get(0);
            let h: Vec<u8> = r.get(1);
            Some((i as u64, Hash(h.try_into().ok()?)))
        })
        .collect())
}

/// Why the tree could not be extended or read.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error("ledger tree: {0}")]
    Tree(#[from] tlog_tiles::tlog::Error),
}

/// Runs a `tlog_tiles` tree computation against the stored hashes, reading
/// from the database those it needs that `known` lacks.
pub async fn compute<C: GenericClient, T>(
    c: &C,
    known: &mut Known,
    f: impl Fn(&Recorder) -> Result<T, tlog_tiles::tlog::Error>,
) -> Result<T, TreeError> {
    Ok(run_with(known, f, |need| fetch(c, need)).await??)
}

/// Stores the hashes that entries `first .. first + leaves.len()` (0-based)
/// complete, given their leaf hashes, and returns the root of the tree of
/// `first + leaves.len()` entries. Runs inside the caller's transaction.
pub async fn append<C: GenericClient>(
    c: &C,
    first: u64,
    leaves: &[[u8; 32]],
) -> Result<Hash, TreeError> {
    let mut known = Known::new();
    let mut idx: Vec<i64> = Vec::new();
    let mut hashes: Vec<Vec<u8>> = Vec::new();
    for (k, leaf) in leaves.iter().enumerate() {
        let n = first + k as u64;
        let new = compute(c, &mut known, |r| {
            stored_hashes_for_record_hash(n, Hash(*leaf), r)
        })
        .await?;
        let base = tlog_tiles::tlog::stored_hash_index(0, n);
        for (j, h) in new.into_iter().enumerate() {
            let i = base + j as u64;
            known.insert(i, h);
            idx.push(i as i64);
            hashes.push(h.0.to_vec());
        }
    }
    if !idx.is_empty() {
        c.execute(
            "INSERT INTO ledger_tree (idx, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
            &[&idx, &hashes],
        )
        .await?;
    }
    root(c, &mut known, first + leaves.len() as u64).await
}

/// The root of the tree of the first `size` entries.
pub async fn root<C: GenericClient>(
    c: &C,
    known: &mut Known,
    size: u64,
) -> Result<Hash, TreeError> {
    if size == 0 {
        return Ok(empty_root());
    }
    compute(c, known, |r| tree_hash(size, r)).await
}

/// The consistency proof that the tree of `new` entries extends the tree of
/// `old` (RFC 6962 / 9162).
pub async fn consistency_proof<C: GenericClient>(
    c: &C,
    known: &mut Known,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, TreeError> {
    compute(c, known, |r| tlog_tiles::tlog::prove_tree(new, old, r)).await
}

/// Fills `ledger_tree` for a log whose entries predate it (migration 2),
/// from the stored leaf hashes, and records the root in the head.
pub async fn backfill<C: GenericClient>(c: &C) -> Result<(), TreeError> {
    let rows = c
        .query("SELECT leaf_hash FROM ledger_entries ORDER BY seq", &[])
        .await?;
    let leaves: Vec<[u8; 32]> = rows
        .iter()
        .map(|r| {
            let v: Vec<u8> = r.get(0);
            v.try_into().unwrap_or([0; 32])
        })
        .collect();
    let root = append(c, 0, &leaves).await?;
    c.execute(
        "UPDATE ledger_head SET tree_root = $1 WHERE id = 1",
        &[&root.0.as_slice()],
    )
    .await?;
    Ok(())
}
