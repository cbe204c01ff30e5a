//! `cairn wal-push` and `cairn wal-fetch`: PostgreSQL's `archive_command`
//! and `restore_command` (`cairn_ingest::wal` says how a WAL file becomes
//! a backup). Both speak to PostgreSQL through their exit code: 0 only once
//! the file is archived (verified where the policy says) or fetched whole,
//! non-zero otherwise, with the reason on standard error, which PostgreSQL
//! writes to its log.

use crate::{context, err};
use anyhow::Context;
use cairn_config::Config;
use cairn_events::BackupId;
use cairn_ingest::wal::{self, Pushed};
use cairn_repo::restore::Restorer;
use cairn_repo::target::{restore_to, Target};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args)]
pub struct PushArgs {
    /// The dataset the cluster's base backups and WAL belong to (or the
    /// server's CAIRN_WAL_DATASET, so that `cairn wal-push %p` is enough).
    #[arg(long, env = "CAIRN_WAL_DATASET")]
    dataset: String,
    /// The WAL file (`%p`: relative to the data directory, where
    /// PostgreSQL runs the command).
    path: PathBuf,
    /// Segments already marked ready after this one to push alongside it,
    /// so that a busy server's archive keeps up (0: this file only).
    #[arg(long, default_value_t = 3)]
    ahead: usize,
    /// Seconds to wait for each file's backup to complete.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

#[derive(clap::Args)]
pub struct FetchArgs {
    /// The dataset the WAL was archived into (or CAIRN_WAL_DATASET).
    #[arg(long, env = "CAIRN_WAL_DATASET")]
    dataset: String,
    /// The WAL file's name (`%f`).
    name: String,
    /// Where to write it (`%p`).
    path: PathBuf,
    /// When PostgreSQL asks for a segment (`%p` is `pg_wal/RECOVERYXLOG`),
    /// also fetch up to this many of the segments archived after it into
    /// `pg_wal/cairn-prefetch/`, inside the data directory being
    /// recovered; the next calls take them from there (0: never).
    #[arg(long, default_value_t = 8)]
    ahead: i64,
}

/// Where prefetched segments wait, beside `%p`.
const PREFETCH_DIR: &str = "cairn-prefetch";

pub async fn push(cfg: &Config, a: PushArgs) -> anyhow::Result<u8> {
    let bus = context::bus(cfg, "cairn-wal-push").await?;
    let ctx = super::backup::ingest_context(
        cfg,
        &bus,
        "wal-push reads and chunks the WAL here and needs the repository key (or keys.writer_file)",
    )
    .await?;
    let by = context::user();
    let timeout = Duration::from_secs(a.timeout);
    let files = wal::batch(&a.path, a.ahead);
    // Every file pushed here is waited for: leaving one half pushed would
    // only cost the server's retry.
    let pushes = files
        .iter()
        .map(|f| wal::push(&ctx, &a.dataset, f, &by, timeout));
    let results = futures::future::join_all(pushes).await;
    for (f, r) in files.iter().zip(&results).skip(1) {
        if let Err(e) = r {
            tracing::warn!(file = %f.display(), "pushed ahead, not archived (the server will ask again): {e}");
        }
    }
    match results.into_iter().next().expect("the file itself") {
        Ok(Pushed::Archived(id)) => {
            tracing::info!(backup = %id, "archived {}", a.path.display());
            Ok(0)
        }
        Ok(Pushed::AlreadyArchived(id)) => {
            tracing::info!(backup = %id, "already archived: {}", a.path.display());
            Ok(0)
        }
        Err(e) => Err(anyhow::Error::new(e)),
    }
}

/// Exit code for a WAL file the archive does not hold: PostgreSQL takes it
/// as "not there", which is how recovery finds the end of the WAL.
const NOT_ARCHIVED: u8 = 1;
/// Exit code when the archive could not be asked or read (ledger or network
/// down, a damaged copy): PostgreSQL takes a code above 125 as fatal and
/// stops, where 1 would end recovery early, short of its target, silently.
const CANNOT_TELL: u8 = 126;

pub async fn fetch(cfg: &Config, a: FetchArgs) -> anyhow::Result<u8> {
    match fetch_file(cfg, &a).await {
        Ok(code) => Ok(code),
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            err!("cairn: error: {msg} (recovery stops here rather than take it for the end of the WAL; run it again once the archive answers)");
            Ok(CANNOT_TELL)
        }
    }
}

async fn fetch_file(cfg: &Config, a: &FetchArgs) -> anyhow::Result<u8> {
    if !wal::is_wal_name(&a.name) {
        anyhow::bail!("{:?} is not a WAL file name", a.name);
    }
    let prefetch = prefetch_dir(a);
    if let Some(dir) = &prefetch {
        if take_prefetched(dir, &a.name, &a.path)? {
            return Ok(0);
        }
    }
    let pg = context::ledger(cfg)
        .await
        .context("wal-fetch finds WAL files through the ledger")?;
    let rows = cairn_ledger::query::wal_file(&pg, &a.dataset, &a.name).await?;
    let candidates: Vec<_> = rows
        .iter()
        .filter(|r| r.status == "completed" || r.status == "degraded")
        .collect();
    if candidates.is_empty() {
        // The usual end of recovery: the next segment was never archived.
        err!(
            "cairn: {} is not in the archive of dataset {:?}",
            a.name,
            a.dataset
        );
        return Ok(NOT_ARCHIVED);
    }
    let repo = context::repo(cfg)?;
    let keyring = context::unlock(cfg, &repo, "wal-fetch decrypts the WAL").await?;
    let restorer = Restorer::new(
        repo.fastest_first().await,
        keyring.sealer(),
        keyring.id_key(),
    );
    let mut errors = Vec::new();
    for row in candidates {
        match fetch_one(&restorer, &row.backup_id, &a.path).await {
            Ok(()) => {
                if let Some(dir) = &prefetch {
                    fetch_ahead(&pg, &restorer, a, dir).await;
                }
                return Ok(0);
            }
            Err(e) => errors.push(format!("backup {}: {e:#}", row.backup_id)),
        }
    }
    anyhow::bail!(
        "WAL file {} is archived but could not be fetched: {}",
        a.name,
        errors.join("; ")
    )
}

/// Backup `id`'s single file, written whole to `path` (or not at all).
async fn fetch_one(restorer: &Restorer, id: &str, path: &Path) -> anyhow::Result<()> {
    let id = BackupId::parse(id)?;
    let m = restorer.manifest(&id).await?;
    restore_to(restorer, &m, &Target::File(path.to_path_buf()), &|_| {}).await?;
    Ok(())
}

/// The prefetch directory, when PostgreSQL asks for a segment during
/// recovery (it names the file `RECOVERYXLOG`) and prefetching is on.
fn prefetch_dir(a: &FetchArgs) -> Option<PathBuf> {
    let for_recovery = a.path.file_name().is_some_and(|n| n == "RECOVERYXLOG");
    (for_recovery && a.ahead > 0 && wal::is_segment(&a.name))
        .then(|| a.path.parent().unwrap_or(Path::new(".")).join(PREFETCH_DIR))
}

/// Moves `name` into place from `dir` if an earlier call fetched it, and
/// drops what recovery has passed (segments before `name`).
fn take_prefetched(dir: &Path, name: &str, path: &Path) -> anyhow::Result<bool> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(false);
    };
    for e in entries.flatten() {
        let n = e.file_name();
        if n.to_str().is_some_and(|n| n < name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let ready = dir.join(name);
    if !ready.is_file() {
        return Ok(false);
    }
    std::fs::rename(&ready, path)
        .with_context(|| format!("moving the prefetched {} into place", ready.display()))?;
    Ok(true)
}

/// Fetches the segments archived after this one into `dir`; a failure only
/// costs the next call its own fetch.
async fn fetch_ahead(pg: &tokio_postgres::Client, restorer: &Restorer, a: &FetchArgs, dir: &Path) {
    let next = match cairn_ledger::query::wal_after(pg, &a.dataset, &a.name, a.ahead).await {
        Ok(n) => n,
        Err(e) => return tracing::warn!("prefetch: {e}"),
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return tracing::warn!("prefetch into {}: {e}", dir.display());
    }
    for row in next {
        let to = dir.join(&row.name);
        if to.exists() {
            continue;
        }
        if let Err(e) = fetch_one(restorer, &row.backup_id, &to).await {
            tracing::warn!("prefetch of {}: {e:#}", row.name);
            return;
        }
    }
}
