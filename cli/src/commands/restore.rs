//! `cairn restore`: a backup (or the part of it under `--path`) back into a
//! directory, a PostgreSQL database, a PostgreSQL data directory recovering
//! to a point in time, a MariaDB database or standard output, from the
//! networks alone (no broker, no database needed); recorded as
//! `backup.restored` when the broker answers.

use crate::{context, err, out, output};
use anyhow::bail;
use cairn_config::Config;
use cairn_events::{BackupId, Envelope, Event, Restored};
use cairn_repo::format::Manifest;
use cairn_repo::pgdata::{Recovery, RecoveryTarget};
use cairn_repo::restore::{Restorer, Selection};
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
    #[arg(long, conflicts_with_all = ["to_postgres", "stdout", "to_pgdata", "to_mariadb"])]
    to: Option<PathBuf>,
    /// Restore only this file or subtree (a path as `cairn ls` shows it);
    /// only its chunks are fetched.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["to_postgres", "to_pgdata", "to_mariadb"])]
    path: Option<String>,
    /// pg_restore a database backup into this database.
    #[arg(long, value_name = "URL", conflicts_with_all = ["stdout", "to_pgdata", "to_mariadb"])]
    to_postgres: Option<String>,
    /// A file holding that database's password (first line); never the
    /// ledger's password.
    #[arg(long, value_name = "FILE", requires = "to_postgres")]
    postgres_password_file: Option<PathBuf>,
    /// Restore only this table (repeat it) from a PostgreSQL dump; only its
    /// part of the dump is fetched.
    #[arg(long = "table", value_name = "TABLE", requires = "to_postgres")]
    tables: Vec<String>,
    /// Restore only this schema (repeat it) from a PostgreSQL dump.
    #[arg(long = "schema", value_name = "SCHEMA", requires = "to_postgres")]
    schemas: Vec<String>,
    /// Restore a PostgreSQL base backup as a data directory (empty or new)
    /// that recovers from the WAL archive to --to-time, --to-lsn or
    /// --to-latest when the server starts.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["stdout", "to_mariadb"])]
    to_pgdata: Option<PathBuf>,
    /// Recover to this moment (with its time zone: `2026-12-06 15:42:53+00`).
    #[arg(long, value_name = "TIMESTAMP", requires = "to_pgdata", conflicts_with_all = ["to_lsn", "to_latest"])]
    to_time: Option<String>,
    /// Recover to this WAL location (`0/3000100`).
    #[arg(
        long,
        value_name = "LSN",
        requires = "to_pgdata",
        conflicts_with = "to_latest"
    )]
    to_lsn: Option<String>,
    /// Recover to the end of the archived WAL.
    #[arg(long, requires = "to_pgdata")]
    to_latest: bool,
    /// The restore_command written into the data directory (default: this
    /// cairn with this configuration: `cairn wal-fetch --dataset D %f "%p"`).
    #[arg(long, value_name = "COMMAND", requires = "to_pgdata")]
    restore_command: Option<String>,
    /// Restore a MariaDB dump into this database (`mysql://user@host/db`;
    /// made if it does not exist).
    #[arg(long, value_name = "URL", conflicts_with = "stdout")]
    to_mariadb: Option<String>,
    /// A file holding that database's password (first line).
    #[arg(long, value_name = "FILE", requires = "to_mariadb")]
    mariadb_password_file: Option<PathBuf>,
    /// Write the backup's single file to standard output.
    #[arg(long)]
    stdout: bool,
}

impl TargetArgs {
    /// Refuses options given without the one they go with, before any key
    /// is opened or network read.
    pub fn check(&self) -> anyhow::Result<()> {
        // What each option goes with, said by name: clap drops a `requires`
        // when the required option would conflict with one given
        // (`--to DIR --table T`).
        if self.postgres_password_file.is_some() && self.to_postgres.is_none() {
            bail!("--postgres-password-file goes with --to-postgres URL");
        }
        if self.mariadb_password_file.is_some() && self.to_mariadb.is_none() {
            bail!("--mariadb-password-file goes with --to-mariadb URL");
        }
        if (!self.tables.is_empty() || !self.schemas.is_empty()) && self.to_postgres.is_none() {
            bail!("--table and --schema pick part of a PostgreSQL dump: they go with --to-postgres URL");
        }
        if (self.to_time.is_some()
            || self.to_lsn.is_some()
            || self.to_latest
            || self.restore_command.is_some())
            && self.to_pgdata.is_none()
        {
            bail!("--to-time, --to-lsn, --to-latest and --restore-command go with --to-pgdata DIR");
        }
        if self.path.is_some() && self.to.is_none() && !self.stdout {
            bail!("--path goes with --to DIR or --stdout");
        }
        if let Some(t) = &self.to_time {
            RecoveryTarget::time(t).map_err(anyhow::Error::msg)?;
        }
        if let Some(l) = &self.to_lsn {
            RecoveryTarget::lsn(l).map_err(anyhow::Error::msg)?;
        }
        Selection::under(self.path.as_deref().unwrap_or(""))?;
        Ok(())
    }

    /// The target and the part of the backup it takes, for backup `m`.
    pub fn target(self, m: &Manifest) -> anyhow::Result<(Target, Selection)> {
        self.check()?;
        let select = Selection::under(self.path.as_deref().unwrap_or(""))?;
        if let Some(dir) = self.to_pgdata {
            let target = match (self.to_time, self.to_lsn, self.to_latest) {
                (Some(t), _, _) => RecoveryTarget::time(&t).map_err(anyhow::Error::msg)?,
                (None, Some(l), _) => RecoveryTarget::lsn(&l).map_err(anyhow::Error::msg)?,
                (None, None, true) => RecoveryTarget::Latest,
                (None, None, false) => {
                    bail!(
                        "say how far to recover: --to-time TIMESTAMP, --to-lsn LSN or --to-latest"
                    )
                }
            };
            let restore_command = match self.restore_command {
                Some(c) => c,
                None => context::wal_fetch_command(&m.dataset)?,
            };
            return Ok((
                Target::PgData {
                    dir,
                    recovery: Recovery {
                        target,
                        restore_command,
                    },
                },
                select,
            ));
        }
        let target = match (self.to, self.to_postgres, self.to_mariadb, self.stdout) {
            (Some(dir), _, _, _) => Target::Dir(dir),
            (None, Some(url), _, _) => Target::Postgres {
                url,
                password_file: self.postgres_password_file,
                tables: self.tables,
                schemas: self.schemas,
            },
            (None, None, Some(url), _) => Target::Mariadb {
                url,
                password_file: self.mariadb_password_file,
            },
            (None, None, None, true) => Target::Stdout,
            (None, None, None, false) => {
                bail!("say where to restore: --to DIR, --to-pgdata DIR, --to-postgres URL, --to-mariadb URL or --stdout")
            }
        };
        Ok((target, select))
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
    a.target.check()?;
    let repo = context::repo(cfg)?;
    let keyring = context::unlock(cfg, &repo, "restoring decrypts the backup").await?;
    let (target, report) = match restore_from(repo, &keyring, &id, a.target, a.json).await {
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

/// Restores backup `id` from `repo`'s networks (fastest first) into the
/// target `args` name, with a progress bar unless `json`; `None` when
/// standard output was closed by its reader (`cairn restore --stdout | head`).
pub async fn restore_from(
    repo: cairn_repo::Repository,
    keyring: &cairn_crypto::Keyring,
    id: &BackupId,
    args: TargetArgs,
    json: bool,
) -> anyhow::Result<Option<(Target, cairn_repo::restore::RestoreReport)>> {
    let restorer = Restorer::new(
        repo.fastest_first().await,
        keyring.sealer(),
        keyring.id_key(),
    );
    let manifest = restorer.manifest(id).await?;
    let (target, select) = args.target(&manifest)?;
    let restorer = restorer.select(select);
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
    let report = match restore_to(&restorer, &manifest, &target, &progress).await {
        Ok(r) => r,
        Err(e) if matches!(target, Target::Stdout) && output::is_broken_pipe(&e) => {
            return Ok(None)
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    Ok(Some((target, report)))
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
        if let Target::PgData { dir, recovery } = target {
            out!(
                "{} recovers {} when PostgreSQL starts on it (recovery.signal; restore_command and the target are in postgresql.auto.conf)",
                dir.display(),
                match &recovery.target {
                    RecoveryTarget::Latest => "to the end of the archived WAL".to_string(),
                    RecoveryTarget::Time(t) => format!("to {t}"),
                    RecoveryTarget::Lsn(l) => format!("to WAL location {l}"),
                }
            );
        }
    }
    Ok(())
}
