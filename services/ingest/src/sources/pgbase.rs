//! A PostgreSQL cluster's physical base backup: `pg_basebackup` streams the
//! data directory as tar (`-Ft -D -`) with no WAL of its own (`-X none`):
//! the WAL it needs comes from the archive `cairn wal-push` keeps, and the
//! server waits until the last segment of the backup is archived before
//! `pg_basebackup` ends. The tar becomes the tree of the data directory
//! under `pgdata/`, so that files unchanged since the last base backup
//! dedup, `cairn ls` lists it, and a restore writes a data directory.
//!
//! The backup's `backup_label` and `backup_manifest` say which WAL it needs
//! (recorded as a [`WalRange`]: retention keeps that WAL, and restore knows
//! the earliest moment the backup can recover to).

use super::child::ChildOutput;
use super::SourceKind;
use crate::source::{Input, Produced};
use cairn_events::WalRange;
use std::io::Read;
use std::path::Path;

pub struct BaseBackup<'a> {
    pub url: &'a str,
    pub password_file: Option<&'a str>,
}

impl SourceKind for BaseBackup<'_> {
    fn open(&self, client: Option<Box<dyn Read + Send>>) -> Result<Input, String> {
        if client.is_some() {
            return Err("a database backup does not read the client's stream".into());
        }
        cairn_repo::pgtools::check_url(self.url)?;
        let password_file = self.password_file.map(Path::new);
        archiving_on(self.url, password_file)?;
        let mut cmd = cairn_repo::pgtools::command("pg_basebackup", self.url, password_file)?;
        cmd.args([
            "--pgdata=-",
            "--format=tar",
            "--wal-method=none",
            "--checkpoint=fast",
            "--label=cairn",
        ]);
        let tar = ChildOutput::start("pg_basebackup", "postgresql-client", cmd)
            .map_err(|e| e.to_string())?;
        Ok(Input::Tar {
            label: cairn_repo::layout::PGDATA.into(),
            reader: Box::new(tar),
            keep: &["backup_label", "backup_manifest"],
        })
    }

    fn finish(&self, produced: &Produced) -> Result<Option<WalRange>, String> {
        let label = produced
            .kept
            .get("backup_label")
            .ok_or("the base backup holds no backup_label")?;
        let manifest = produced
            .kept
            .get("backup_manifest")
            .ok_or("the base backup holds no backup_manifest (PostgreSQL 13 or later is needed)")?;
        wal_range(
            &String::from_utf8_lossy(label),
            manifest,
            &cairn_events::now_rfc3339(),
        )
        .map(Some)
    }
}

/// A base backup without its WAL cannot be restored: refuse a cluster that
/// does not archive it.
fn archiving_on(url: &str, password_file: Option<&Path>) -> Result<(), String> {
    let mut cmd = cairn_repo::pgtools::command("psql", url, password_file)?;
    cmd.args([
        "--no-psqlrc",
        "--tuples-only",
        "--no-align",
        "--command",
        "SELECT current_setting('archive_mode')",
    ]);
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| cairn_repo::pgtools::spawn_error("psql", &e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "cannot reach the cluster to back up: {}",
            err.trim().lines().last().unwrap_or("psql failed")
        ));
    }
    let mode = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if mode == "off" {
        return Err("the cluster does not archive its WAL (archive_mode = off), so a base backup of it could never be restored: set archive_mode = on and archive_command = 'cairn wal-push --dataset NAME %p', then back it up again".into());
    }
    Ok(())
}

/// The WAL range of a base backup, from its `backup_label` (start segment,
/// start time) and `backup_manifest` (its `WAL-Ranges`); `ended_at` is
/// when its reading ended.
pub fn wal_range(label: &str, manifest: &[u8], ended_at: &str) -> Result<WalRange, String> {
    let field = |name: &str| {
        label
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .ok_or_else(|| format!("backup_label has no {name}"))
    };
    // START WAL LOCATION: 0/3000028 (file 000000010000000000000003)
    let start = field("START WAL LOCATION:")?;
    let start_segment = start
        .split("(file ")
        .nth(1)
        .and_then(|s| s.strip_suffix(')'))
        .filter(|s| s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("backup_label: cannot read the start segment of {start:?}"))?
        .to_string();
    // START TIME: 2026-12-06 15:42:53 UTC
    let started = field("START TIME:")?;
    let started_at = label_time(started)?;
    #[derive(serde::Deserialize)]
    struct Range {
        #[serde(rename = "Timeline")]
        timeline: u32,
        #[serde(rename = "Start-LSN")]
        start: String,
        #[serde(rename = "End-LSN")]
        end: String,
    }
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(rename = "WAL-Ranges")]
        ranges: Vec<Range>,
    }
    let m: Manifest = serde_json::from_slice(manifest)
        .map_err(|e| format!("backup_manifest: cannot read its WAL-Ranges: {e}"))?;
    let (first, last) = match (m.ranges.first(), m.ranges.last()) {
        (Some(f), Some(l)) => (f, l),
        _ => return Err("backup_manifest lists no WAL range".into()),
    };
    Ok(WalRange {
        timeline: last.timeline,
        start_lsn: first.start.clone(),
        end_lsn: last.end.clone(),
        start_segment,
        started_at,
        ended_at: ended_at.to_string(),
    })
}

/// `2026-12-06 15:42:53 UTC` (the label's form, always UTC from a server
/// whose log_timezone is UTC, else with its zone name) as RFC 3339. A zone
/// other than UTC or GMT is kept as written: it only informs.
fn label_time(t: &str) -> Result<String, String> {
    let mut parts = t.split_whitespace();
    let (date, time, zone) = (parts.next(), parts.next(), parts.next());
    match (date, time, zone) {
        (Some(d), Some(tm), Some("UTC" | "GMT")) => Ok(format!("{d}T{tm}Z")),
        (Some(_), Some(_), _) => Ok(t.to_string()),
        _ => Err(format!("backup_label: cannot read START TIME {t:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABEL: &str = "START WAL LOCATION: 0/3000028 (file 000000010000000000000003)
CHECKPOINT LOCATION: 0/3000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-12-06 15:42:53 UTC
LABEL: cairn
START TIMELINE: 1
";

    #[test]
    fn a_base_backup_names_the_wal_it_needs() {
        let manifest = br#"{"PostgreSQL-Backup-Manifest-Version": 1, "Files": [],
            "WAL-Ranges": [{ "Timeline": 1, "Start-LSN": "0/3000028", "End-LSN": "0/3000100" }]}"#;
        let r = wal_range(LABEL, manifest, "2026-12-06T15:42:55Z").unwrap();
        assert_eq!(r.timeline, 1);
        assert_eq!(r.start_segment, "000000010000000000000003");
        assert_eq!(r.start_lsn, "0/3000028");
        assert_eq!(r.end_lsn, "0/3000100");
        assert_eq!(r.started_at, "2026-12-06T15:42:53Z");
        assert_eq!(r.ended_at, "2026-12-06T15:42:55Z");
    }

    #[test]
    fn a_label_or_manifest_it_cannot_read_is_named() {
        let e = wal_range("LABEL: x\n", b"{}", "t").unwrap_err();
        assert!(e.contains("START WAL LOCATION"), "{e}");
        let e = wal_range(LABEL, b"not json", "t").unwrap_err();
        assert!(e.contains("backup_manifest"), "{e}");
        let e = wal_range(LABEL, br#"{"WAL-Ranges": []}"#, "t").unwrap_err();
        assert!(e.contains("no WAL range"), "{e}");
    }
}
