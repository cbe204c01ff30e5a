//! Issuing signed checkpoints of the ledger. The signer never signs two
//! inconsistent checkpoints: it keeps the last one it signed in a file beside
//! its key (outside the database) and, before signing a new size, proves from
//! the stored tree that the log is an append-only extension of it
//! (`cairn_ledger::checkpoint`). A database owner who rewrites history can
//! therefore not obtain a signature for it.

use cairn_ledger::checkpoint::{
    last_signed, lock_state, relate, remember, state_file, Fork, Relation, StateError,
};
use cairn_ledger::tree::{self, TreeError};
use cairn_tlog::checkpoint::LogKey;
use cairn_tlog::reader::Known;
use cairn_tlog::Hash;
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
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Stopped(String),
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
    /// The log's id when it was begun by `cairn recover rebuild`
    /// ([`cairn_ledger::query::log_id`]): its checkpoints go apart.
    pub log: Option<String>,
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
    let lock = lock_state(&state)?;
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
    let log = cairn_ledger::query::log_id(&tx).await?;
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
    remember(&state, &note)?;
    drop(lock);
    Ok(Issued {
        size,
        root,
        note,
        extends,
        log,
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

/// What `cairn audit checkpoint` reports: the checkpoint and where it went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Signed {
    pub size: u64,
    /// Merkle root (hex).
    pub root: String,
    pub extends: Option<u64>,
    /// The signed note.
    pub checkpoint: String,
    /// `ok`, or why it was not published on the AUDIT stream.
    pub published: String,
    /// Per network: `ok`, or why `checkpoints/<size>` was not written.
    pub networks: std::collections::BTreeMap<String, String>,
}

impl Signed {
    pub fn new(issued: &Issued, copies: &Copies) -> Self {
        let status = |r: &Result<(), String>| match r {
            Ok(()) => "ok".to_string(),
            Err(e) => e.clone(),
        };
        Signed {
            size: issued.size,
            root: hex::encode(issued.root.0),
            extends: issued.extends,
            checkpoint: String::from_utf8_lossy(&issued.note).into_owned(),
            published: status(&copies.published),
            networks: copies
                .networks
                .iter()
                .map(|(n, r)| (n.clone(), status(r)))
                .collect(),
        }
    }
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
    let path = cairn_repo::layout::checkpoint(issued.log.as_deref(), issued.size);
    let networks = cairn_networks::meter::unmetered(async {
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
        networks
    })
    .await;
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
) -> Result<(), IssueError> {
    let mut last = last_signed(&state_file(&key_file))?.map(|(size, _)| size);
    // Also at start: a restarted signer catches up at once.
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = cairn_ledger::db::closed(&pg) => {
                return Err(IssueError::Stopped(cairn_ledger::db::gone("the checkpoint signer")));
            }
        }
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
