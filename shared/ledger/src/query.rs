//! Read queries on the projections, for the CLI and the stages.

use cairn_events::{Outcome, Source, Stats};
use serde::Serialize;
use std::collections::HashMap;
use tokio_postgres::{Client, Row};

/// One backup as `cairn list` and `cairn show` print it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupRow {
    pub backup_id: String,
    pub dataset: String,
    pub tags: Vec<String>,
    pub status: String,
    pub requested_at: Option<String>,
    pub finished_at: Option<String>,
    pub requested_by: String,
    pub networks: Vec<String>,
    pub source: Option<Source>,
    pub stats: Option<Stats>,
    pub outcome: Option<Outcome>,
    /// Target networks a quota turned it away from, and where it went.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rerouted: Vec<cairn_events::Reroute>,
}

const COLUMNS: &str = "backup_id, dataset, tags, status,
    to_char(requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
    to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
    requested_by, networks, source::text, stats::text, outcome::text, rerouted::text";

/// How many columns `COLUMNS` selects: a query adding its own reads them
/// from here on.
const COLUMN_COUNT: usize = 12;

fn row(r: &Row) -> BackupRow {
    fn js<T: serde::de::DeserializeOwned>(r: &Row, i: usize) -> Option<T> {
        r.get::<_, Option<String>>(i)
            .and_then(|s| serde_json::from_str(&s).ok())
    }
    BackupRow {
        backup_id: r.get(0),
        dataset: r.get(1),
        tags: r.get(2),
        status: r.get(3),
        requested_at: r.get(4),
        finished_at: r.get(5),
        requested_by: r.get(6),
        networks: r.get(7),
        source: js(r, 8),
        stats: js(r, 9),
        outcome: js(r, 10),
        rerouted: js(r, 11).unwrap_or_default(),
    }
}

/// Backups, newest first, optionally of one dataset or carrying one tag.
/// Forgotten backups are left out.
pub async fn list_backups(
    c: &Client,
    dataset: Option<&str>,
    tag: Option<&str>,
) -> Result<Vec<BackupRow>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM backups
         WHERE status <> 'forgotten' AND ($1::text IS NULL OR dataset = $1) AND ($2::text IS NULL OR $2 = ANY(tags))
         ORDER BY requested_at DESC NULLS LAST, backup_id DESC"
    );
    Ok(c.query(&sql, &[&dataset, &tag])
        .await?
        .iter()
        .map(row)
        .collect())
}

/// The newest `limit` backups matching every filter given (the console's
/// list; forgotten ones left out unless asked for by status).
pub async fn backups_page(
    c: &Client,
    dataset: Option<&str>,
    tag: Option<&str>,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<BackupRow>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM backups
         WHERE ($1::text IS NULL OR dataset = $1) AND ($2::text IS NULL OR $2 = ANY(tags))
           AND (CASE WHEN $3::text IS NULL THEN status <> 'forgotten' ELSE status = $3 END)
         ORDER BY requested_at DESC NULLS LAST, backup_id DESC
         LIMIT $4"
    );
    Ok(c.query(&sql, &[&dataset, &tag, &status, &limit])
        .await?
        .iter()
        .map(row)
        .collect())
}

/// One step of a backup's way through the stages: the entries of one kind
/// the ledger recorded for it, how many, first and last.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub kind: String,
    pub count: i64,
    pub first: String,
    pub last: String,
    /// The first entry's position in the log.
    pub seq: i64,
}

/// A backup's timeline, in log order.
pub async fn timeline(c: &Client, backup_id: &str) -> Result<Vec<Step>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT kind, count(*),
                    to_char(min(recorded_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                    to_char(max(recorded_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                    min(seq)
             FROM ledger_entries WHERE backup_id = $1
             GROUP BY kind ORDER BY min(seq)",
            &[&backup_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Step {
            kind: r.get(0),
            count: r.get(1),
            first: r.get(2),
            last: r.get(3),
            seq: r.get(4),
        })
        .collect())
}

pub async fn backup(
    c: &Client,
    backup_id: &str,
) -> Result<Option<BackupRow>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM backups WHERE backup_id = $1");
    Ok(c.query_opt(&sql, &[&backup_id]).await?.as_ref().map(row))
}

/// The recorded digest (SHA-256 hex, length) of each of `paths` known so far.
pub async fn digests(
    c: &Client,
    paths: &[String],
) -> Result<HashMap<String, (String, u64)>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT path, sha256, len FROM object_digests WHERE path = ANY($1)",
            &[&paths],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                (r.get::<_, String>(1), r.get::<_, i64>(2) as u64),
            )
        })
        .collect())
}

/// The shard files sealing made of each erasure-coded pack among `paths`
/// (asked 10,000 at a time): path → (k, each shard's SHA-256 and length,
/// by index). A pack stored whole has none.
pub async fn shard_digests(
    c: &Client,
    paths: &[String],
) -> Result<HashMap<String, ShardFiles>, tokio_postgres::Error> {
    let mut rows = Vec::new();
    for part in paths.chunks(10_000) {
        rows.extend(
            c.query(
                "SELECT path, shard, k, sha256, len FROM shard_digests WHERE path = ANY($1)
                 ORDER BY path, shard",
                &[&part],
            )
            .await?,
        );
    }
    let mut out: HashMap<String, ShardFiles> = HashMap::new();
    for r in &rows {
        let e = out.entry(r.get::<_, String>(0)).or_default();
        e.k = r.get::<_, i16>(2) as u32;
        let index = r.get::<_, i16>(1) as usize;
        if e.files.len() <= index {
            e.files.resize(index + 1, (String::new(), 0));
        }
        e.files[index] = (r.get::<_, String>(3), r.get::<_, i64>(4) as u64);
    }
    Ok(out)
}

/// An erasure-coded pack's shard files, as the ledger recorded them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardFiles {
    pub k: u32,
    /// (SHA-256 hex, length) by shard index.
    pub files: Vec<(String, u64)>,
}

/// Which of `ids` (chunk or pack ids) the ledger records as stored on
/// `network` (from `object.stored`, less what was deleted since).
pub async fn stored_on(
    c: &Client,
    network: &str,
    ids: &[Vec<u8>],
) -> Result<std::collections::HashSet<Vec<u8>>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT chunk_id FROM chunk_copies WHERE network = $1 AND chunk_id = ANY($2)",
            &[&network, &ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, Vec<u8>>(0)).collect())
}

/// One ledger entry as `cairn audit log` prints it (the entry's bytes stay
/// in the database; `cairn audit prove` hands them out with a proof).
#[derive(Debug, Clone, Serialize)]
pub struct EntryRow {
    pub seq: i64,
    pub recorded_at: String,
    pub kind: String,
    pub backup_id: String,
    pub dataset: Option<String>,
    pub event_id: String,
    /// RFC 6962 leaf hash (hex).
    pub leaf_hash: String,
}

/// What `cairn audit log` filters on (all optional).
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    /// RFC 3339 time: entries recorded at or after it.
    pub since: Option<String>,
    pub kind: Option<String>,
    pub dataset: Option<String>,
    pub backup_id: Option<String>,
    pub limit: Option<i64>,
}

/// Ledger entries in log order, filtered.
pub async fn entries(c: &Client, f: &EntryFilter) -> Result<Vec<EntryRow>, tokio_postgres::Error> {
    let since = f.since.clone().unwrap_or_default();
    let rows = c
        .query(
            "SELECT e.seq,
                    to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                    e.kind, e.backup_id, b.dataset, e.event_id, encode(e.leaf_hash, 'hex')
             FROM ledger_entries e LEFT JOIN backups b ON b.backup_id = e.backup_id
             WHERE ($1 = '' OR e.recorded_at >= $1::timestamptz)
               AND ($2::text IS NULL OR e.kind = $2)
               AND ($3::text IS NULL OR b.dataset = $3)
               AND ($4::text IS NULL OR e.backup_id = $4)
             ORDER BY e.seq
             LIMIT $5",
            &[
                &since,
                &f.kind,
                &f.dataset,
                &f.backup_id,
                &f.limit.unwrap_or(i64::MAX),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| EntryRow {
            seq: r.get(0),
            recorded_at: r.get(1),
            kind: r.get(2),
            backup_id: r.get(3),
            dataset: r.get(4),
            event_id: r.get(5),
            leaf_hash: r.get(6),
        })
        .collect())
}

/// A backup the ledger shows unfinished (requested, running or being
/// verified): it may have deduplicated against any chunk the repository
/// holds, and its chunk list may not be on the networks yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unfinished {
    pub backup_id: String,
    pub dataset: String,
    pub status: String,
    /// Its target networks (empty: not resolved yet, so every network).
    pub networks: Vec<String>,
    /// Seconds since the ledger last recorded anything of it.
    pub idle_secs: u64,
}

/// How much history the ledger holds: (log entries, backups). `cairn
/// recover rebuild` fills only a ledger that holds neither. Requests the
/// services recorded (`network.traffic`) are no history: services started
/// on a new machine record them before the repository is recorded again.
pub async fn recorded(c: &Client) -> Result<(i64, i64), tokio_postgres::Error> {
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM ledger_entries WHERE kind <> 'network.traffic'),
                    (SELECT count(*) FROM backups)",
            &[],
        )
        .await?;
    Ok((r.get(0), r.get(1)))
}

/// The log's id if it was begun by `cairn recover rebuild` (its first entry
/// is `ledger.recovered`, but for requests the services recorded before
/// it, `network.traffic`): the first 16 hex digits of that entry's leaf
/// hash. `None` for a repository's first log.
pub async fn log_id(
    c: &impl tokio_postgres::GenericClient,
) -> Result<Option<String>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "SELECT kind, leaf_hash FROM ledger_entries WHERE kind <> 'network.traffic'
             ORDER BY seq LIMIT 1",
            &[],
        )
        .await?;
    Ok(row.and_then(|r| {
        let kind: String = r.get(0);
        let leaf: Vec<u8> = r.get(1);
        (kind == "ledger.recovered").then(|| hex::encode(&leaf[..8]))
    }))
}

/// Every unfinished backup, oldest request first.
pub async fn unfinished_backups(c: &Client) -> Result<Vec<Unfinished>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT b.backup_id, b.dataset, b.status, b.networks,
                    COALESCE(extract(epoch FROM now() - (SELECT max(e.recorded_at) FROM ledger_entries e
                                                         WHERE e.backup_id = b.backup_id)), 0)::bigint
             FROM backups b
             WHERE b.status IN ('requested', 'running', 'verifying')
             ORDER BY b.requested_at NULLS LAST, b.backup_id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Unfinished {
            backup_id: r.get(0),
            dataset: r.get(1),
            status: r.get(2),
            networks: r.get(3),
            idle_secs: r.get::<_, i64>(4).max(0) as u64,
        })
        .collect())
}

/// A legal hold as the ledger shows it (`holds`, from `backup.held`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldRow {
    pub backup_id: String,
    pub reason: String,
    pub held_by: String,
    pub held_at: String,
}

const HOLD_COLUMNS: &str = "backup_id, reason, held_by,
    to_char(held_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

fn hold_row(r: &Row) -> HoldRow {
    HoldRow {
        backup_id: r.get(0),
        reason: r.get(1),
        held_by: r.get(2),
        held_at: r.get(3),
    }
}

/// Every backup under legal hold, oldest hold first.
pub async fn holds(c: &Client) -> Result<Vec<HoldRow>, tokio_postgres::Error> {
    let sql = format!("SELECT {HOLD_COLUMNS} FROM holds ORDER BY held_at, backup_id");
    Ok(c.query(&sql, &[]).await?.iter().map(hold_row).collect())
}

/// The hold on `backup_id`, if it is held.
pub async fn hold(c: &Client, backup_id: &str) -> Result<Option<HoldRow>, tokio_postgres::Error> {
    let sql = format!("SELECT {HOLD_COLUMNS} FROM holds WHERE backup_id = $1");
    Ok(c.query_opt(&sql, &[&backup_id])
        .await?
        .as_ref()
        .map(hold_row))
}

/// A restore drill as the ledger shows it (`drills`, from `drill.completed`
/// and `drill.failed`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillRow {
    pub backup_id: String,
    pub dataset: String,
    pub ok: bool,
    pub pick: String,
    pub target: String,
    pub bytes: u64,
    pub files: u64,
    pub chunks: u64,
    pub duration_ms: u64,
    pub started_at: String,
    pub finished_at: String,
    pub reason: Option<String>,
    pub by: String,
    /// Seconds since it finished, by the database's clock.
    pub age_secs: u64,
}

/// A dataset's drills: the latest, and the latest that succeeded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetDrills {
    pub dataset: String,
    pub latest: DrillRow,
    pub last_success: Option<DrillRow>,
}

const DRILL_COLUMNS: &str =
    "backup_id, dataset, ok, pick, target, bytes, files, chunks, duration_ms,
    to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
    to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
    reason, drilled_by, GREATEST(extract(epoch FROM now() - finished_at), 0)::bigint";

fn drill_row(r: &Row) -> DrillRow {
    let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
    DrillRow {
        backup_id: r.get(0),
        dataset: r.get(1),
        ok: r.get(2),
        pick: r.get(3),
        target: r.get(4),
        bytes: n(5),
        files: n(6),
        chunks: n(7),
        duration_ms: n(8),
        started_at: r.get(9),
        finished_at: r.get(10),
        reason: r.get(11),
        by: r.get(12),
        age_secs: n(13),
    }
}

/// Per dataset (by name), its latest drill and its latest successful one.
pub async fn drills(c: &Client) -> Result<Vec<DatasetDrills>, tokio_postgres::Error> {
    let latest = format!(
        "SELECT DISTINCT ON (dataset) {DRILL_COLUMNS} FROM drills
         ORDER BY dataset, finished_at DESC, event_id DESC"
    );
    let ok = format!(
        "SELECT DISTINCT ON (dataset) {DRILL_COLUMNS} FROM drills WHERE ok
         ORDER BY dataset, finished_at DESC, event_id DESC"
    );
    let mut good: HashMap<String, DrillRow> = c
        .query(&ok, &[])
        .await?
        .iter()
        .map(|r| {
            let d = drill_row(r);
            (d.dataset.clone(), d)
        })
        .collect();
    Ok(c.query(&latest, &[])
        .await?
        .iter()
        .map(|r| {
            let latest = drill_row(r);
            DatasetDrills {
                dataset: latest.dataset.clone(),
                last_success: good.remove(&latest.dataset),
                latest,
            }
        })
        .collect())
}

/// The newest successful drill, of `dataset` or of any.
pub async fn last_successful_drill(
    c: &Client,
    dataset: Option<&str>,
) -> Result<Option<DrillRow>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {DRILL_COLUMNS} FROM drills WHERE ok AND ($1::text IS NULL OR dataset = $1)
         ORDER BY finished_at DESC, event_id DESC LIMIT 1"
    );
    Ok(c.query_opt(&sql, &[&dataset])
        .await?
        .as_ref()
        .map(drill_row))
}

/// A schedule added at run time (`schedules`, from `schedule.added`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddedSchedule {
    pub schedule: cairn_events::Schedule,
    pub added_by: String,
    pub added_at: String,
}

/// Every schedule added at run time, by dataset and expression. A row
/// that no longer reads as a schedule (written by a newer Cairn) is left
/// out with a warning rather than failing every schedule.
pub async fn added_schedules(c: &Client) -> Result<Vec<AddedSchedule>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT spec::text, added_by,
                    to_char(added_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM schedules ORDER BY dataset, cron",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let spec: String = r.get(0);
            match serde_json::from_str(&spec) {
                Ok(schedule) => Some(AddedSchedule {
                    schedule,
                    added_by: r.get(1),
                    added_at: r.get(2),
                }),
                Err(e) => {
                    tracing::warn!(error = %e, spec, "a schedule in the ledger does not read as one; ignored");
                    None
                }
            }
        })
        .collect())
}

/// A dataset key as the ledger records it (its public half only).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DatasetKeyRow {
    pub fingerprint: String,
    pub public_key: String,
    pub mac: String,
}

/// The live (not shredded) keys of dataset `tag`, oldest first.
pub async fn dataset_keys(
    c: &Client,
    tag: &str,
) -> Result<Vec<DatasetKeyRow>, tokio_postgres::Error> {
    Ok(c.query(
        "SELECT fingerprint, public_key, mac FROM dataset_keys
             WHERE tag = $1 AND shredded_at IS NULL ORDER BY created_at, fingerprint",
        &[&tag],
    )
    .await?
    .iter()
    .map(|r| DatasetKeyRow {
        fingerprint: r.get(0),
        public_key: r.get(1),
        mac: r.get(2),
    })
    .collect())
}

/// The backups of `dataset` the catalogue still shows (neither forgotten
/// nor shredded), with their status.
pub async fn dataset_backups(
    c: &Client,
    dataset: &str,
) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    Ok(c.query(
        "SELECT backup_id, status FROM backups
             WHERE dataset = $1 AND status NOT IN ('forgotten', 'shredded') ORDER BY backup_id",
        &[&dataset],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

/// One archived WAL file (a backup whose source is `wal`).
#[derive(Debug, Clone, Serialize)]
pub struct WalFileRow {
    pub backup_id: String,
    pub name: String,
    pub sha256: String,
    pub status: String,
}

fn wal_row(r: &Row) -> WalFileRow {
    WalFileRow {
        backup_id: r.get(0),
        name: r.get::<_, Option<String>>(1).unwrap_or_default(),
        sha256: r.get::<_, Option<String>>(2).unwrap_or_default(),
        status: r.get(3),
    }
}

/// The backups of WAL file `name` of `dataset` that may hold it (neither
/// failed, forgotten nor shredded), completed ones first, newest first.
pub async fn wal_file(
    c: &Client,
    dataset: &str,
    name: &str,
) -> Result<Vec<WalFileRow>, tokio_postgres::Error> {
    Ok(c.query(
        "SELECT backup_id, source->>'name', source->>'sha256', status FROM backups
             WHERE dataset = $1 AND source->>'type' = 'wal' AND source->>'name' = $2
               AND status NOT IN ('failed', 'forgotten', 'shredded')
             ORDER BY (status = 'completed') DESC, (status = 'degraded') DESC, requested_at DESC",
        &[&dataset, &name],
    )
    .await?
    .iter()
    .map(wal_row)
    .collect())
}

/// The PostgreSQL base backups of `dataset` the catalogue still shows,
/// newest first, with the WAL each needs (none for one still running).
pub async fn base_backups(
    c: &Client,
    dataset: &str,
) -> Result<Vec<(BackupRow, Option<cairn_events::WalRange>)>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS}, wal::text FROM backups
         WHERE dataset = $1 AND source->>'type' = 'postgres_base'
           AND status NOT IN ('forgotten', 'shredded')
         ORDER BY requested_at DESC NULLS LAST, backup_id DESC"
    );
    Ok(c.query(&sql, &[&dataset])
        .await?
        .iter()
        .map(|r| {
            let wal = r
                .get::<_, Option<String>>(COLUMN_COUNT)
                .and_then(|s| serde_json::from_str(&s).ok());
            (row(r), wal)
        })
        .collect())
}

/// The next `limit` WAL segments of `dataset` archived after segment `name`
/// on its timeline (names sort in WAL order), each with the newest backup
/// holding it: what a recovery asks for next.
pub async fn wal_after(
    c: &Client,
    dataset: &str,
    name: &str,
    limit: i64,
) -> Result<Vec<WalFileRow>, tokio_postgres::Error> {
    let timeline = name.get(..8).unwrap_or("");
    Ok(c.query(
        "SELECT DISTINCT ON (source->>'name') backup_id, source->>'name', source->>'sha256', status
             FROM backups
             WHERE dataset = $1 AND source->>'type' = 'wal' AND status IN ('completed', 'degraded')
               AND source->>'name' > $2 AND length(source->>'name') = 24
               AND left(source->>'name', 8) = $3
             ORDER BY source->>'name', (status = 'completed') DESC, requested_at DESC
             LIMIT $4",
        &[&dataset, &name, &timeline, &limit],
    )
    .await?
    .iter()
    .map(wal_row)
    .collect())
}

/// Backups finished in one span of time, and what they read and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finished {
    /// The span's start (seconds since the epoch).
    pub at: i64,
    pub backups: i64,
    pub bytes_read: i64,
    pub bytes_stored: i64,
}

/// What was backed up over the last `window_secs`, in spans of
/// `bucket_secs` (spans with nothing finished are left out): the ops
/// console's throughput over time.
pub async fn finished_over_time(
    c: &Client,
    window_secs: i64,
    bucket_secs: i64,
) -> Result<Vec<Finished>, tokio_postgres::Error> {
    let bucket = bucket_secs.max(1) as f64;
    let rows = c
        .query(
            "SELECT (floor(extract(epoch FROM finished_at)::float8 / $1) * $1)::bigint AS at,
                    count(*),
                    coalesce(sum((stats->>'bytes_read')::bigint), 0)::bigint,
                    coalesce(sum((stats->>'bytes_stored')::bigint), 0)::bigint
             FROM backups
             WHERE finished_at >= now() - make_interval(secs => $2::float8)
               AND status <> 'forgotten'
             GROUP BY 1 ORDER BY 1",
            &[&bucket, &(window_secs.max(1) as f64)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Finished {
            at: r.get(0),
            backups: r.get(1),
            bytes_read: r.get(2),
            bytes_stored: r.get(3),
        })
        .collect())
}

/// One dataset: how many backups it keeps and its newest.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetRow {
    pub dataset: String,
    pub backups: i64,
    pub newest_id: String,
    pub newest_status: String,
    pub newest_at: Option<String>,
    /// When its newest completed backup finished.
    pub last_completed_at: Option<String>,
}

/// Every dataset with a backup not forgotten, by name.
pub async fn datasets(c: &Client) -> Result<Vec<DatasetRow>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT n.dataset, n.backups, n.backup_id, n.status,
                    to_char(n.requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    to_char(d.done AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM (SELECT DISTINCT ON (dataset) dataset, backup_id, status, requested_at,
                          count(*) OVER (PARTITION BY dataset) AS backups
                   FROM backups WHERE status <> 'forgotten'
                   ORDER BY dataset, requested_at DESC NULLS LAST, backup_id DESC) n
             LEFT JOIN (SELECT dataset, max(finished_at) AS done FROM backups
                        WHERE status = 'completed' GROUP BY dataset) d USING (dataset)
             ORDER BY n.dataset",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DatasetRow {
            dataset: r.get(0),
            backups: r.get(1),
            newest_id: r.get(2),
            newest_status: r.get(3),
            newest_at: r.get(4),
            last_completed_at: r.get(5),
        })
        .collect())
}
