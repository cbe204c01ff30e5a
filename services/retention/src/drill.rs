//! Restore drills: backups restored on a schedule (`[retention.drills]`)
//! or on demand (`cairn drill`) into a scratch place, to prove they come
//! back, with the result recorded as `drill.completed` or `drill.failed`.
//!
//! A drill is a whole restore: the manifest's Merkle root is checked
//! against the root the ledger recorded, the chunk list against the
//! manifest, every chunk is authenticated and checked against its keyed
//! id, and every file against its recorded size; then the totals against
//! the manifest's. Files go into a private directory that is removed
//! afterwards; a PostgreSQL dump is loaded into a scratch database that is
//! dropped afterwards (or, with no scratch server configured, read and
//! checked without loading).
//!
//! Drills decrypt backup data, so they need the key: besides restore they
//! are the only part of Cairn that reads data, and they run only where the
//! operator configured the passphrase.
//!
//! Which backups are drilled is [`pick`], a pure function: per dataset the
//! newest restorable backup (completed or degraded) and a random sample of
//! older ones.

use cairn_bus::claims::Claims;
use cairn_bus::{Bus, BusError};
use cairn_events::{BackupId, Drill, Envelope, Event, Source};
use cairn_lifecycle::{due, Checked};
use cairn_repo::format::Manifest;
use cairn_repo::pgtools;
use cairn_repo::restore::{RestoreReport, Restorer, WriterSink};
use cairn_repo::target::{restore_to, Target};
use chrono::{DateTime, Utc};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("backup {0}: the ledger does not know it")]
    Unknown(String),
    #[error("backup {id} is {status}: only completed and degraded backups can be drilled")]
    NotRestorable { id: String, status: String },
    #[error("backup id {id:?} in the ledger: {reason}")]
    BadId { id: String, reason: String },
}

/// Why a backup was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PickKind {
    /// The dataset's newest restorable backup.
    Newest,
    /// A randomly chosen older one.
    Sample,
    /// Named by an operator (`cairn drill --backup`).
    Asked,
}

impl PickKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PickKind::Newest => "newest",
            PickKind::Sample => "sample",
            PickKind::Asked => "asked",
        }
    }
}

/// A backup a drill restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picked {
    pub dataset: String,
    pub backup_id: String,
    pub pick: PickKind,
}

/// A backup that could be drilled: `(dataset, backup id)`.
pub type Candidate = (String, String);

/// Per dataset (by name), its newest candidate and up to `sample` others
/// chosen at random. `candidates` are restorable backups, newest first.
pub fn pick<R: Rng>(candidates: &[Candidate], sample: usize, rng: &mut R) -> Vec<Picked> {
    let mut datasets: Vec<&str> = candidates.iter().map(|(d, _)| d.as_str()).collect();
    datasets.sort_unstable();
    datasets.dedup();
    let mut out = Vec::new();
    for d in datasets {
        let ids: Vec<&str> = candidates
            .iter()
            .filter(|(ds, _)| ds == d)
            .map(|(_, id)| id.as_str())
            .collect();
        let Some((newest, older)) = ids.split_first() else {
            continue;
        };
        out.push(Picked {
            dataset: d.into(),
            backup_id: (*newest).into(),
            pick: PickKind::Newest,
        });
        for id in older.choose_multiple(rng, sample) {
            out.push(Picked {
                dataset: d.into(),
                backup_id: (*id).into(),
                pick: PickKind::Sample,
            });
        }
    }
    out
}

/// A PostgreSQL server a drill may create scratch databases on.
#[derive(Debug, Clone)]
pub struct ScratchServer {
    /// Connects as a role with CREATEDB (to any database; `postgres` will do).
    pub url: String,
    pub password_file: Option<PathBuf>,
}

/// One drill's result, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct DrillResult {
    pub backup_id: String,
    pub ok: bool,
    #[serde(flatten)]
    pub drill: Drill,
}

pub struct Driller {
    pub bus: Bus,
    /// The ledger (read only): which backups exist and their roots.
    pub pg: tokio_postgres::Client,
    pub restorer: Restorer,
    /// Where private scratch directories are made.
    pub scratch_dir: PathBuf,
    pub postgres: Option<ScratchServer>,
    /// Recorded as the drill's `by`.
    pub by: String,
    /// The events' source.
    pub source: String,
}

/// What a restore into the scratch place brought back.
struct Restored {
    target: String,
    report: RestoreReport,
}

impl Driller {
    /// Restorable backups (completed or degraded), newest first. Archived
    /// WAL files are not drilled on their own (a busy cluster's newest
    /// backup is nearly always one): its base backups are.
    pub async fn candidates(&self, dataset: Option<&str>) -> Result<Vec<Candidate>, DrillError> {
        Ok(cairn_ledger::query::list_backups(&self.pg, dataset, None)
            .await?
            .into_iter()
            .filter(|r| restorable(&r.status))
            .filter(|r| !matches!(r.source, Some(Source::Wal { .. })))
            .map(|r| (r.dataset, r.backup_id))
            .collect())
    }

    /// Drills what [`pick`] chooses, one after another, recording each.
    pub async fn drill_picked(
        &self,
        dataset: Option<&str>,
        sample: usize,
    ) -> Result<Vec<DrillResult>, DrillError> {
        let candidates = self.candidates(dataset).await?;
        let picked = pick(&candidates, sample, &mut rand::thread_rng());
        let mut out = Vec::with_capacity(picked.len());
        for p in picked {
            out.push(self.drill(&p.backup_id, &p.dataset, p.pick).await?);
        }
        Ok(out)
    }

    /// Drills one named backup.
    pub async fn drill_backup(&self, id: &BackupId) -> Result<DrillResult, DrillError> {
        let row = cairn_ledger::query::backup(&self.pg, id.as_str())
            .await?
            .ok_or_else(|| DrillError::Unknown(id.to_string()))?;
        if !restorable(&row.status) {
            return Err(DrillError::NotRestorable {
                id: id.to_string(),
                status: row.status,
            });
        }
        self.drill(id.as_str(), &row.dataset, PickKind::Asked).await
    }

    async fn drill(
        &self,
        backup_id: &str,
        dataset: &str,
        pick: PickKind,
    ) -> Result<DrillResult, DrillError> {
        let id: BackupId = backup_id.parse().map_err(|e| DrillError::BadId {
            id: backup_id.into(),
            reason: format!("{e}"),
        })?;
        let started_at = cairn_events::now_rfc3339();
        let t0 = Instant::now();
        let recorded_root = cairn_ledger::query::backup(&self.pg, backup_id)
            .await?
            .and_then(|r| r.outcome)
            .map(|o| o.merkle_root)
            .filter(|r| !r.is_empty());
        let (target, report, reason) = match self.restore_and_check(&id, recorded_root).await {
            Ok(r) => (r.target, r.report, None),
            Err((target, report, reason)) => (target, report, Some(reason)),
        };
        let drill = Drill {
            dataset: dataset.into(),
            pick: pick.as_str().into(),
            target,
            bytes: report.bytes_written,
            files: report.files,
            chunks: report.chunks_from.values().sum(),
            duration_ms: t0.elapsed().as_millis() as u64,
            started_at,
            reason,
            by: self.by.clone(),
        };
        let ok = drill.reason.is_none();
        let event = if ok {
            Event::DrillCompleted(drill.clone())
        } else {
            Event::DrillFailed(drill.clone())
        };
        let env = Envelope::new(
            self.source.clone(),
            id.clone(),
            event,
            &[drill.started_at.as_bytes(), self.by.as_bytes()],
        );
        self.bus.publish_event(&env).await?;
        match &drill.reason {
            None => {
                tracing::info!(backup = %id, dataset, ms = drill.duration_ms, bytes = drill.bytes, "restore drill completed")
            }
            Some(r) => tracing::warn!(backup = %id, dataset, reason = %r, "restore drill failed"),
        }
        Ok(DrillResult {
            backup_id: id.to_string(),
            ok,
            drill,
        })
    }

    /// The restore and every check; on failure, where it got to and why.
    async fn restore_and_check(
        &self,
        id: &BackupId,
        recorded_root: Option<String>,
    ) -> Result<Restored, (String, RestoreReport, String)> {
        let fail = |target: &str, why: String| (target.to_string(), RestoreReport::default(), why);
        let m = self
            .restorer
            .manifest(id)
            .await
            .map_err(|e| fail("none", format!("reading the manifest: {e}")))?;
        let root = hex::encode(&m.merkle_root);
        if let Some(recorded) = recorded_root {
            if recorded != root {
                return Err(fail(
                    "none",
                    format!("the manifest's Merkle root {root} is not the one the ledger recorded ({recorded})"),
                ));
            }
        }
        let restored = match (&m.source, &self.postgres) {
            (Source::Postgres { .. }, Some(server)) => {
                self.restore_in_scratch_database(&m, server).await
            }
            (Source::Postgres { .. }, None) => {
                let mut sink = WriterSink::new(tokio::io::sink());
                let target = "verify-only".to_string();
                match self.restorer.restore(&m, &mut sink, &|_| {}).await {
                    Ok(report) => Ok(Restored { target, report }),
                    Err(e) => Err((target, RestoreReport::default(), e.to_string())),
                }
            }
            _ => self.restore_in_scratch_dir(&m).await,
        }?;
        let s = &m.stats;
        let r = &restored.report;
        let mismatch = if r.bytes_written != s.bytes_read {
            Some(format!(
                "restored {} bytes where the manifest records {}",
                r.bytes_written, s.bytes_read
            ))
        } else if r.files != s.files {
            Some(format!(
                "restored {} files where the manifest records {}",
                r.files, s.files
            ))
        } else {
            None
        };
        match mismatch {
            Some(why) => Err((restored.target, restored.report, why)),
            None => Ok(restored),
        }
    }

    async fn restore_in_scratch_dir(
        &self,
        m: &Manifest,
    ) -> Result<Restored, (String, RestoreReport, String)> {
        let dir = self.scratch_dir.join(format!(
            "cairn-drill-{}-{:08x}",
            m.backup_id,
            rand::random::<u32>()
        ));
        let target = format!("dir:{}", dir.display());
        if let Err(e) = private_dir(&dir) {
            return Err((
                target,
                RestoreReport::default(),
                format!("making the scratch directory: {e}"),
            ));
        }
        let restored = restore_to(&self.restorer, m, &Target::Dir(dir.clone()), &|_| {}).await;
        // The plaintext must not outlive the drill, whatever happened.
        let removed = remove_scratch(&dir).await;
        match (restored, removed) {
            (Ok(report), Ok(())) => Ok(Restored { target, report }),
            (Ok(report), Err(e)) => Err((
                target,
                report,
                format!("restored, but the scratch directory could not be removed: {e}"),
            )),
            (Err(e), _) => Err((target, RestoreReport::default(), e.to_string())),
        }
    }

    async fn restore_in_scratch_database(
        &self,
        m: &Manifest,
        server: &ScratchServer,
    ) -> Result<Restored, (String, RestoreReport, String)> {
        let name = scratch_database(&m.backup_id);
        let target = format!("postgres:{name}");
        let fail = |why: String| (target.clone(), RestoreReport::default(), why);
        let url = pgtools::with_database(&server.url, &name)
            .map_err(|e| fail(format!("[retention.drills] postgres_url: {e}")))?;
        let pw = server.password_file.as_deref();
        psql(&server.url, pw, &format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(|e| fail(format!("creating the scratch database: {e}")))?;
        let restored = restore_to(
            &self.restorer,
            m,
            &Target::Postgres {
                url,
                password_file: server.password_file.clone(),
                tables: Vec::new(),
                schemas: Vec::new(),
            },
            &|_| {},
        )
        .await;
        let dropped = psql(
            &server.url,
            pw,
            &format!("DROP DATABASE IF EXISTS \"{name}\""),
        )
        .await;
        match (restored, dropped) {
            (Ok(report), Ok(())) => Ok(Restored { target, report }),
            (Ok(report), Err(e)) => Err((
                target,
                report,
                format!("restored, but the scratch database could not be dropped: {e}"),
            )),
            (Err(e), _) => Err(fail(e.to_string())),
        }
    }
}

fn restorable(status: &str) -> bool {
    matches!(status, "completed" | "degraded")
}

/// A scratch database's name: the backup's id and a random tail, within
/// PostgreSQL's 63 bytes, of characters that need no quoting.
fn scratch_database(id: &BackupId) -> String {
    let tail: String = id
        .as_str()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let tail = &tail[tail.len().saturating_sub(24)..];
    format!("cairn_drill_{tail}_{:08x}", rand::random::<u32>())
}

/// Runs one SQL statement with `psql` on `url`.
async fn psql(url: &str, password_file: Option<&Path>, sql: &str) -> Result<(), String> {
    let mut cmd = pgtools::command("psql", url, password_file)?;
    cmd.args([
        "--no-psqlrc",
        "--quiet",
        "-v",
        "ON_ERROR_STOP=1",
        "--command",
        sql,
    ])
    .stdout(std::process::Stdio::null());
    let out = tokio::process::Command::from(cmd)
        .output()
        .await
        .map_err(|e| pgtools::spawn_error("psql", &e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Makes `dir` (and its parents) readable by this user alone.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Removes a scratch directory, first making read-only directories in it
/// writable (a backup may restore a directory as mode 0555).
async fn remove_scratch(dir: &Path) -> std::io::Result<()> {
    if tokio::fs::remove_dir_all(dir).await.is_ok() {
        return Ok(());
    }
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        fn writable(p: &Path) -> std::io::Result<()> {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::symlink_metadata(p)?;
            if meta.is_dir() {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
                for e in std::fs::read_dir(p)? {
                    writable(&e?.path())?;
                }
            }
            Ok(())
        }
        writable(&dir)?;
        std::fs::remove_dir_all(&dir)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Runs the drills at every slot of `cadence`, one replica per slot (a
/// claim on the schedules stream); after downtime, once. A failed round is
/// logged, and the next slot tries again.
pub async fn run(d: Driller, cadence: Checked, sample: usize) -> Result<(), BusError> {
    let claims = Claims::new(&d.bus);
    let since = Utc::now();
    loop {
        let now = Utc::now();
        match last_round(&claims).await {
            Ok(last) => {
                if let Some(slot) = due(&cadence, "drills", last, since, now) {
                    match claims.claim_round(ROUND_KEY, slot.timestamp()).await {
                        Ok(true) => match d.drill_picked(None, sample).await {
                            Ok(r) => tracing::info!(
                                %slot,
                                drilled = r.len(),
                                failed = r.iter().filter(|x| !x.ok).count(),
                                "restore drills ran"
                            ),
                            Err(e) => {
                                tracing::warn!(error = %e, "restore drills could not run; trying again next slot")
                            }
                        },
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "claiming a drill slot failed"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the last drill slot failed"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

const ROUND_KEY: &str = "drills";

async fn last_round(claims: &Claims) -> Result<Option<DateTime<Utc>>, BusError> {
    let (raw, _) = claims.get(ROUND_KEY).await?;
    Ok(raw
        .and_then(|b| std::str::from_utf8(&b).ok()?.parse::<i64>().ok())
        .and_then(|t| DateTime::from_timestamp(t, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn c(d: &str, id: &str) -> Candidate {
        (d.into(), id.into())
    }

    #[test]
    fn the_newest_of_each_dataset_and_a_sample_of_the_older() {
        let all = vec![
            c("db", "d4"),
            c("files", "f3"),
            c("db", "d3"),
            c("files", "f2"),
            c("db", "d2"),
            c("db", "d1"),
            c("files", "f1"),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let p = pick(&all, 1, &mut rng);
        assert_eq!(p.len(), 4);
        assert_eq!(
            (p[0].backup_id.as_str(), p[0].pick),
            ("d4", PickKind::Newest)
        );
        assert_eq!(p[1].pick, PickKind::Sample);
        assert!(["d3", "d2", "d1"].contains(&p[1].backup_id.as_str()));
        assert_eq!(
            (p[2].backup_id.as_str(), p[2].pick),
            ("f3", PickKind::Newest)
        );
        assert!(["f2", "f1"].contains(&p[3].backup_id.as_str()));
        // No sample: the newest alone; a sample larger than what there is:
        // every backup, none twice.
        let p = pick(&all, 0, &mut rng);
        assert_eq!(
            p.iter().map(|x| x.backup_id.as_str()).collect::<Vec<_>>(),
            ["d4", "f3"]
        );
        let mut ids: Vec<_> = pick(&all, 10, &mut rng)
            .into_iter()
            .map(|x| x.backup_id)
            .collect();
        ids.sort();
        assert_eq!(ids, ["d1", "d2", "d3", "d4", "f1", "f2", "f3"]);
        assert!(pick(&[], 3, &mut rng).is_empty());
    }

    #[test]
    fn the_sample_is_spread_over_the_older_backups() {
        let all: Vec<Candidate> = (0..5).map(|i| c("db", &format!("b{i}"))).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = pick(&all, 1, &mut rng);
            assert_eq!(p[0].backup_id, "b0");
            seen.insert(p[1].backup_id.clone());
        }
        assert_eq!(seen.len(), 4, "every older backup gets drilled: {seen:?}");
    }

    #[test]
    fn scratch_database_names_need_no_quoting_and_fit() {
        let id: BackupId = "0190f2b4-7c1e-7a3b-9d2e-5f6a7b8c9d0e".parse().unwrap();
        let n = scratch_database(&id);
        assert!(n.len() <= 63, "{n}");
        assert!(n.starts_with("cairn_drill_"));
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{n}"
        );
        assert_ne!(
            n,
            scratch_database(&id),
            "two drills of one backup never share a database"
        );
    }

    #[test]
    fn a_scratch_directory_is_private_and_removed_even_when_read_only() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/b");
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::create_dir(dir.join("ro")).unwrap();
        std::fs::write(dir.join("ro/f"), b"x").unwrap();
        std::fs::set_permissions(dir.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(remove_scratch(&dir))
            .unwrap();
        assert!(!dir.exists());
    }
}
