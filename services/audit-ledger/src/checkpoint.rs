//! Issuing signed checkpoints of the ledger. The signer never signs two
//! inconsistent checkpoints: it keeps the last one it signed in a file beside
//! its key (outside the database) and, before signing a new size, proves from
//! the stored tree that the log is an append-only extension of it. A database
//! owner who rewrites history can therefore not obtain a signature for it.

use crate::tree::{self, TreeError};
use cairn_tlog::checkpoint::LogKey;
use cairn_tlog::reader::Known;
use cairn_tlog::{verify_consistency, Hash};
use std::path::{Path, PathBuf};
use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("signing key {path}: {detail}")]
    Key { path: PathBuf, detail: String },
    #[error("the ledger is empty: there is nothing to sign")]
    Empty,
    #[error("refusing to sign: {0}")]
    Inconsistent(String),
    #[error("the last signed checkpoint {path}: {detail}")]
    State { path: PathBuf, detail: String },
}

/// A checkpoint issued (or the same one again, when nothing was appended).
#[derive(Debug, Clone)]
pub struct Issued {
    pub size: u64,
    pub root: Hash,
    /// The signed note, as auditors get it.
    pub note: Vec<u8>,
    /// The size of the previous checkpoint this one was proven to extend.
    pub extends: Option<u64>,
}

/// `<key file>.last`: the last checkpoint this key signed.
pub fn state_file(key_file: &Path) -> PathBuf {
    let mut p = key_file.as_os_str().to_owned();
    p.push(".last");
    PathBuf::from(p)
}

/// Holds the exclusive lock of a state file (`<state>.lock`) until dropped:
/// one signer (or witness) per key at a time.
pub fn lock_state(state: &Path) -> std::io::Result<std::fs::File> {
    let lock = std::fs::File::create(state.with_extension("lock"))?;
    lock.lock()?;
    Ok(lock)
}

/// Replaces the state file with `note`, whole or not at all.
pub fn remember(state: &Path, note: &[u8]) -> std::io::Result<()> {
    let tmp = state.with_extension("last.tmp");
    std::fs::write(&tmp, note)?;
    std::fs::rename(&tmp, state)
}

/// The size and root of the checkpoint note in `path` (none if no file).
pub fn last_signed(path: &Path) -> Result<Option<(u64, Hash)>, IssueError> {
    let bad = |detail: String| IssueError::State {
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

/// Signs a checkpoint of the ledger as it is now with the key in `key_file`.
pub async fn issue(pg: &mut Client, key_file: &Path) -> Result<Issued, IssueError> {
    let text = std::fs::read_to_string(key_file).map_err(|e| IssueError::Key {
        path: key_file.to_path_buf(),
        detail: e.to_string(),
    })?;
    let key = LogKey::from_text(&text).map_err(|e| IssueError::Key {
        path: key_file.to_path_buf(),
        detail: e.to_string(),
    })?;
    let state = state_file(key_file);
    // One signer at a time per key (a `serve checkpoint` and a `cairn audit
    // checkpoint` may race): the state file must only ever move forward.
    let lock = lock_state(&state).map_err(|e| IssueError::State {
        path: state.clone(),
        detail: format!("cannot lock: {e}"),
    })?;
    let previous = last_signed(&state)?;

    let tx = pg.transaction().await?;
    let size: i64 = tx
        .query_one("SELECT size FROM ledger_head WHERE id = 1 FOR SHARE", &[])
        .await?
        .get(0);
    let size = size as u64;
    if size == 0 {
        return Err(IssueError::Empty);
    }
    let mut known = Known::new();
    let root = tree::root(&tx, &mut known, size).await?;
    let extends = match relate(&tx, &mut known, previous, size, root).await {
        Ok(Relation::First) => None,
        Ok(Relation::Same) => previous.map(|(old, _)| old),
        Ok(Relation::Extends { from }) => Some(from),
        Ok(Relation::Behind { last }) => {
            return Err(IssueError::Inconsistent(format!(
                "the ledger holds {size} entries, but a checkpoint of {last} was signed: entries were removed"
            )))
        }
        Err(Fork::OtherRoot { .. }) => {
            return Err(IssueError::Inconsistent(format!(
                "the ledger's root at size {size} is not the one signed for that size: history was rewritten"
            )))
        }
        Err(Fork::NotExtension { old, detail }) => {
            return Err(IssueError::Inconsistent(format!(
                "the ledger is not an append-only extension of the checkpoint signed at size {old} ({detail}): history was rewritten"
            )))
        }
        Err(Fork::Tree(e)) => return Err(e.into()),
    };
    let note = key.sign(size, root).map_err(|e| IssueError::Key {
        path: key_file.to_path_buf(),
        detail: e.to_string(),
    })?;
    tx.execute(
        "INSERT INTO ledger_checkpoints (size, root, note) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING",
        &[&(size as i64), &root.0.as_slice(), &note],
    )
    .await?;
    tx.commit().await?;
    // Remember it only once it is recorded.
    remember(&state, &note).map_err(|e| IssueError::State {
        path: state.clone(),
        detail: e.to_string(),
    })?;
    drop(lock);
    Ok(Issued {
        size,
        root,
        note,
        extends,
    })
}

/// Where a checkpoint went outside the database.
#[derive(Debug, Clone)]
pub struct Copies {
    /// Published on `<prefix>.audit.checkpoint` (or why not).
    pub published: Result<(), String>,
    /// Written to each network as `checkpoints/<size>` (or why not).
    pub networks: Vec<(String, Result<(), String>)>,
}

/// Sends a signed checkpoint out of the database: onto the AUDIT stream
/// (deny delete, deny purge) and to every network, so that copies the
/// database owner does not control witness the log.
pub async fn send_out(
    issued: &Issued,
    bus: Option<&cairn_bus::Bus>,
    repo: &cairn_repo::Repository,
) -> Copies {
    let published = match bus {
        Some(b) => b
            .publish_checkpoint(issued.size, &issued.note)
            .await
            .map_err(|e| e.to_string()),
        None => Err("no broker".into()),
    };
    let path = cairn_repo::layout::checkpoint(issued.size);
    let mut networks = Vec::new();
    for n in repo.networks() {
        let r = n
            .put(
                &path,
                issued.note.clone().into(),
                cairn_networks::PutMode::IfAbsent,
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        networks.push((n.name().to_string(), r));
    }
    Copies {
        published,
        networks,
    }
}

/// Issues a checkpoint every `every` while the ledger grows, and sends each
/// out (`cairn serve checkpoint`). A refusal (inconsistent history) is
/// logged as an error and retried at the next tick: it must not go unseen.
pub async fn run(
    mut pg: Client,
    key_file: PathBuf,
    bus: cairn_bus::Bus,
    repo: cairn_repo::Repository,
    every: std::time::Duration,
) -> anyhow::Result<()> {
    let mut last = last_signed(&state_file(&key_file))?.map(|(size, _)| size);
    // Also at start: a restarted signer catches up at once.
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let size: i64 = match pg
            .query_one("SELECT size FROM ledger_head WHERE id = 1", &[])
            .await
        {
            Ok(r) => r.get(0),
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint: cannot read the ledger head");
                continue;
            }
        };
        if size == 0 || last == Some(size as u64) {
            continue;
        }
        match issue(&mut pg, &key_file).await {
            Ok(issued) => {
                let copies = send_out(&issued, Some(&bus), &repo).await;
                let failed: Vec<String> = copies
                    .networks
                    .iter()
                    .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
                    .chain(copies.published.as_ref().err().cloned())
                    .collect();
                tracing::info!(size = issued.size, root = %hex::encode(issued.root.0), not_sent = ?failed, "checkpoint signed");
                last = Some(issued.size);
            }
            Err(e) => tracing::error!(error = %e, "checkpoint refused"),
        }
    }
}
