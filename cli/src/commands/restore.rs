//! `cairn restore`: a backup back into a directory, a PostgreSQL database
//! or standard output, from the networks alone (no broker, no database
//! needed); recorded as `backup.restored` when the broker answers.

use crate::{context, err, out, output};
use anyhow::bail;
use cairn_config::Config;
use cairn_events::{BackupId, Envelope, Event, Restored};
use cairn_repo::restore::Restorer;
use cairn_repo::target::{restore_to, Target};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RestoreArgs {
    backup_id: BackupId,
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long)]
    json: bool,
}

/// Where a restore goes (shared with `cairn recover restore`).
#[derive(clap::Args)]
pub struct TargetArgs {
    /// Restore files under this directory.
    #[arg(long, conflicts_with_all = ["to_postgres", "stdout"])]
    to: Option<PathBuf>,
    /// pg_restore a database backup into this database.
    #[arg(long, value_name = "URL", conflicts_with = "stdout")]
    to_postgres: Option<String>,
    /// A file holding that database's password (first line); never the
    /// ledger's password.
    #[arg(long, value_name = "FILE", requires = "to_postgres")]
    postgres_password_file: Option<PathBuf>,
    /// Write the backup's single file to standard output.
    #[arg(long)]
    stdout: bool,
}

impl TargetArgs {
    pub fn target(self) -> anyhow::Result<Target> {
        Ok(match (self.to, self.to_postgres, self.stdout) {
            (Some(dir), _, _) => Target::Dir(dir),
            (None, Some(url), _) => Target::Postgres {
                url,
                password_file: self.postgres_password_file,
            },
            (None, None, true) => Target::Stdout,
            (None, None, false) => {
                bail!("say where to restore: --to DIR, --to-postgres URL or --stdout")
            }
        })
    }
}

#[derive(serde::Serialize)]
struct Report<'a> {
    backup_id: &'a BackupId,
    target: &'a str,
    bytes_written: u64,
    files: u64,
    dirs: u64,
    symlinks: u64,
    chunks_from: &'a std::collections::BTreeMap<String, u64>,
}

pub async fn restore(cfg: &Config, a: RestoreArgs) -> anyhow::Result<u8> {
    let id = a.backup_id;
    let target = a.target.target()?;
    let repo = context::repo(cfg)?;
    let keyring = context::unlock(cfg, &repo, "restoring decrypts the backup").await?;
    let report = match restore_from(repo, &keyring, &id, &target, a.json).await {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(0),
        Err(e) => return Err(shredded_or(cfg, &id, e).await),
    };
    let label = target.label();
    if let Some(bus) = context::try_bus(cfg).await {
        let env = Envelope::new(
            "cli",
            id.clone(),
            Event::BackupRestored(Restored {
                target: label.clone(),
                bytes_written: report.bytes_written,
                files: report.files,
                networks: report
                    .chunks_from
                    .iter()
                    .map(|(n, c)| format!("{n}:{c}"))
                    .collect(),
                restored_by: context::user(),
            }),
            &[cairn_events::now_rfc3339().as_bytes()],
        );
        if let Err(e) = bus.publish_event(&env).await {
            err!("cairn: warning: restore not recorded in the ledger: {e}");
        }
    }
    print_report(&id, &target, &report, a.json)?;
    Ok(0)
}

/// A backup the networks no longer hold may have been shredded: the
/// ledger, when it answers within a few seconds, says so by name.
async fn shredded_or(cfg: &Config, id: &BackupId, e: anyhow::Error) -> anyhow::Error {
    if !matches!(
        e.downcast_ref::<cairn_repo::RepoError>(),
        Some(cairn_repo::RepoError::BackupNotFound(..))
    ) {
        return e;
    }
    let asked = async {
        let pg = context::ledger(cfg).await.ok()?;
        cairn_ledger::query::backup(&pg, id.as_str()).await.ok()?
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), asked).await {
        Ok(Some(row)) if row.status == "shredded" => anyhow::anyhow!(
            "backup {id} of dataset {:?} was crypto-shredded (`cairn shred`): its keys are destroyed and it can never be restored",
            row.dataset
        ),
        _ => e,
    }
}

/// Restores backup `id` from `repo`'s networks (fastest first) into
/// `target`, with a progress bar unless `json`; `None` when standard output
/// was closed by its reader (`cairn restore --stdout | head`).
pub async fn restore_from(
    repo: cairn_repo::Repository,
    keyring: &cairn_crypto::Keyring,
    id: &BackupId,
    target: &Target,
    json: bool,
) -> anyhow::Result<Option<cairn_repo::restore::RestoreReport>> {
    let restorer = Restorer::new(
        repo.fastest_first().await,
        keyring.sealer(),
        keyring.id_key(),
    );
    let manifest = restorer.manifest(id).await?;
    let bar = output::progress_bar(
        !json,
        "{msg} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar} {eta}",
        format!("restore {id}"),
    );
    if let Some(b) = &bar {
        b.set_length(manifest.stats.bytes_read);
    }
    let progress = |n: u64| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    };
    let report = match restore_to(&restorer, &manifest, target, &progress).await {
        Ok(r) => r,
        Err(e) if matches!(target, Target::Stdout) && output::is_broken_pipe(&e) => {
            return Ok(None)
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    Ok(Some(report))
}

pub fn print_report(
    id: &BackupId,
    target: &Target,
    report: &cairn_repo::restore::RestoreReport,
    json: bool,
) -> anyhow::Result<()> {
    let label = target.label();
    if json {
        output::json(&Report {
            backup_id: id,
            target: &label,
            bytes_written: report.bytes_written,
            files: report.files,
            dirs: report.dirs,
            symlinks: report.symlinks,
            chunks_from: &report.chunks_from,
        })?;
    } else if !matches!(target, Target::Stdout) {
        out!(
            "restored backup {id} to {label}: {} in {} files (every chunk and the Merkle root verified)",
            output::bytes(report.bytes_written),
            report.files
        );
    }
    Ok(())
}
