//! The audit ledger's store, as every part of Cairn reads it: connecting to
//! PostgreSQL and migrating its schema, the least-privilege roles, the
//! queries on the projections (backups, object digests, chunk copies), the
//! log's Merkle tree, proofs and evidence, `cairn audit verify`, and the
//! checkpoint state a signer or a witness keeps beside its key.
//!
//! The writer (appending entries, updating projections, signing
//! checkpoints, rebuilding) is the audit-ledger service's; everything here
//! only reads, except the tree's append, which the writer calls inside its
//! own transaction, and the migrations.
//!
//! * [`config`]: `[postgres]`, the ledger database's connection settings.
//! * [`db`]: connecting, migrating (`schemas/sql`), taking a [`db::Role`].
//! * [`query`]: reads of the projections, for the stages and the CLI.
//! * [`tree`]: the log's RFC 6962 tree in `ledger_tree`.
//! * [`checkpoint`]: a signer's or witness's last checkpoint, and how a tree
//!   relates to it ([`checkpoint::relate`]).
//! * [`prove`]: inclusion and consistency proofs.
//! * [`evidence`]: one backup's entries with proofs, for auditors.
//! * [`check`]: the whole log re-checked (`cairn audit verify`).
//! * [`marks`]: the collector's marks, and what ingest may deduplicate
//!   against given them.
//! * [`usage`]: what each network holds and what was asked of it (cost,
//!   quotas), and recording a process's requests.

pub mod check;
pub mod checkpoint;
pub mod config;
pub mod db;
pub mod evidence;
pub mod marks;
pub mod prove;
pub mod query;
pub mod tree;
pub mod usage;
pub mod vitals;

pub use config::PostgresConfig;
pub use db::{DbError, Role};

use sha2::{Digest, Sha256};

/// The chain hash of an entry: SHA-256 of the previous entry's chain hash
/// and this entry's leaf hash (the first entry chains from 32 zero bytes).
/// A row's chain hash names an edited row at once, without the tree.
pub fn chain(prev: &[u8], leaf: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(leaf);
    h.finalize().into()
}
