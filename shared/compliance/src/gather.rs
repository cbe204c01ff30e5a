//! The facts rules are judged on, read from the ledger: each backup's own
//! entries (decoded, so that every finding can cite the entry it rests
//! on), its dataset's holds, shred and drills, and the repository's key
//! split and checkpoints. Nothing here judges.

use crate::evaluate::{BackupFacts, Cited, DatasetFacts, RepoFacts, Split};
use crate::network::NetworkFacts;
use cairn_events::{decode, Envelope, Event, ObjectKey};
use chrono::{DateTime, Utc};
use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("ledger entry {seq}: {detail}")]
    Entry { seq: u64, detail: String },
    #[error("backup {0} is not in the ledger (`cairn list` shows the backups)")]
    Unknown(String),
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// One decoded entry.
struct Logged {
    seq: u64,
    env: Envelope,
}

impl Logged {
    fn cited(&self) -> Cited {
        Cited {
            seq: self.seq,
            kind: self.env.event.kind().to_string(),
            at: time(&self.env.at).unwrap_or(DateTime::UNIX_EPOCH),
        }
    }
}

async fn entries(pg: &Client, sql: &str, arg: &str) -> Result<Vec<Logged>, GatherError> {
    let mut out = Vec::new();
    for r in pg.query(sql, &[&arg]).await? {
        let seq = r.get::<_, i64>(0) as u64;
        let bytes: Vec<u8> = r.get(1);
        let env = decode::<Envelope>(&bytes, "ledger entry").map_err(|e| GatherError::Entry {
            seq,
            detail: e.to_string(),
        })?;
        out.push(Logged { seq, env });
    }
    Ok(out)
}

/// The backups to judge: one, a dataset's, or all (forgotten ones too:
/// retention rules judge them).
pub async fn backup_ids(pg: &Client, dataset: Option<&str>) -> Result<Vec<String>, GatherError> {
    Ok(pg
        .query(
            "SELECT backup_id FROM backups WHERE ($1::text IS NULL OR dataset = $1)
             ORDER BY requested_at NULLS LAST, backup_id",
            &[&dataset],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// What the ledger says of backup `id`.
pub async fn backup(pg: &Client, id: &str) -> Result<BackupFacts, GatherError> {
    let row = pg
        .query_opt(
            "SELECT dataset, tags, status, networks,
                    to_char(requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM backups WHERE backup_id = $1",
            &[&id],
        )
        .await?
        .ok_or_else(|| GatherError::Unknown(id.to_string()))?;
    let logged = entries(
        pg,
        "SELECT seq, entry FROM ledger_entries WHERE backup_id = $1 ORDER BY seq",
        id,
    )
    .await?;
    let mut f = BackupFacts {
        backup_id: id.to_string(),
        dataset: row.get(0),
        tags: row.get(1),
        status: row.get(2),
        requested_at: row
            .get::<_, Option<String>>(4)
            .as_deref()
            .and_then(time)
            .unwrap_or(DateTime::UNIX_EPOCH),
        targets: row.get(3),
        verified: Vec::new(),
        erasure: None,
        reasons: Vec::new(),
        outcome: None,
        sealed: None,
        ingested: None,
        dataset_key: None,
        forgotten: None,
        held: None,
        last_seq: logged.last().map(|l| l.seq).unwrap_or(0),
        retain_until: None,
        locked_until: Default::default(),
        legal_hold_on: Vec::new(),
        migrated: None,
        left: None,
    };
    for l in &logged {
        match &l.env.event {
            Event::BackupRequested(_) => {
                if let Some(t) = time(&l.env.at) {
                    f.requested_at = t;
                }
            }
            Event::BackupIngested(i) => {
                f.ingested = Some(l.cited());
                f.dataset_key = i.dataset_key.as_ref().map(|k| k.to_string());
                f.retain_until = i.retain_until.as_deref().and_then(time);
                f.erasure = i.redundancy.erasure();
                if f.targets.is_empty() {
                    f.targets = i.networks.clone();
                }
            }
            Event::ObjectSealed(d) if matches!(d.object, ObjectKey::Manifest { .. }) => {
                f.sealed = Some(l.cited());
            }
            Event::BackupCompleted(o) | Event::BackupDegraded(o) | Event::BackupFailed(o) => {
                f.outcome = Some(l.cited());
                f.reasons = o.reasons.clone();
                f.locked_until = o
                    .networks
                    .iter()
                    .filter_map(|n| Some((n.network.clone(), time(n.locked_until.as_deref()?)?)))
                    .collect();
                f.verified = o
                    .networks
                    .iter()
                    .filter(|n| n.ok)
                    .map(|n| n.network.clone())
                    .collect();
            }
            Event::BackupForgotten(_) => f.forgotten = Some(l.cited()),
            Event::BackupHeld(h) => f.held = Some((h.reason.clone(), l.cited())),
            Event::BackupReleased(_) => f.held = None,
            Event::BackupMigrated(m) => {
                if !f.verified.contains(&m.to) {
                    f.verified.push(m.to.clone());
                }
                if let Some(t) = m.locked_until.as_deref().and_then(time) {
                    f.locked_until.insert(m.to.clone(), t);
                }
                f.migrated = Some(l.cited());
            }
            // Recorded once `to` holds every object intact, read back.
            Event::BackupMoved(m) => {
                for list in [&mut f.targets, &mut f.verified] {
                    for n in list.iter_mut().filter(|n| **n == m.from) {
                        n.clone_from(&m.to);
                    }
                }
                f.locked_until.remove(&m.from);
            }
            Event::BackupLeft(left) => {
                f.verified.retain(|n| !left.networks.contains(n));
                f.left = Some(l.cited());
            }
            Event::BackupLocked(k) => {
                for r in &k.networks {
                    f.legal_hold_on.retain(|n| n != &r.network);
                    if k.legal_hold && r.failed == 0 {
                        f.legal_hold_on.push(r.network.clone());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(f)
}

/// What the ledger says of dataset `name` (`shreddable` is its
/// configuration's); drills count only up to `as_of`.
pub async fn dataset(
    pg: &Client,
    name: &str,
    shreddable: bool,
    as_of: DateTime<Utc>,
) -> Result<DatasetFacts, GatherError> {
    let holds = pg
        .query(
            "SELECT h.backup_id FROM holds h JOIN backups b USING (backup_id)
             WHERE b.dataset = $1 ORDER BY h.backup_id",
            &[&name],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let shredded = entries(
        pg,
        "SELECT seq, entry FROM ledger_entries WHERE kind = 'dataset.shredded' AND backup_id = $1 ORDER BY seq",
        "repo",
    )
    .await?
    .into_iter()
    .rfind(|l| matches!(&l.env.event, Event::DatasetShredded(s) if s.dataset == name))
    .map(|l| l.cited());
    let drill = pg
        .query_opt(
            "SELECT d.backup_id, e.seq, e.entry FROM drills d
             JOIN ledger_entries e ON e.event_id = d.event_id
             WHERE d.ok AND d.dataset = $1 AND d.finished_at <= $2::text::timestamptz
             ORDER BY d.finished_at DESC, d.event_id DESC LIMIT 1",
            &[&name, &as_of.to_rfc3339()],
        )
        .await?;
    let last_drill = match drill {
        None => None,
        Some(r) => {
            let seq = r.get::<_, i64>(1) as u64;
            let env = decode::<Envelope>(&r.get::<_, Vec<u8>>(2), "ledger entry").map_err(|e| {
                GatherError::Entry {
                    seq,
                    detail: e.to_string(),
                }
            })?;
            Some((r.get(0), Logged { seq, env }.cited()))
        }
    };
    Ok(DatasetFacts {
        shreddable,
        holds,
        shredded,
        last_drill,
        kept_by_rule: Vec::new(),
    })
}

/// What the ledger says of the repository: its newest key split (and a
/// rotation after it), its newest checkpoints. `cosigned` is the largest
/// checkpoint a witness cosigned (`cairn_ledger::prove::cosigned`).
pub async fn repo(
    pg: &Client,
    format: u32,
    networks: Vec<NetworkFacts>,
    cosigned: Option<u64>,
) -> Result<RepoFacts, GatherError> {
    let keys = entries(
        pg,
        "SELECT seq, entry FROM ledger_entries
         WHERE backup_id = $1 AND kind IN ('key.split', 'key.rotated') ORDER BY seq",
        "repo",
    )
    .await?;
    let mut split = None;
    let mut rotated_after_split = None;
    for l in &keys {
        match &l.env.event {
            Event::KeySplit(s) => {
                split = Some(Split {
                    threshold: s.threshold,
                    count: s.count,
                    entry: l.cited(),
                });
                rotated_after_split = None;
            }
            Event::KeyRotated(_) if split.is_some() => rotated_after_split = Some(l.cited()),
            _ => {}
        }
    }
    let checkpoint = pg
        .query_one("SELECT max(size) FROM ledger_checkpoints", &[])
        .await?
        .get::<_, Option<i64>>(0)
        .map(|s| s as u64);
    Ok(RepoFacts {
        format,
        split,
        rotated_after_split,
        networks,
        checkpoint,
        cosigned,
    })
}
