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
use std::path::PathBuf;
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
}

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
    let target = Target::File(a.path.clone());
    let mut errors = Vec::new();
    for row in candidates {
        let id = BackupId::parse(&row.backup_id)?;
        let got = async {
            let m = restorer.manifest(&id).await?;
            restore_to(&restorer, &m, &target, &|_| {}).await
        };
        match got.await {
            Ok(_) => return Ok(0),
            Err(e) => errors.push(format!("backup {id}: {e}")),
        }
    }
    anyhow::bail!(
        "WAL file {} is archived but could not be fetched: {}",
        a.name,
        errors.join("; ")
    )
}
