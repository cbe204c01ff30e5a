//! Where a restore goes: a directory, a PostgreSQL database (`pg_restore`
//! fed from the stream, with the database's own credentials), or standard
//! output. [`restore_to`] runs the whole restore of one backup into one of
//! them and says what was written.

use crate::format::Manifest;
use crate::restore::{DirSink, RestoreReport, Restorer, WriterSink};
use crate::{pgtools, RepoError};
use cairn_events::Source;
use std::path::PathBuf;

/// A restore target.
#[derive(Debug, Clone)]
pub enum Target {
    /// Files under this directory.
    Dir(PathBuf),
    /// `pg_restore` a database backup into the database at `url`.
    Postgres {
        url: String,
        password_file: Option<PathBuf>,
    },
    /// The backup's single file, to standard output.
    Stdout,
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
        Target::Postgres { url, password_file } => {
            if !matches!(m.source, Source::Postgres { .. }) {
                return Err(RepoError::Target(format!(
                    "backup {} is not a PostgreSQL dump (its source is {:?})",
                    m.backup_id, m.source
                )));
            }
            pg_restore(restorer, m, url, password_file.as_deref(), progress).await
        }
    }
}

async fn pg_restore(
    restorer: &Restorer,
    m: &Manifest,
    url: &str,
    password_file: Option<&std::path::Path>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<RestoreReport, RepoError> {
    let mut cmd = pgtools::command("pg_restore", url, password_file).map_err(RepoError::Target)?;
    cmd.args(["--no-owner", "--exit-on-error"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = tokio::process::Command::from(cmd)
        .spawn()
        .map_err(|e| RepoError::Target(pgtools::spawn_error("pg_restore", &e)))?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| RepoError::Target("pg_restore: no standard input".into()))?;
    let mut sink = WriterSink::new(stdin);
    let restored = restorer.restore(m, &mut sink, progress).await;
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
