//! PostgreSQL's WAL archive through the pipeline: `cairn wal-push` is the
//! server's `archive_command`. Each WAL file becomes a backup of its own
//! (source `wal`), ingested by the pushing process itself (only it can read
//! the file, which the server recycles once the command succeeds), then
//! encrypted, stored on the dataset's networks, verified and ledgered like
//! any other. The push succeeds only once the backup is `completed`: a
//! segment the server recycles is already held verified where the policy
//! says.
//!
//! A retry of a file already archived is recognised by name and SHA-256
//! and succeeds at once; a different file under an archived name is
//! refused (as pgBackRest does), since accepting it would hide a diverged
//! history. To keep up with a busy server, a push also takes the files the
//! server has marked ready after it (`archive_status/*.ready`) and pushes
//! them alongside; when the server asks for them they are found archived.

use crate::job::IngestContext;
use cairn_bus::client::{self, Ending};
use cairn_events::{BackupId, BackupRequest, Source};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{0:?} is not a WAL file name (a segment such as 000000010000000000000003, a .history, .backup or .partial file)")]
    NotAWalFile(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("WAL file {name} is already archived (backup {backup}) with SHA-256 {archived}, but the file here has {here}: refusing to archive a different file under the same name (a second cluster archiving into dataset {dataset:?}?)")]
    Differs {
        name: String,
        dataset: String,
        backup: String,
        archived: String,
        here: String,
    },
    #[error("WAL file {name}: backup {backup} ended {status}{}", if reasons.is_empty() { String::new() } else { format!(": {}", reasons.join("; ")) })]
    NotArchived {
        name: String,
        backup: BackupId,
        status: String,
        reasons: Vec<String>,
    },
    #[error("WAL file {name}: backup {backup} did not finish within {secs} s")]
    TimedOut {
        name: String,
        backup: BackupId,
        secs: u64,
    },
    #[error("ledger (PostgreSQL): {0}")]
    Ledger(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Bus(#[from] cairn_bus::BusError),
    #[error("WAL file {name}: {detail}")]
    Ingest { name: String, detail: String },
}

/// What a push did.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushed {
    /// Archived now, by this backup.
    Archived(BackupId),
    /// Found archived already, identical, by this backup.
    AlreadyArchived(String),
}

/// Whether `name` is a file PostgreSQL archives: a segment (24 hex
/// digits), a timeline history (`00000002.history`), a backup history
/// (`…​.00000028.backup`) or a partial segment (`….partial`).
pub fn is_wal_name(name: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(tl) = name.strip_suffix(".history") {
        return hex(tl, 8);
    }
    if let Some(seg) = name.strip_suffix(".partial") {
        return hex(seg, 24);
    }
    if let Some(rest) = name.strip_suffix(".backup") {
        return rest
            .split_once('.')
            .is_some_and(|(seg, off)| hex(seg, 24) && hex(off, 8));
    }
    hex(name, 24)
}

/// Whether `name` is a plain segment.
pub fn is_segment(name: &str) -> bool {
    name.len() == 24 && is_wal_name(name)
}

/// The segments the server has marked ready to archive after `name`, in
/// order, at most `max`: `pg_wal/archive_status/<segment>.ready`.
pub fn ready_after(wal_dir: &Path, name: &str, max: usize) -> Vec<String> {
    if max == 0 || !is_segment(name) {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(wal_dir.join("archive_status")) else {
        return Vec::new();
    };
    let mut ready: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".ready"))
                .map(str::to_string)
        })
        .filter(|n| is_segment(n) && n.as_str() > name)
        .collect();
    ready.sort();
    ready.truncate(max);
    ready
}

/// SHA-256 (hex) and size of a file.
fn digest(path: &Path) -> Result<(String, u64), WalError> {
    let read = |e| WalError::Read {
        path: path.display().to_string(),
        source: e,
    };
    let mut f = std::fs::File::open(path).map_err(read)?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(read)?;
    Ok((hex::encode(h.finalize()), n))
}

/// Archives the WAL file at `path` into `dataset`, unless it is archived
/// already; returns once its backup is `completed` (or says why not).
pub async fn push(
    ctx: &IngestContext,
    dataset: &str,
    path: &Path,
    requested_by: &str,
    timeout: Duration,
) -> Result<Pushed, WalError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| is_wal_name(n))
        .ok_or_else(|| WalError::NotAWalFile(path.display().to_string()))?
        .to_string();
    let (sha256, size) = {
        let p = path.to_path_buf();
        tokio::task::spawn_blocking(move || digest(&p))
            .await
            .map_err(|e| WalError::Ingest {
                name: name.clone(),
                detail: format!("hashing crashed: {e}"),
            })??
    };
    for row in cairn_ledger::query::wal_file(&ctx.pg, dataset, &name).await? {
        if row.sha256 != sha256 {
            return Err(WalError::Differs {
                name,
                dataset: dataset.to_string(),
                backup: row.backup_id,
                archived: row.sha256,
                here: sha256,
            });
        }
        if row.status == "completed" {
            return Ok(Pushed::AlreadyArchived(row.backup_id));
        }
    }
    let req = BackupRequest {
        dataset: dataset.to_string(),
        tags: vec!["wal".into()],
        source: Source::Wal {
            name: name.clone(),
            sha256,
            size,
        },
        networks: Vec::new(),
        min_copies: None,
        requested_by: requested_by.to_string(),
        force_read: false,
    };
    let requested = client::request_backup(&ctx.bus, &ctx.source, req).await?;
    let id = requested.backup_id.clone();
    let envelope = requested.envelope.clone();
    let file = std::fs::File::open(path).map_err(|e| WalError::Read {
        path: path.display().to_string(),
        source: e,
    })?;
    let local = async {
        crate::ingest(ctx, &envelope, Some(Box::new(file)), None)
            .await
            .map_err(|e| WalError::Ingest {
                name: name.clone(),
                detail: e.to_string(),
            })
    };
    let ending = requested
        .follow(Some(local), timeout, timeout, |_| {})
        .await
        .map_err(|e| WalError::Ingest {
            name: name.clone(),
            detail: e.to_string(),
        })?;
    match ending {
        Ending::Finished {
            status: "completed",
            ..
        } => Ok(Pushed::Archived(id)),
        Ending::Finished { status, outcome } => Err(WalError::NotArchived {
            name,
            backup: id,
            status: status.to_string(),
            reasons: outcome.reasons,
        }),
        Ending::NotTaken | Ending::TimedOut => Err(WalError::TimedOut {
            name,
            backup: id,
            secs: timeout.as_secs(),
        }),
    }
}

/// The files a push of `path` takes on: itself, then up to `ahead` segments
/// the server has marked ready after it, in the same directory.
pub fn batch(path: &Path, ahead: usize) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        out.extend(
            ready_after(dir, name, ahead)
                .into_iter()
                .map(|n| dir.join(n)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_names_are_what_postgresql_archives() {
        for ok in [
            "000000010000000000000003",
            "00000002.history",
            "000000010000000000000002.00000028.backup",
            "000000010000000000000009.partial",
        ] {
            assert!(is_wal_name(ok), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "00000001000000000000000",
            "0000000100000000000000GG",
            "x.history",
            "postgresql.conf",
        ] {
            assert!(!is_wal_name(bad), "{bad}");
        }
        assert!(is_segment("000000010000000000000003"));
        assert!(!is_segment("00000002.history"));
    }

    #[test]
    fn a_push_takes_the_segments_ready_after_it_in_order() {
        let d = tempfile::tempdir().unwrap();
        let status = d.path().join("archive_status");
        std::fs::create_dir(&status).unwrap();
        for n in [
            "000000010000000000000002.done",
            "000000010000000000000003.ready",
            "000000010000000000000005.ready",
            "000000010000000000000004.ready",
            "00000002.history.ready",
            "000000010000000000000006.ready",
        ] {
            std::fs::write(status.join(n), b"").unwrap();
        }
        assert_eq!(
            ready_after(d.path(), "000000010000000000000003", 2),
            vec!["000000010000000000000004", "000000010000000000000005"]
        );
        assert!(ready_after(d.path(), "000000010000000000000003", 0).is_empty());
        assert!(ready_after(d.path(), "00000002.history", 4).is_empty());
        let b = batch(&d.path().join("000000010000000000000005"), 8);
        assert_eq!(b.len(), 2);
        assert!(b[1].ends_with("000000010000000000000006"));
    }
}
