//! What a checkpoint signer and a witness each remember of the log, and the
//! one check both make before they sign. Each keeps the last checkpoint it
//! signed (or cosigned) in a file beside its own key (`<key>.last`), outside
//! the database, under an exclusive lock, and signs a new tree only if
//! [`relate`] proves from the stored hashes that it extends that one. The
//! proof is checked against the two signed roots, so the database is not
//! trusted for the answer.

use crate::tree::{self, TreeError};
use cairn_tlog::reader::Known;
use cairn_tlog::{verify_consistency, Hash};
use std::path::{Path, PathBuf};

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the last signed checkpoint {path}: {detail}")]
pub struct StateError {
    pub path: PathBuf,
    pub detail: String,
}

/// `<key file>.last`: the last checkpoint this key signed.
pub fn state_file(key_file: &Path) -> PathBuf {
    let mut p = key_file.as_os_str().to_owned();
    p.push(".last");
    PathBuf::from(p)
}

/// Holds the exclusive lock of a state file (`<state>.lock`) until dropped:
/// one signer (or witness) per key at a time.
pub fn lock_state(state: &Path) -> Result<std::fs::File, StateError> {
    let locked = std::fs::File::create(state.with_extension("lock")).and_then(|f| {
        f.lock()?;
        Ok(f)
    });
    locked.map_err(|e| StateError {
        path: state.to_path_buf(),
        detail: format!("cannot lock: {e}"),
    })
}

/// Replaces the state file with `note`, whole or not at all.
pub fn remember(state: &Path, note: &[u8]) -> Result<(), StateError> {
    let tmp = state.with_extension("last.tmp");
    std::fs::write(&tmp, note)
        .and_then(|()| std::fs::rename(&tmp, state))
        .map_err(|e| StateError {
            path: state.to_path_buf(),
            detail: e.to_string(),
        })
}

/// The size and root of the checkpoint note in `path` (none if no file).
pub fn last_signed(path: &Path) -> Result<Option<(u64, Hash)>, StateError> {
    let bad = |detail: String| StateError {
        path: path.to_path_buf(),
        detail,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(e.to_string())),
    };
    cairn_tlog::checkpoint::unverified(&bytes)
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}

/// How a tree `(size, root)` stands to the last checkpoint a key signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Nothing signed before.
    First,
    /// The same size and root.
    Same,
    /// Smaller than the one signed at `last`.
    Behind { last: u64 },
    /// An append-only extension of the one signed at `from` (proven).
    Extends { from: u64 },
}

/// Why a tree is not a continuation of the last checkpoint signed.
#[derive(Debug, thiserror::Error)]
pub enum Fork {
    #[error("another root at size {size}")]
    OtherRoot { size: u64 },
    #[error("not an extension of size {old}: {detail}")]
    NotExtension { old: u64, detail: String },
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// Relates `(size, root)` to `last` (a signer's or witness's last checkpoint),
/// proving an extension from the stored tree. The proof is checked against
/// the two roots, so the database is not trusted for the answer.
pub async fn relate<C: tokio_postgres::GenericClient>(
    c: &C,
    known: &mut Known,
    last: Option<(u64, Hash)>,
    size: u64,
    root: Hash,
) -> Result<Relation, Fork> {
    let Some((old, old_root)) = last else {
        return Ok(Relation::First);
    };
    if old > size {
        return Ok(Relation::Behind { last: old });
    }
    if old == size {
        return if old_root == root {
            Ok(Relation::Same)
        } else {
            Err(Fork::OtherRoot { size })
        };
    }
    let proof: Vec<Vec<u8>> = tree::consistency_proof(c, known, old, size)
        .await?
        .iter()
        .map(|h| h.0.to_vec())
        .collect();
    verify_consistency(old, size, &proof, &old_root.0, &root.0).map_err(|e| {
        Fork::NotExtension {
            old,
            detail: e.to_string(),
        }
    })?;
    Ok(Relation::Extends { from: old })
}
