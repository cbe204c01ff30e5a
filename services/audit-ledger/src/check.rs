//! `cairn audit verify`: re-reads the whole log and checks, for every entry,
//! that its sequence number follows the previous one, that the stored leaf
//! hash is the hash of the stored bytes, that the chain hash links it to its
//! predecessor, and that the bytes decode to the event the row claims; then
//! that the head matches the last entry; then that the stored Merkle tree
//! (`ledger_tree`) and the head's tree root are exactly what the entries'
//! bytes give. The first bad entry (or tree hash) is named.
//!
//! This detects an edited, deleted, inserted or reordered row. It cannot detect
//! a database owner who rewrites the whole chain consistently: signed
//! checkpoints kept outside the database (the transparency-log issue) close
//! that gap.

use crate::append::chain;
use cairn_crypto::merkle::{leaf_hash, RootBuilder};
use cairn_events::{decode, Envelope};
use cairn_tlog::{split_stored_hash_index, stored_hashes_for_record_hash, tree_hash, Hash};
use futures::TryStreamExt;
use serde::Serialize;
use tlog_tiles::tlog::HashReader;
use tokio_postgres::Client;

#[derive(Debug, Clone, Serialize)]
pub struct LedgerReport {
    pub entries: u64,
    /// Chain hash after the last entry (hex).
    pub chain_hash: String,
    /// RFC 6962 root over all entries (hex).
    pub merkle_root: String,
    /// Empty when the ledger is intact.
    pub problems: Vec<String>,
}

pub async fn verify(c: &Client) -> Result<LedgerReport, tokio_postgres::Error> {
    let mut problems = Vec::new();
    let mut prev = vec![0u8; 32];
    let mut expected_seq: i64 = 1;
    let mut root = RootBuilder::new();
    let mut leaves: Vec<[u8; 32]> = Vec::new();
    let rows = c
        .query_raw(
            "SELECT seq, event_id, kind, backup_id, entry, leaf_hash, chain_hash FROM ledger_entries ORDER BY seq",
            std::iter::empty::<i64>(),
        )
        .await?;
    futures::pin_mut!(rows);
    while let Some(r) = rows.try_next().await? {
        let seq: i64 = r.get(0);
        let event_id: String = r.get(1);
        let kind: String = r.get(2);
        let backup_id: String = r.get(3);
        let entry: Vec<u8> = r.get(4);
        let stored_leaf: Vec<u8> = r.get(5);
        let stored_chain: Vec<u8> = r.get(6);
        if problems.len() >= 20 {
            break;
        }
        if seq != expected_seq {
            problems.push(format!(
                "entry {expected_seq}: missing (next entry found is {seq}): an entry was deleted or renumbered"
            ));
        }
        let leaf = leaf_hash(&entry);
        if stored_leaf != leaf {
            problems.push(format!("entry {seq} ({kind} {event_id}): its bytes do not hash to its stored leaf hash: the entry was edited"));
        }
        let next = chain(&prev, &leaf);
        if stored_chain != next {
            problems.push(format!(
                "entry {seq} ({kind} {event_id}): chain hash does not follow from entry {}: entries were removed, reordered or rewritten",
                seq - 1
            ));
        }
        match decode::<Envelope>(&entry, "ledger entry") {
            Ok(env) => {
                if env.id.as_str() != event_id
                    || env.event.kind() != kind
                    || env.backup_id.as_str() != backup_id
                {
                    problems.push(format!(
                        "entry {seq}: row says {kind} {event_id} of {backup_id}, its bytes say {} {} of {}",
                        env.event.kind(),
                        env.id,
                        env.backup_id
                    ));
                }
            }
            Err(e) => problems.push(format!("entry {seq}: {e}")),
        }
        root.push(&entry);
        leaves.push(leaf);
        // Continue from the stored chain so one bad row is reported once.
        prev = stored_chain;
        expected_seq = seq + 1;
    }
    let head = c
        .query_one(
            "SELECT size, chain_hash, tree_root FROM ledger_head WHERE id = 1",
            &[],
        )
        .await?;
    let size: i64 = head.get(0);
    let head_chain: Vec<u8> = head.get(1);
    let head_root: Vec<u8> = head.get(2);
    check_tree(c, &leaves, &head_root, &mut problems).await?;
    if size != expected_seq - 1 {
        problems.push(format!(
            "head says {size} entries, the log holds {}: entries were appended or removed behind the ledger's back",
            expected_seq - 1
        ));
    } else if head_chain != prev {
        problems.push(
            "head chain hash does not match the last entry: the log's tail was rewritten".into(),
        );
    }
    Ok(LedgerReport {
        entries: (expected_seq - 1).max(0) as u64,
        chain_hash: hex::encode(&prev),
        merkle_root: hex::encode(root.root()),
        problems,
    })
}

/// Every stored hash of the log, in index order (the whole tree in memory:
/// 64 bytes per entry).
struct AllHashes(Vec<Hash>);

impl HashReader for AllHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::tlog::Error> {
        indexes
            .iter()
            .map(|&i| {
                self.0
                    .get(i as usize)
                    .copied()
                    .ok_or(tlog_tiles::tlog::Error::IndexesNotInTree)
            })
            .collect()
    }
}

/// The entries `split_stored_hash_index(idx)` covers, as 1-based sequence numbers.
fn covered(idx: u64) -> String {
    let (level, k) = split_stored_hash_index(idx);
    let (first, last) = (k << level, ((k + 1) << level) - 1);
    if first == last {
        format!("entry {}", first + 1)
    } else {
        format!("entries {}–{}", first + 1, last + 1)
    }
}

/// Compares `ledger_tree` and the head's tree root with the tree the
/// entries' bytes give.
async fn check_tree(
    c: &Client,
    leaves: &[[u8; 32]],
    head_root: &[u8],
    problems: &mut Vec<String>,
) -> Result<(), tokio_postgres::Error> {
    let mut all = AllHashes(Vec::with_capacity(leaves.len() * 2));
    for (n, leaf) in leaves.iter().enumerate() {
        match stored_hashes_for_record_hash(n as u64, Hash(*leaf), &all) {
            Ok(new) => all.0.extend(new),
            Err(e) => {
                problems.push(format!("tree: cannot compute entry {}: {e}", n + 1));
                return Ok(());
            }
        }
    }
    let rows = c
        .query_raw(
            "SELECT idx, hash FROM ledger_tree ORDER BY idx",
            std::iter::empty::<i64>(),
        )
        .await?;
    futures::pin_mut!(rows);
    let mut expected_idx = 0u64;
    let mut reported = 0;
    while let Some(r) = rows.try_next().await? {
        let idx: i64 = r.get(0);
        let hash: Vec<u8> = r.get(1);
        let idx = idx as u64;
        if reported >= 5 {
            break;
        }
        if idx != expected_idx {
            problems.push(format!(
                "tree hash {expected_idx} ({}) is missing: the tree was cut",
                covered(expected_idx)
            ));
            reported += 1;
        }
        match all.0.get(idx as usize) {
            Some(h) if h.0.as_slice() == hash.as_slice() => {}
            Some(_) => {
                problems.push(format!(
                    "tree hash {idx} (over {}) is not what the entries give: the tree was rewritten",
                    covered(idx)
                ));
                reported += 1;
            }
            None => {
                problems.push(format!(
                    "tree hash {idx} (over {}) is beyond the log's {} entries: entries were removed",
                    covered(idx),
                    leaves.len()
                ));
                reported += 1;
            }
        }
        expected_idx = idx + 1;
    }
    if reported == 0 && (expected_idx as usize) < all.0.len() {
        problems.push(format!(
            "the tree holds {expected_idx} hashes, the {} entries need {}: the tree was cut",
            leaves.len(),
            all.0.len()
        ));
    }
    let root = if leaves.is_empty() {
        crate::tree::empty_root()
    } else {
        match tree_hash(leaves.len() as u64, &all) {
            Ok(h) => h,
            Err(e) => {
                problems.push(format!("tree: {e}"));
                return Ok(());
            }
        }
    };
    if root.0.as_slice() != head_root {
        problems.push(format!(
            "head tree root {} is not the root of the {} entries ({}): the head was rewritten",
            hex::encode(head_root),
            leaves.len(),
            hex::encode(root.0)
        ));
    }
    Ok(())
}
