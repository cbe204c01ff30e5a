//! Point-in-time recovery into a PostgreSQL data directory: a base backup's
//! `pgdata/` tree written into an empty directory, made a data directory
//! PostgreSQL will start from (mode 0700, `pg_wal/` present), and told how to
//! recover: `recovery.signal`, and in `postgresql.auto.conf` the
//! `restore_command` that fetches WAL from Cairn and the recovery target.
//! PostgreSQL then replays the archived WAL up to that moment and promotes.

use crate::RepoError;
use cairn_events::WalRange;
use std::io::Write;
use std::path::Path;

/// How far recovery replays.
#[derive(Debug, Clone, PartialEq)]
pub enum RecoveryTarget {
    /// To the end of the archived WAL.
    Latest,
    /// Up to (not including) the first commit after this moment (RFC 3339).
    Time(String),
    /// Up to this WAL location (`0/3000100`).
    Lsn(String),
}

/// What `--to-pgdata` is asked for.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub target: RecoveryTarget,
    /// The command PostgreSQL runs for each WAL file it needs
    /// (`cairn wal-fetch ... %f "%p"`).
    pub restore_command: String,
}

impl RecoveryTarget {
    /// A time as the user wrote it (`2026-12-06 15:42:53+00`, RFC 3339),
    /// which must say its time zone so that the moment is unambiguous.
    pub fn time(text: &str) -> Result<Self, String> {
        Ok(RecoveryTarget::Time(parse_time(text)?.to_rfc3339()))
    }

    /// An LSN as PostgreSQL prints it (`16/B374D848`).
    pub fn lsn(text: &str) -> Result<Self, String> {
        let ok = text.split_once('/').is_some_and(|(hi, lo)| {
            !hi.is_empty()
                && !lo.is_empty()
                && hi.len() <= 8
                && lo.len() <= 8
                && hi.bytes().chain(lo.bytes()).all(|b| b.is_ascii_hexdigit())
        });
        if !ok {
            return Err(format!(
                "{text:?} is not a WAL location (LSN) such as 0/3000100"
            ));
        }
        Ok(RecoveryTarget::Lsn(text.to_ascii_uppercase()))
    }
}

fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::FixedOffset>, String> {
    let t = text.trim().replacen(' ', "T", 1);
    // PostgreSQL's own `+00` form is RFC 3339 once given minutes.
    let t = match t.rfind(['+', '-']) {
        Some(i) if i > 10 && t[i + 1..].len() == 2 => format!("{t}:00"),
        _ => t,
    };
    chrono::DateTime::parse_from_rfc3339(&t).map_err(|_| {
        format!(
            "{text:?} is not a time Cairn can read: write it with its time zone, e.g. 2026-12-06 15:42:53+00 or 2026-12-06T15:42:53Z"
        )
    })
}

/// Whether a base backup that ended at `wal.ended_at` can recover to
/// `target`: not to a moment before it ended, when its files were still
/// being copied.
pub fn reaches(wal: &WalRange, target: &RecoveryTarget) -> Result<(), String> {
    let RecoveryTarget::Time(t) = target else {
        return Ok(());
    };
    let (Ok(want), Ok(ended)) = (
        chrono::DateTime::parse_from_rfc3339(t),
        chrono::DateTime::parse_from_rfc3339(&wal.ended_at),
    ) else {
        return Ok(());
    };
    if want < ended {
        return Err(format!(
            "this base backup was taken until {}, so it cannot recover to {t}, which is earlier: restore an older base backup",
            wal.ended_at
        ));
    }
    Ok(())
}

/// A directory a data directory may be restored into: absent or empty.
pub fn check_empty(dir: &Path) -> Result<(), RepoError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(RepoError::Target(format!(
                    "{} is not empty: a data directory is restored into an empty or new directory (stop the server and move the old one aside first)",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RepoError::Target(format!("{}: {e}", dir.display()))),
    }
}

/// A value in `postgresql.conf` syntax.
fn quoted(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// The settings recovery adds to `postgresql.auto.conf`.
pub fn settings(backup: &str, r: &Recovery) -> String {
    // wal-fetch prefetches segments into pg_wal/cairn-prefetch/; what
    // recovery did not use goes when it ends.
    let mut s = format!(
        "\n# Added by `cairn restore {backup} --to-pgdata`: recover from Cairn's WAL archive.\nrestore_command = {}\nrecovery_end_command = 'rm -rf pg_wal/cairn-prefetch'\nrecovery_target_timeline = 'latest'\n",
        quoted(&r.restore_command)
    );
    match &r.target {
        RecoveryTarget::Latest => {}
        RecoveryTarget::Time(t) => {
            s += &format!("recovery_target_time = {}\n", quoted(t));
            s += "recovery_target_action = 'promote'\n";
        }
        RecoveryTarget::Lsn(l) => {
            s += &format!("recovery_target_lsn = {}\n", quoted(l));
            s += "recovery_target_action = 'promote'\n";
        }
    }
    s
}

/// Makes the restored `dir` a data directory that recovers as `r` says.
pub fn prepare(dir: &Path, backup: &str, r: &Recovery) -> Result<(), RepoError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |what: &Path, e: std::io::Error| RepoError::Target(format!("{}: {e}", what.display()));
    for sub in ["pg_wal", "pg_wal/archive_status"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| io(&p, e))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io(dir, e))?;
    let signal = dir.join("recovery.signal");
    std::fs::write(&signal, b"").map_err(|e| io(&signal, e))?;
    let conf = dir.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&conf)
        .map_err(|e| io(&conf, e))?;
    f.write_all(settings(backup, r).as_bytes())
        .map_err(|e| io(&conf, e))?;
    // The new files belong to whoever owns the data directory's files.
    let owner = std::fs::metadata(dir.join("PG_VERSION")).ok();
    if let Some(md) = owner {
        use std::os::unix::fs::MetadataExt;
        for p in [
            dir.to_path_buf(),
            signal,
            conf,
            dir.join("pg_wal"),
            dir.join("pg_wal/archive_status"),
        ] {
            let _ = std::os::unix::fs::chown(&p, Some(md.uid()), Some(md.gid()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(ended: &str) -> WalRange {
        WalRange {
            timeline: 1,
            start_lsn: "0/3000028".into(),
            end_lsn: "0/3000100".into(),
            start_segment: "000000010000000000000003".into(),
            started_at: "2026-12-06T15:42:53Z".into(),
            ended_at: ended.into(),
        }
    }

    #[test]
    fn a_target_time_needs_its_zone_and_a_backup_that_ended_before_it() {
        let t = RecoveryTarget::time("2026-12-06 15:50:00+00").unwrap();
        assert_eq!(t, RecoveryTarget::Time("2026-12-06T15:50:00+00:00".into()));
        assert_eq!(
            RecoveryTarget::time("2026-12-06T16:50:00+01:00").unwrap(),
            RecoveryTarget::Time("2026-12-06T16:50:00+01:00".into())
        );
        assert!(RecoveryTarget::time("2026-12-06 15:50:00")
            .unwrap_err()
            .contains("time zone"));
        assert!(reaches(&range("2026-12-06T15:45:00Z"), &t).is_ok());
        let e = reaches(&range("2026-12-06T15:55:00Z"), &t).unwrap_err();
        assert!(e.contains("older base backup"), "{e}");
    }

    #[test]
    fn an_lsn_is_two_hex_halves() {
        assert_eq!(
            RecoveryTarget::lsn("16/b374d848").unwrap(),
            RecoveryTarget::Lsn("16/B374D848".into())
        );
        for bad in ["", "16", "/1", "x/1", "123456789/1"] {
            assert!(RecoveryTarget::lsn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_settings_quote_the_command_and_name_the_target() {
        let r = Recovery {
            target: RecoveryTarget::Time("2026-12-06T15:50:00+00:00".into()),
            restore_command: "cairn wal-fetch --dataset it's %f \"%p\"".into(),
        };
        let s = settings("b1", &r);
        assert!(
            s.contains("restore_command = 'cairn wal-fetch --dataset it''s %f \"%p\"'"),
            "{s}"
        );
        assert!(s.contains("recovery_target_time = '2026-12-06T15:50:00+00:00'"));
        assert!(s.contains("recovery_target_action = 'promote'"));
        let latest = settings(
            "b1",
            &Recovery {
                target: RecoveryTarget::Latest,
                ..r
            },
        );
        assert!(!latest.contains("recovery_target_time ="));
    }
}
