//! The core of Cairn's transparency log (the audit ledger as an RFC 6962 /
//! RFC 9162 Merkle tree): checking inclusion and consistency proofs from the
//! bytes an auditor is handed, with nothing else trusted. The tree
//! arithmetic is `tlog_tiles`' (a port of Go's sumdb `tlog`, the code behind
//! Go's checksum database); this crate adds the edge cases a verifier must
//! refuse and errors that say what was wrong.
//!
//! `checkpoint` signs and verifies the log's checkpoints (C2SP
//! tlog-checkpoint in a signed note, Ed25519).
//!
//! Leaf hash SHA-256(0x00 ‖ entry), node hash SHA-256(0x01 ‖ left ‖ right).
//! Conformance: every inclusion and consistency vector of
//! transparency-dev/merkle, tampered ones included (`tests/vectors.rs`).

pub mod checkpoint;
pub mod proof;
pub mod proof_file;
pub mod reader;

pub use proof::{verify_consistency, verify_inclusion, ProofError};
pub use tlog_tiles::tlog::{
    node_hash, record_hash as leaf_hash, split_stored_hash_index, stored_hash_count,
    stored_hashes_for_record_hash, tree_hash, Hash,
};
