//! Which archived WAL files of a PostgreSQL dataset retention keeps: those
//! the kept base backups need for point-in-time recovery (every file from
//! the oldest kept base backup's start segment on), timeline history files
//! (tiny, and needed to follow a timeline), and any file under legal hold
//! or not finished. WAL is dropped only when the dataset's base backups say
//! for certain that nothing kept needs it: with no kept base backup, or one
//! whose WAL range is unknown (still running, or recorded before ranges
//! were), every file is kept.

use crate::policy::{Candidate, Decision, Status};

/// A base backup of the dataset, as the WAL decision sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Base {
    pub backup_id: String,
    /// Whether the dataset's policy keeps it.
    pub kept: bool,
    /// The first segment it needs (`WalRange::start_segment`); none if unknown.
    pub start_segment: Option<String>,
}

/// Where a WAL file sits in the WAL stream, whatever its timeline: the log
/// and segment numbers of a segment name (or of the segment a `.backup` or
/// `.partial` file belongs to); none for a history file.
fn position(name: &str) -> Option<&str> {
    let seg = name.get(..24)?;
    if !seg.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(&seg[8..])
}

/// Decides each archived WAL file (`wal`, each with its file name) of a
/// dataset whose base backups are `bases`.
pub fn decide_wal(bases: &[Base], wal: &[(Candidate, String)]) -> Vec<Decision> {
    let kept: Vec<&Base> = bases.iter().filter(|b| b.kept).collect();
    let unknown = kept.iter().find(|b| b.start_segment.is_none());
    let oldest = kept
        .iter()
        .filter_map(|b| {
            b.start_segment
                .as_deref()
                .and_then(|s| Some((position(s)?, s, &b.backup_id)))
        })
        .min();
    wal.iter()
        .map(|(c, name)| {
            let mut reasons = crate::policy::standing(c);
            if c.status != Status::Failed {
                match (position(name), unknown, oldest) {
                    (None, _, _) => reasons.push("timeline history".into()),
                    (_, Some(b), _) => reasons.push(format!(
                        "base backup {} is kept and its WAL range is not known yet",
                        b.backup_id
                    )),
                    (_, None, None) => {
                        reasons.push("no kept base backup says which WAL it needs".into())
                    }
                    (Some(p), None, Some((first, seg, id))) if p >= first => {
                        reasons.push(format!("needed by base backup {id} (from {seg})"))
                    }
                    _ => {}
                }
            }
            let keep = !reasons.is_empty();
            if !keep {
                reasons.push(match (c.status, oldest) {
                    (Status::Failed, _) => "failed".into(),
                    (_, Some((_, seg, id))) => {
                        format!("older than the oldest kept base backup's WAL ({id}, from {seg})")
                    }
                    _ => "no rule keeps it".into(),
                });
            }
            Decision {
                backup_id: c.backup_id.clone(),
                time: c.time,
                status: c.status,
                keep,
                reasons,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn wal(id: &str, name: &str, status: Status) -> (Candidate, String) {
        (
            Candidate {
                backup_id: id.into(),
                tags: vec!["wal".into()],
                status,
                time: Utc.with_ymd_and_hms(2026, 12, 6, 0, 0, 0).unwrap(),
                hold: None,
                floor: None,
            },
            name.into(),
        )
    }

    fn base(id: &str, kept: bool, start: Option<&str>) -> Base {
        Base {
            backup_id: id.into(),
            kept,
            start_segment: start.map(str::to_string),
        }
    }

    fn kept(d: &[Decision]) -> Vec<&str> {
        d.iter()
            .filter(|d| d.keep)
            .map(|d| d.backup_id.as_str())
            .collect()
    }

    fn files() -> Vec<(Candidate, String)> {
        vec![
            wal("w1", "000000010000000000000001", Status::Completed),
            wal("w2", "000000010000000000000002", Status::Completed),
            wal(
                "w2b",
                "000000010000000000000002.00000028.backup",
                Status::Completed,
            ),
            wal("w3", "000000010000000000000003", Status::Completed),
            wal("h2", "00000002.history", Status::Completed),
            wal("w4", "000000020000000000000004", Status::Completed),
            wal("w5", "000000020000000000000005", Status::Unfinished),
        ]
    }

    #[test]
    fn wal_older_than_the_oldest_kept_base_backup_goes() {
        let bases = [
            base("old", false, Some("000000010000000000000001")),
            base("mid", true, Some("000000010000000000000003")),
            base("new", true, Some("000000020000000000000005")),
        ];
        let d = decide_wal(&bases, &files());
        assert_eq!(kept(&d), vec!["w3", "h2", "w4", "w5"]);
        let w1 = d.iter().find(|d| d.backup_id == "w1").unwrap();
        assert!(
            w1.reasons[0].contains("older than the oldest kept base backup's WAL (mid"),
            "{:?}",
            w1.reasons
        );
        let w4 = d.iter().find(|d| d.backup_id == "w4").unwrap();
        assert!(
            w4.reasons[0].contains("needed by base backup mid"),
            "{:?}",
            w4.reasons
        );
    }

    #[test]
    fn in_doubt_every_file_stays() {
        // No kept base backup at all.
        let d = decide_wal(
            &[base("old", false, Some("000000010000000000000003"))],
            &files(),
        );
        assert_eq!(kept(&d).len(), files().len());
        // A kept base backup whose range is not known (still running).
        let d = decide_wal(
            &[
                base("mid", true, Some("000000010000000000000003")),
                base("running", true, None),
            ],
            &files(),
        );
        assert_eq!(kept(&d).len(), files().len());
    }

    #[test]
    fn a_held_file_stays_and_a_failed_one_goes() {
        let mut f = files();
        f[0].0.hold = Some("audit".into());
        f.push(wal("bad", "000000020000000000000009", Status::Failed));
        let d = decide_wal(&[base("mid", true, Some("000000010000000000000003"))], &f);
        let k = kept(&d);
        assert!(
            k.contains(&"w1") && !k.contains(&"w2") && !k.contains(&"bad"),
            "{k:?}"
        );
        assert_eq!(
            d.iter().find(|d| d.backup_id == "bad").unwrap().reasons,
            vec!["failed"]
        );
    }
}
