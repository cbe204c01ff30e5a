//! Where a restore goes: a directory (all of a backup or a selected part), a
//! PostgreSQL database (`pg_restore` fed from the stream, with the
//! database's own credentials), a PostgreSQL data directory recovering to a
//! point in time, a MariaDB database, one file, or standard output.
//! [`restore_to`] runs the whole restore of one backup into one of them and
//! says what was written.

use crate::format::Manifest;
use crate::restore::{DirSink, RestoreReport, Restorer, Selection, WriterSink};
use crate::{mariadbtools, pgdata, pgtools, RepoError};
use cairn_events::Source;
use std::path::PathBuf;

/// A restore target.
#[derive(Debug, Clone)]
pub enum Target {
    /// Files under this directory.
    Dir(PathBuf),
    /// `pg_restore` a database backup into the database at `url`: all of
    /// it, or only the named tables and schemas (`--table`, `--schema`).
    Postgres {
        url: String,
        password_file: Option<PathBuf>,
        tables: Vec<String>,
        schemas: Vec<String>,
    },
    /// The backup's single file, to standard output.
    Stdout,
    /// A base backup as a data directory recovering as `recovery` says.
    PgData {
        dir: PathBuf,
        recovery: pgdata::Recovery,
    },
    /// A MariaDB dump into the database `url` names (made if missing).
    Mariadb {
        url: String,
        password_file: Option<PathBuf>,
    },
    /// The backup's single file, written to this path (whole or not at all).
    File(PathBuf),
}

impl Target {
    /// How the ledger records it: `dir:<path>`, `postgres:<host/db>` (never
    /// the URL's user or password) or `stdout`.
    pub fn label(&self) -> String {
        match self {
            Target::Dir(d) => format!("dir:{}", d.display()),
            Target::Postgres { url, .. } => {
                format!("postgres:{}", url.split('@').next_back().unwrap_or(url))
            }
            Target::Stdout => "stdout".into(),
            Target::PgData { dir, .. } => format!("pgdata:{}", dir.display()),
            Target::Mariadb { url, .. } => {
                format!("mariadb:{}", url.split('@').next_back().unwrap_or(url))
            }
            Target::File(p) => format!("file:{}", p.display()),
        }
    }
}

/// Restores backup `m` into `target`; `progress` receives bytes written.
pub async fn restore_to(
    restorer: &Restorer,
    m: &Manifest,
    target: &Target,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<RestoreReport, RepoError> {
    match target {
        Target::Dir(dir) => {
            let mut sink = DirSink::new(dir)?;
            restorer.restore(m, &mut sink, progress).await
        }
        Target::Stdout => {
            let mut sink = WriterSink::new(tokio::io::stdout());
            restorer.restore(m, &mut sink, progress).await
        }
        Target::PgData { dir, recovery } => {
            if !matches!(m.source, Source::PostgresBase { .. }) {
                return Err(RepoError::Target(format!(
                    "backup {} is not a PostgreSQL base backup (its source is {}); --to-pgdata needs one taken with --postgres-base",
                    m.backup_id,
                    m.source.kind()
                )));
            }
            if let Some(wal) = &m.wal {
                pgdata::reaches(wal, &recovery.target).map_err(RepoError::Target)?;
            }
            pgdata::check_empty(dir)?;
            let mut sink = DirSink::new(dir)?;
            let select = Selection::under(crate::layout::PGDATA)?.stripped();
            let report = restorer
                .restore_selected(m, &mut sink, progress, &select)
                .await?;
            pgdata::prepare(dir, m.backup_id.as_str(), recovery)?;
            Ok(report)
        }
        Target::Mariadb { url, password_file } => {
            if !matches!(m.source, Source::Mariadb { .. }) {
                return Err(RepoError::Target(format!(
                    "backup {} is not a MariaDB dump (its source is {})",
                    m.backup_id,
                    m.source.kind()
                )));
            }
            mariadb_restore(restorer, m, url, password_file.as_deref(), progress).await
        }
        Target::File(path) => {
            let partial = crate::restore::partial_of(path);
            let file = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| RepoError::Target(format!("{}: {e}", partial.display())))?;
            let mut sink = WriterSink::new(file);
            let restored = restorer.restore(m, &mut sink, progress).await;
            let written = match restored {
                Ok(r) if r.files == 1 => {
                    let mut file = sink.into_inner();
                    use tokio::io::AsyncWriteExt;
                    file.flush().await?;
                    file.sync_all().await?;
                    Ok(r)
                }
                Ok(r) => Err(RepoError::Target(format!(
                    "backup {} holds {} files, not one",
                    m.backup_id, r.files
                ))),
                Err(e) => Err(e),
            };
            match written {
                Ok(r) => {
                    tokio::fs::rename(&partial, path)
                        .await
                        .map_err(|e| RepoError::Target(format!("{}: {e}", path.display())))?;
                    Ok(r)
                }
                Err(e) => {
                    let _ = tokio::fs::remove_file(&partial).await;
                    Err(e)
                }
            }
        }
        Target::Postgres {
            url,
            password_file,
            tables,
            schemas,
        } => {
            if !matches!(m.source, Source::Postgres { .. }) {
                return Err(RepoError::Target(format!(
                    "backup {} is not a PostgreSQL dump (its source is {})",
                    m.backup_id,
                    m.source.kind()
                )));
            }
            let select = PgSelect { tables, schemas };
            pg_restore(
                restorer,
                m,
                url,
                password_file.as_deref(),
                &select,
                progress,
            )
            .await
        }
    }
}

/// The part of a dump `pg_restore` is asked for (none: all of it).
struct PgSelect<'a> {
    tables: &'a [String],
    schemas: &'a [String],
}

/// The byte ranges of a dump that a selection needs: its header and table
/// of contents, then the data blocks of the selected tables, in dump order.
/// `None` when the whole dump must be read (no selection, or no index).
fn dump_ranges(m: &Manifest, select: &PgSelect) -> Result<Option<Vec<(u64, u64)>>, RepoError> {
    if select.tables.is_empty() && select.schemas.is_empty() {
        return Ok(None);
    }
    let Some(index) = &m.dump_index else {
        tracing::warn!(backup = %m.backup_id, "this dump has no index (taken before Cairn indexed dumps, or unreadable): the whole dump is read");
        return Ok(None);
    };
    let chosen = index.selected(select.tables, select.schemas);
    if chosen.is_empty() {
        return Err(RepoError::Target(format!(
            "backup {} holds no table data for {}{}",
            m.backup_id,
            if select.tables.is_empty() {
                String::new()
            } else {
                format!("table {}", select.tables.join(", "))
            },
            if select.schemas.is_empty() {
                String::new()
            } else {
                format!(" in schema {}", select.schemas.join(", "))
            },
        )));
    }
    let mut ranges = vec![(0, index.header_len)];
    ranges.extend(chosen.iter().map(|e| e.block));
    Ok(Some(ranges))
}

async fn pg_restore(
    restorer: &Restorer,
    m: &Manifest,
    url: &str,
    password_file: Option<&std::path::Path>,
    select: &PgSelect<'_>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<RestoreReport, RepoError> {
    let ranges = dump_ranges(m, select)?;
    // `pg_restore --schema` restores what is in a schema but not the schema.
    for schema in select.schemas {
        let mut create = pgtools::command("psql", url, password_file).map_err(RepoError::Target)?;
        create
            .args([
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                "--command",
            ])
            .arg(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{}\"",
                schema.replace('"', "\"\"")
            ))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        let out = tokio::process::Command::from(create)
            .output()
            .await
            .map_err(|e| RepoError::Target(pgtools::spawn_error("psql", &e)))?;
        if !out.status.success() {
            return Err(RepoError::Target(format!(
                "creating schema {schema}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    let mut cmd = pgtools::command("pg_restore", url, password_file).map_err(RepoError::Target)?;
    cmd.args(["--no-owner", "--exit-on-error"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    for t in select.tables {
        cmd.arg(format!("--table={t}"));
    }
    for s in select.schemas {
        cmd.arg(format!("--schema={s}"));
    }
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|e| RepoError::Target(pgtools::spawn_error("pg_restore", &e)))?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| RepoError::Target("pg_restore: no standard input".into()))?;
    let mut sink = WriterSink::new(stdin);
    let restored = match &ranges {
        Some(r) => restorer.read_ranges(m, r, &mut sink).await,
        None => restorer.restore(m, &mut sink, progress).await,
    };
    drop(sink);
    let out = child.wait_with_output().await?;
    // pg_restore's own complaint says more than the broken pipe it caused.
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(RepoError::Target(format!(
            "pg_restore failed ({}): {}",
            out.status,
            err.trim().lines().last().unwrap_or("")
        )));
    }
    restored
}

/// Feeds a MariaDB dump to the `mariadb` client, into the database the URL
/// names, made first if it does not exist.
async fn mariadb_restore(
    restorer: &Restorer,
    m: &Manifest,
    url: &str,
    password_file: Option<&std::path::Path>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<RestoreReport, RepoError> {
    let u = mariadbtools::parse(url).map_err(RepoError::Target)?;
    let failed = |what: &str, out: &std::process::Output| {
        let err = String::from_utf8_lossy(&out.stderr);
        RepoError::Target(format!(
            "{what} failed ({}): {}",
            out.status,
            err.trim().lines().last().unwrap_or("")
        ))
    };
    let mut create =
        mariadbtools::command("mariadb", &u, password_file).map_err(RepoError::Target)?;
    create
        .arg("--execute")
        .arg(format!(
            "CREATE DATABASE IF NOT EXISTS `{}`",
            u.database.replace('`', "``")
        ))
        .stdin(std::process::Stdio::null());
    let out = tokio::process::Command::from(create)
        .output()
        .await
        .map_err(|e| {
            RepoError::Target(format!(
                "cannot run mariadb (is mariadb-client installed?): {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(failed("creating the database", &out));
    }
    let mut cmd = mariadbtools::command("mariadb", &u, password_file).map_err(RepoError::Target)?;
    cmd.arg(format!("--database={}", u.database))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|e| RepoError::Target(format!("cannot run mariadb: {e}")))?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| RepoError::Target("mariadb: no standard input".into()))?;
    let mut sink = WriterSink::new(stdin);
    let restored = restorer.restore(m, &mut sink, progress).await;
    drop(sink);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        return Err(failed("mariadb", &out));
    }
    restored
}
