//! `cairn audit verify`: re-reads the whole log and checks, for every entry,
//! that its sequence number follows the previous one, that the stored leaf
//! hash is the hash of the stored bytes, that the chain hash links it to its
//! predecessor, and that the bytes decode to the event the row claims; then
//! that the head matches the last entry. The first bad entry is named.
//!
//! This detects an edited, deleted, inserted or reordered row. It cannot detect
//! a database owner who rewrites the whole chain consistently: signed
//! checkpoints kept outside the database (the transparency-log issue) close
//! that gap.

use crate::append::chain;
use cairn_crypto::merkle::{leaf_hash, RootBuilder};
use cairn_events::{decode, Envelope};
use futures::TryStreamExt;
use serde::Serialize;
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
        // Continue from the stored chain so one bad row is reported once.
        prev = stored_chain;
        expected_seq = seq + 1;
    }
    let head = c
        .query_one("SELECT size, chain_hash FROM ledger_head WHERE id = 1", &[])
        .await?;
    let size: i64 = head.get(0);
    let head_chain: Vec<u8> = head.get(1);
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
