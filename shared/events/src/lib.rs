//! The one definition of everything Cairn puts on the bus.
//!
//! * [`Envelope`] wraps every state-change event (stream `EVENTS`): schema
//!   version, a deterministic event id, the stage that emitted it, the backup it
//!   belongs to and the typed [`Event`] itself.
//! * [`PlainChunk`] and [`SealedObject`] carry data between stages (a
//!   core-NATS request to encrypt, answered by an [`Answer`], and the
//!   stream `SEALED`); they are transport, not history, and never reach the
//!   ledger themselves (the `object.sealed` / `object.stored` events do).
//! * [`subjects`] names every subject, stream and consumer.
//!
//! Everything is MessagePack with named fields (`rmp_serde::to_vec_named`), so
//! a consumer written in another language can read it with the JSON schema in
//! `schemas/events.schema.json` (checked against these types by a test).

pub mod codec;
pub mod ids;
pub mod stage;
pub mod subjects;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use codec::{decode, decode_reply, encode, DecodeError};
pub use ids::{BackupId, ChunkId, EventId, KeyId, PackId};
pub use stage::{Stage, UnknownStage};

/// Version of every type in this crate. A reader refuses a higher major
/// version with a clear error instead of misreading it.
pub const SCHEMA_VERSION: u16 = 1;

/// Every state-change event, as published on `<prefix>.evt.<kind>.<backup>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    /// Schema version of this envelope and its event.
    pub schema: u16,
    /// Deterministic id (derived from kind and content): a redelivered or
    /// re-emitted event carries the same id, so the ledger records it once.
    pub id: EventId,
    /// RFC 3339 time at which the event was emitted.
    pub at: String,
    /// Stage (or client) that emitted the event: `ingest`, `encrypt`,
    /// `store:<network>`, `verify`, `ledger`, `retention`, `cli`, ...
    pub source: String,
    /// The backup this event belongs to (`repo` for repository-wide events).
    pub backup_id: BackupId,
    /// The event itself.
    pub event: Event,
}

/// The typed events. `kind` is the serialized tag and the subject token pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind")]
pub enum Event {
    /// A backup was asked for (by the CLI or a governance factory).
    #[serde(rename = "backup.requested")]
    BackupRequested(BackupRequest),
    /// An ingest worker took the request and started reading the source.
    /// `run` names this run of the backup ([`Run`]): a backup whose ingest
    /// was taken over starts again as a new run, and the objects and
    /// `backup.ingested` of an earlier run no longer count.
    #[serde(rename = "backup.started")]
    BackupStarted {
        worker: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<Run>,
    },
    /// Ingest read the whole source; every new chunk has been handed on.
    #[serde(rename = "backup.ingested")]
    BackupIngested(Ingested),
    /// Encrypt sealed an object (chunk or manifest); digests, never payloads.
    #[serde(rename = "object.sealed")]
    ObjectSealed(ObjectDigest),
    /// A store worker holds an object on its network.
    #[serde(rename = "object.stored")]
    ObjectStored(Stored),
    /// Every object is on every target network and hash-correct.
    #[serde(rename = "backup.completed")]
    BackupCompleted(Outcome),
    /// Stored and verified on some but not all target networks.
    #[serde(rename = "backup.degraded")]
    BackupDegraded(Outcome),
    /// The backup cannot be restored from any network, or ingest failed.
    #[serde(rename = "backup.failed")]
    BackupFailed(Outcome),
    /// A backup was restored (recorded when the broker is reachable).
    #[serde(rename = "backup.restored")]
    BackupRestored(Restored),
    /// Someone asked to forget a backup.
    #[serde(rename = "forget.requested")]
    ForgetRequested { requested_by: String },
    /// A backup's manifest and chunk list are gone from every network that
    /// can delete: it is out of the catalogue. Its chunks stay until the
    /// collector finds nothing references them.
    #[serde(rename = "backup.forgotten")]
    BackupForgotten(Forgotten),
    /// Retention refused to forget a backup and deleted nothing: it is under
    /// legal hold, or still being written.
    #[serde(rename = "forget.refused")]
    ForgetRefused { reason: String },
    /// A backup was put under legal hold: no policy or command deletes it
    /// until it is released.
    #[serde(rename = "backup.held")]
    BackupHeld(Hold),
    /// A legal hold was lifted.
    #[serde(rename = "backup.released")]
    BackupReleased(Hold),
    /// A legal hold placed on (or lifted from) every object of a backup on
    /// the networks that lock objects (S3 Object Lock), after `backup.held`
    /// (or `backup.released`).
    #[serde(rename = "backup.locked")]
    BackupLocked(Locked),
    /// A backup copied to the archive network its compliance profile names
    /// (permanent or object-locked) and found whole there: it now counts as
    /// held there.
    #[serde(rename = "backup.migrated")]
    BackupMigrated(Migrated),
    /// A migrated backup leaves its regular networks: once this is
    /// recorded, its manifest, chunk list and catalogue entry are deleted
    /// there (the collector later frees the chunks no other backup uses).
    /// Only ever after `backup.migrated`.
    #[serde(rename = "backup.left")]
    BackupLeft(Left),
    /// A network stands in for another among a backup's networks (`cairn
    /// repair --replace`), in the same place: of an erasure-coded backup
    /// it holds the shards the other held. Recorded only once it holds
    /// every object of the backup intact.
    #[serde(rename = "backup.moved")]
    BackupMoved(Moved),
    /// A scheduled run was not started: the dataset's previous scheduled
    /// backup (`running`) had not finished.
    #[serde(rename = "schedule.skipped")]
    ScheduleSkipped {
        dataset: String,
        /// The slot (RFC 3339) that was skipped.
        slot: String,
        running: BackupId,
    },
    /// A schedule was added at run time (`cairn schedule add`; envelope
    /// backup id `repo`). It replaces one added before with the same
    /// dataset and expression.
    #[serde(rename = "schedule.added")]
    ScheduleAdded { schedule: Schedule, by: String },
    /// A schedule added at run time was removed.
    #[serde(rename = "schedule.removed")]
    ScheduleRemoved {
        dataset: String,
        cron: String,
        by: String,
    },
    /// An object was deleted from a network (by retention).
    #[serde(rename = "object.deleted")]
    ObjectDeleted { network: String, object: ObjectKey },
    /// The collector found these chunks on `network` referenced by no
    /// backup's chunk list, at `marked_at` (its clock): they may be swept
    /// once the grace period has passed, unless something revives them.
    #[serde(rename = "chunks.marked")]
    ChunksMarked(ChunkBatch),
    /// Marked chunks that are referenced again (a backup deduplicated
    /// against them), or whose sweep was called off: no longer marked.
    #[serde(rename = "chunks.revived")]
    ChunksRevived(ChunkBatch),
    /// Marked chunks past their grace period, about to be deleted: from now
    /// on ingest does not deduplicate against them (it waits until they are
    /// gone, then writes them again).
    #[serde(rename = "chunks.condemned")]
    ChunksCondemned(ChunkBatch),
    /// Condemned chunks the collector deleted from `network`.
    #[serde(rename = "chunks.deleted")]
    ChunksDeleted(ChunkBatch),
    /// A collection ran: per network, what it marked, revived and freed, or
    /// why it swept nothing.
    #[serde(rename = "collection.finished")]
    CollectionFinished(Collection),
    /// A restore drill restored the backup into a scratch place and every
    /// check held (chunks, file sizes, the manifest's roots).
    #[serde(rename = "drill.completed")]
    DrillCompleted(Drill),
    /// A restore drill of the backup failed; `reason` says at what.
    #[serde(rename = "drill.failed")]
    DrillFailed(Drill),
    /// A repository (key file and config) was created on a network.
    #[serde(rename = "repo.initialised")]
    RepoInitialised {
        repo_id: String,
        key_id: String,
        networks: Vec<String>,
    },
    /// A passphrase was added: its key file written to the networks named.
    #[serde(rename = "key.added")]
    KeyAdded(KeyChange),
    /// A passphrase was removed: its key file deleted from the networks
    /// named; `pending` says where it still is and why.
    #[serde(rename = "key.removed")]
    KeyRemoved(KeyChange),
    /// The master key was split into threshold shares (the shares
    /// themselves are never recorded).
    #[serde(rename = "key.split")]
    KeySplit(KeySplit),
    /// A writer file was issued (the write-only key ingest runs with); the
    /// file itself is never recorded.
    #[serde(rename = "key.writer_issued")]
    WriterIssued(WriterIssued),
    /// A repository of format 2 was given its key pair (format 3).
    #[serde(rename = "key.upgraded")]
    KeyUpgraded(KeyUpgraded),
    /// The master key and key pair were rotated (or a rotation finished).
    #[serde(rename = "key.rotated")]
    KeyRotated(KeyRotated),
    /// A stage gave up on a message and moved it to the dead-letter subject.
    #[serde(rename = "event.deadlettered")]
    DeadLettered(DeadLetter),
    /// The ledger was seeded again from a repository (`cairn recover
    /// rebuild`) after the broker and the database were lost: the first
    /// entry of a new log (envelope backup id `repo`).
    #[serde(rename = "ledger.recovered")]
    LedgerRecovered(Recovery),
    /// A backup found on a network by `cairn recover rebuild`, recorded
    /// again from its catalogue entry.
    #[serde(rename = "backup.recovered")]
    BackupRecovered(RecoveredBackup),
    /// Objects found on networks by `cairn recover rebuild`, with the
    /// digests they have there now (envelope: the backup they belong to).
    #[serde(rename = "objects.recovered")]
    ObjectsRecovered(RecoveredObjects),
    /// Ingest made a dataset's key pair (format 4): its public key, for the
    /// next backups of the dataset to wrap their data keys to.
    #[serde(rename = "dataset.keyed")]
    DatasetKeyed(DatasetKeyed),
    /// A dataset was crypto-shredded (`cairn shred`): its keys destroyed on
    /// every network that can delete, its backups gone from the catalogue
    /// (envelope backup id `repo`).
    #[serde(rename = "dataset.shredded")]
    DatasetShredded(Shredded),
    /// What a process asked of the networks since it last said (requests
    /// and bytes each way, per network): egress and requests for `cairn
    /// cost` (envelope backup id `repo`).
    #[serde(rename = "network.traffic")]
    NetworkTraffic(Traffic),
    /// An operator acted through the ops console (repair, hold, drill,
    /// retry a dead letter): who, what, on what, and how it ended
    /// (envelope: the backup acted on, or `repo`).
    #[serde(rename = "operator.action")]
    OperatorAction(OperatorAction),
}

impl Event {
    /// The event kind, as used in subjects and in the ledger.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::BackupRequested(_) => "backup.requested",
            Event::BackupStarted { .. } => "backup.started",
            Event::BackupIngested(_) => "backup.ingested",
            Event::ObjectSealed(_) => "object.sealed",
            Event::ObjectStored(_) => "object.stored",
            Event::BackupCompleted(_) => "backup.completed",
            Event::BackupDegraded(_) => "backup.degraded",
            Event::BackupFailed(_) => "backup.failed",
            Event::BackupRestored(_) => "backup.restored",
            Event::ForgetRequested { .. } => "forget.requested",
            Event::BackupForgotten(_) => "backup.forgotten",
            Event::ForgetRefused { .. } => "forget.refused",
            Event::BackupHeld(_) => "backup.held",
            Event::BackupReleased(_) => "backup.released",
            Event::BackupLocked(_) => "backup.locked",
            Event::BackupMigrated(_) => "backup.migrated",
            Event::BackupLeft(_) => "backup.left",
            Event::BackupMoved(_) => "backup.moved",
            Event::ScheduleSkipped { .. } => "schedule.skipped",
            Event::ScheduleAdded { .. } => "schedule.added",
            Event::ScheduleRemoved { .. } => "schedule.removed",
            Event::ObjectDeleted { .. } => "object.deleted",
            Event::ChunksMarked(_) => "chunks.marked",
            Event::ChunksRevived(_) => "chunks.revived",
            Event::ChunksCondemned(_) => "chunks.condemned",
            Event::ChunksDeleted(_) => "chunks.deleted",
            Event::CollectionFinished(_) => "collection.finished",
            Event::DrillCompleted(_) => "drill.completed",
            Event::DrillFailed(_) => "drill.failed",
            Event::RepoInitialised { .. } => "repo.initialised",
            Event::KeyAdded(_) => "key.added",
            Event::KeyRemoved(_) => "key.removed",
            Event::KeySplit(_) => "key.split",
            Event::WriterIssued(_) => "key.writer_issued",
            Event::KeyUpgraded(_) => "key.upgraded",
            Event::KeyRotated(_) => "key.rotated",
            Event::DeadLettered(_) => "event.deadlettered",
            Event::LedgerRecovered(_) => "ledger.recovered",
            Event::BackupRecovered(_) => "backup.recovered",
            Event::ObjectsRecovered(_) => "objects.recovered",
            Event::DatasetKeyed(_) => "dataset.keyed",
            Event::DatasetShredded(_) => "dataset.shredded",
            Event::NetworkTraffic(_) => "network.traffic",
            Event::OperatorAction(_) => "operator.action",
        }
    }

    /// The catalogue's name for `kind` (as stored in the ledger's `kind`
    /// column), if it is one.
    pub fn known_kind(kind: &str) -> Option<&'static str> {
        Self::KINDS.iter().find(|k| **k == kind).copied()
    }

    /// Every kind, in catalogue order.
    pub const KINDS: &'static [&'static str] = &[
        "backup.requested",
        "backup.started",
        "backup.ingested",
        "object.sealed",
        "object.stored",
        "backup.completed",
        "backup.degraded",
        "backup.failed",
        "backup.restored",
        "forget.requested",
        "backup.forgotten",
        "forget.refused",
        "backup.held",
        "backup.released",
        "backup.locked",
        "backup.migrated",
        "backup.left",
        "backup.moved",
        "schedule.skipped",
        "schedule.added",
        "schedule.removed",
        "object.deleted",
        "chunks.marked",
        "chunks.revived",
        "chunks.condemned",
        "chunks.deleted",
        "collection.finished",
        "drill.completed",
        "drill.failed",
        "repo.initialised",
        "key.added",
        "key.removed",
        "key.split",
        "key.writer_issued",
        "key.upgraded",
        "key.rotated",
        "event.deadlettered",
        "ledger.recovered",
        "backup.recovered",
        "objects.recovered",
        "dataset.keyed",
        "dataset.shredded",
        "network.traffic",
        "operator.action",
    ];

    /// Who emits each kind and who consumes it (the catalogue in
    /// `schemas/events.schema.json` is generated from this and the types).
    pub const CATALOGUE: &'static [(&'static str, &'static str, &'static str)] = &[
        (
            "backup.requested",
            "cli, governance factories",
            "ingest, ledger",
        ),
        (
            "backup.started",
            "ingest (or cli for --stdin)",
            "ledger, cli",
        ),
        ("backup.ingested", "ingest", "verify, ledger"),
        (
            "object.sealed",
            "encrypt (chunks, manifests), ingest (chunk lists)",
            "ledger",
        ),
        ("object.stored", "store (one per network)", "ledger"),
        ("backup.completed", "verify", "ledger, cli, factories"),
        ("backup.degraded", "verify", "ledger, cli, factories"),
        ("backup.failed", "verify, ingest", "ledger, cli, factories"),
        ("backup.restored", "cli (restore)", "ledger"),
        ("forget.requested", "cli", "retention, ledger"),
        ("backup.forgotten", "retention", "ledger, cli"),
        ("forget.refused", "retention", "ledger, cli"),
        ("backup.held", "cli (hold)", "ledger"),
        ("backup.released", "cli (release)", "ledger"),
        ("backup.locked", "cli (hold, release)", "ledger"),
        ("backup.migrated", "cli (compliance migrate)", "ledger"),
        ("backup.left", "cli (compliance migrate)", "ledger"),
        ("backup.moved", "cli (repair --replace)", "ledger"),
        ("schedule.skipped", "retention (scheduler)", "ledger"),
        (
            "schedule.added",
            "cli (schedule add)",
            "ledger, retention (scheduler, via the ledger)",
        ),
        (
            "schedule.removed",
            "cli (schedule remove)",
            "ledger, retention (scheduler, via the ledger)",
        ),
        ("object.deleted", "retention", "ledger"),
        ("chunks.marked", "retention (collector)", "ledger"),
        ("chunks.revived", "retention (collector)", "ledger"),
        (
            "chunks.condemned",
            "retention (collector)",
            "ledger, ingest (via the ledger)",
        ),
        ("chunks.deleted", "retention (collector)", "ledger"),
        (
            "collection.finished",
            "retention (collector)",
            "ledger, cli",
        ),
        (
            "drill.completed",
            "retention (drills), cli (drill)",
            "ledger, cli",
        ),
        (
            "drill.failed",
            "retention (drills), cli (drill)",
            "ledger, cli",
        ),
        ("repo.initialised", "cli (init)", "ledger"),
        ("key.added", "cli (key add)", "ledger"),
        ("key.removed", "cli (key remove)", "ledger"),
        ("key.split", "cli (key split)", "ledger"),
        ("key.writer_issued", "cli (key writer)", "ledger"),
        ("key.upgraded", "cli (key upgrade)", "ledger"),
        ("key.rotated", "cli (key rotate)", "ledger"),
        ("event.deadlettered", "every stage", "ledger"),
        ("ledger.recovered", "cli (recover rebuild)", "ledger"),
        ("backup.recovered", "cli (recover rebuild)", "ledger"),
        ("objects.recovered", "cli (recover rebuild)", "ledger"),
        ("dataset.keyed", "ingest", "ledger, ingest"),
        ("dataset.shredded", "cli (shred)", "ledger"),
        (
            "network.traffic",
            "every process that uses networks (serve every 15 s, cli after a command)",
            "ledger",
        ),
        ("operator.action", "console", "ledger, console"),
    ];

    /// The terminal outcome of a backup, if this event is one.
    pub fn outcome(&self) -> Option<(&'static str, &Outcome)> {
        match self {
            Event::BackupCompleted(o) => Some(("completed", o)),
            Event::BackupDegraded(o) => Some(("degraded", o)),
            Event::BackupFailed(o) => Some(("failed", o)),
            _ => None,
        }
    }
}

/// What a `backup.requested` event asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackupRequest {
    /// Dataset name: groups backups of one source (`list --dataset`).
    pub dataset: String,
    /// Free-form tags (`gdpr`, `sox`, ...).
    #[serde(default)]
    pub tags: Vec<String>,
    /// What to read.
    pub source: Source,
    /// Target networks; empty means the dataset's policy, else every
    /// configured network.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Copies that must be verified for the backup to count as completed;
    /// unset means the dataset's policy, else every target network.
    #[serde(default)]
    pub min_copies: Option<u32>,
    /// Who asked (user@host, factory name).
    #[serde(default)]
    pub requested_by: String,
    /// Read every file, even those the files cache says are unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force_read: bool,
}

/// When a dataset is backed up and what each run asks for: `[[schedules]]`
/// in the configuration, or added at run time (`schedule.added`).
/// `cairn_lifecycle` reads the expression and decides when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub dataset: String,
    /// `0 */6 * * *`, or with seconds first `30 0 */6 * * *`.
    pub cron: String,
    /// IANA time zone the expression is read in (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Each run starts up to this much after its slot (`5m`, `1h`; spreads
    /// a fleet's backups that share a schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// What to read: `{ type = "paths", paths = [...] }` or
    /// `{ type = "postgres", url = "...", password_file = "..." }`.
    pub source: Source,
    /// Target networks (empty: the dataset's, else every network).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Verified copies needed for `completed` (the redundancy strategy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_copies: Option<u32>,
}

/// How a backup's chunks are spread over its networks: whole copies on
/// every target network, of which `min_copies` must be verified; or each
/// pack erasure-coded into one shard per target network, any `k` of which
/// rebuild it. Readers refuse variants they do not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Redundancy {
    Replicate {
        min_copies: u32,
    },
    /// Pack data as `n` Reed-Solomon shards, shard `i` on the backup's
    /// `i`-th target network. The backup's own objects (manifest, chunk
    /// list, catalogue) and keys stay whole on every target network.
    Erasure(Erasure),
}

impl Redundancy {
    /// The erasure coding, if the policy is one.
    pub fn erasure(&self) -> Option<Erasure> {
        match self {
            Redundancy::Replicate { .. } => None,
            Redundancy::Erasure(e) => Some(*e),
        }
    }

    /// Whole networks the backup's data survives losing.
    pub fn tolerates(&self, networks: usize) -> usize {
        match self {
            Redundancy::Replicate { min_copies } => (*min_copies as usize).saturating_sub(1),
            Redundancy::Erasure(e) => (e.n - e.k) as usize,
        }
        .min(networks.saturating_sub(1))
    }
}

impl std::fmt::Display for Redundancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Redundancy::Replicate { min_copies } => {
                write!(f, "replicate (min_copies {min_copies})")
            }
            Redundancy::Erasure(e) => write!(f, "{e}"),
        }
    }
}

/// `erasure k/n`: `n` shards, any `k` of which rebuild the pack; storage is
/// `n/k` of the data, and `n - k` networks may be lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Erasure {
    pub k: u32,
    pub n: u32,
}

impl Erasure {
    /// Reads `erasure 3/5` (or `3/5`), checking `1 ≤ k < n ≤ 255`.
    pub fn parse(s: &str) -> Result<Erasure, String> {
        let t = s.trim();
        let t = t.strip_prefix("erasure").unwrap_or(t).trim();
        let (k, n) = t.split_once('/').ok_or_else(|| {
            format!("{s:?}: not an erasure coding (write \"erasure k/n\", e.g. \"erasure 3/5\")")
        })?;
        let num = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?}: {v:?} is not a number of shards"))
        };
        let e = Erasure {
            k: num(k)?,
            n: num(n)?,
        };
        if e.k == 0 || e.k >= e.n || e.n > 255 {
            return Err(format!(
                "{s:?}: erasure k/n needs 1 ≤ k < n ≤ 255 (any k of n shards rebuild a pack)"
            ));
        }
        Ok(e)
    }
}

impl std::fmt::Display for Erasure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "erasure {}/{}", self.k, self.n)
    }
}

/// A backup source. Paths must be readable by the ingest worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// Files and directories (with paths, modes and mtimes).
    Paths { paths: Vec<String> },
    /// The requesting client's standard input; the client runs the ingest
    /// stage itself, because only it can read that stream.
    Stdin { name: String },
    /// A PostgreSQL database, dumped with `pg_dump --format=custom`.
    /// The URL never carries a password: the ingest worker authenticates
    /// with `password_file` (a file on its host holding the password) or
    /// its `~/.pgpass` / `PGPASSFILE`; never with the ledger's own password.
    Postgres {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_file: Option<String>,
    },
    /// A physical base backup of a PostgreSQL cluster (`pg_basebackup`,
    /// streamed as tar, WAL left to the archive), stored as the tree of its
    /// data directory under `pgdata/`. Credentials as for `postgres`.
    PostgresBase {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_file: Option<String>,
    },
    /// One file of a PostgreSQL cluster's WAL archive (a segment, a
    /// timeline history or a backup history file), pushed by
    /// `cairn wal-push` from the server's `archive_command`, which alone
    /// can read it: like `stdin`, the client ingests it itself.
    Wal {
        /// The file's name (`000000010000000000000003`, `00000002.history`).
        name: String,
        /// SHA-256 (hex) of its content: a retry of the same file is
        /// recognised, a different file under the same name refused.
        sha256: String,
        size: u64,
    },
    /// A MariaDB or MySQL database, dumped with `mariadb-dump
    /// --single-transaction`. The URL (`mysql://user@host:port/db`) never
    /// carries a password: the worker reads `password_file` on its host.
    Mariadb {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_file: Option<String>,
    },
    /// A Redis server's RDB snapshot (`redis-cli --rdb`). The URL
    /// (`redis://[user@]host:port`) never carries a password: the worker
    /// reads `password_file` on its host.
    Redis {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_file: Option<String>,
    },
}

impl Source {
    /// The kind, as the ledger's JSON names it (`paths`, `postgres_base`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Paths { .. } => "paths",
            Source::Stdin { .. } => "stdin",
            Source::Postgres { .. } => "postgres",
            Source::PostgresBase { .. } => "postgres_base",
            Source::Wal { .. } => "wal",
            Source::Mariadb { .. } => "mariadb",
            Source::Redis { .. } => "redis",
        }
    }

    /// Whether only the requesting client can read it (it ingests the
    /// backup itself; workers leave the request alone).
    pub fn read_by_client(&self) -> bool {
        matches!(self, Source::Stdin { .. } | Source::Wal { .. })
    }
}

/// The stretch of WAL a PostgreSQL base backup needs to be consistent, read
/// from its `backup_label` and `backup_manifest`: recovery must replay from
/// `start_lsn` to at least `end_lsn`, and point-in-time recovery can reach
/// any moment after `ended_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WalRange {
    pub timeline: u32,
    /// LSNs as PostgreSQL prints them (`0/3000028`).
    pub start_lsn: String,
    pub end_lsn: String,
    /// The first WAL segment replay reads (`000000010000000000000003`):
    /// retention keeps the WAL from here on while the backup is kept.
    pub start_segment: String,
    /// When the server started the backup (RFC 3339, UTC).
    pub started_at: String,
    /// When ingest had read it all (RFC 3339, UTC): no earlier moment can
    /// be recovered to from this base backup.
    pub ended_at: String,
}

/// A dataset's new key pair, as ingest records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DatasetKeyed {
    /// The dataset's tag (a keyed hash of its name: networks and the
    /// ledger's readers without the key do not learn names).
    pub tag: KeyId,
    /// Its public key's fingerprint (`datasets/<fingerprint>`).
    pub fingerprint: KeyId,
    /// X25519, hex.
    pub public_key: String,
    /// The writers' tag over (dataset tag, public key), hex: checked by
    /// every ingest that uses the key.
    pub mac: String,
}

/// What `cairn shred` destroyed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Shredded {
    pub dataset: String,
    pub tag: KeyId,
    /// The dataset keys destroyed (fingerprints).
    pub keys: Vec<KeyId>,
    /// Its backups, now unreadable everywhere.
    pub backups: Vec<BackupId>,
    /// Networks its keys and backup metadata were deleted from.
    pub deleted_from: Vec<String>,
    /// Networks that keep its ciphertext, unreadable (they cannot delete,
    /// or the collector frees the chunks later).
    pub ciphertext_kept_on: Vec<String>,
    /// Networks that may still hold one of its keys (away, or unable to
    /// delete): named so that someone finishes the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys_kept_on: Vec<String>,
    /// Files caches of the dataset removed on this host.
    pub caches_removed: u64,
    pub by: String,
}

/// What `cairn recover rebuild` found on a repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Recovery {
    pub repo_id: String,
    /// The networks read.
    pub networks: Vec<String>,
    /// Backups recorded again (`backup.recovered` follows for each).
    pub backups: u64,
    /// Backups found but not recorded, each with why (an entry no key
    /// opens, a backup that never finished).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    pub by: String,
}

/// One backup as `cairn recover rebuild` found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecoveredBackup {
    pub dataset: String,
    pub tags: Vec<String>,
    pub source: Source,
    pub requested_at: String,
    pub requested_by: String,
    /// When ingest finished (from the catalogue; empty for a backup listed
    /// from its manifest).
    pub ingested_at: String,
    pub stats: Stats,
    /// The networks that hold it whole, of those the rebuild read.
    pub networks: Vec<String>,
    /// `completed`: whole on every network read; `degraded`: on some only.
    pub status: String,
    pub chunk_pages: u32,
    pub merkle_root: String,
    /// As in [`Outcome::sealed_root`], over the digests the rebuild found.
    pub sealed_root: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<KeyId>,
    /// For a PostgreSQL base backup: the WAL it needs, from its entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalRange>,
}

/// A batch of objects `cairn recover rebuild` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecoveredObjects {
    /// The networks holding every object of the batch.
    pub networks: Vec<String>,
    pub objects: Vec<ObjectDigest>,
    /// Of an erasure-coded pack among them, which shard each network holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<RecoveredShard>,
}

/// One network's shard of an erasure-coded pack, as a recovery found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecoveredShard {
    pub path: String,
    pub network: String,
    pub index: u32,
}

/// Reported by ingest once the source is fully read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ingested {
    pub stats: Stats,
    /// Number of chunk-list pages written (`backups/<id>/chunks.<n>`).
    pub chunk_pages: u32,
    /// RFC 6962 Merkle root (hex) over the backup's distinct chunk ids in
    /// chunk-list order; the sealed manifest carries the same root.
    pub merkle_root: String,
    /// Target networks, resolved (never empty).
    pub networks: Vec<String>,
    /// The redundancy policy verify holds the backup to.
    pub redundancy: Redundancy,
    /// The backup's data key (format 3): verify checks that its wrapped
    /// copy is on every target network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<KeyId>,
    /// The run that read the source ([`Run`]); the `backup.ingested` of a
    /// run a later one replaced counts for nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    /// Whether ingest wrote a catalogue entry (`backups/<id>/catalogue`):
    /// verify then checks it is on every target network too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub catalogue: bool,
    /// The dataset key the data key is wrapped to (format 4), by
    /// fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_key: Option<KeyId>,
    /// For a PostgreSQL base backup: the WAL it needs (retention keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalRange>,
    /// RFC 3339: until when a compliance rule keeps the backup. Networks
    /// that lock objects lock every object of it at least that long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<String>,
    /// Target networks a quota turned away before anything was read, and
    /// where the backup went instead (`networks` is what it went to).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rerouted: Vec<Reroute>,
}

/// A target network a backup did not go to because of its quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reroute {
    /// The network at its quota.
    pub from: String,
    /// The network that took its place (`None`: dropped, the other
    /// targets still meet `min_copies`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The quota, as the ledger counted it: "storj holds 149.2 GB of its
    /// 150 GB quota; this backup may add 2.1 GB".
    pub reason: String,
}

/// Requests one process made of one network, and bytes each way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkRequests {
    pub network: String,
    /// Object reads (whole or ranged).
    pub gets: u64,
    /// Object writes.
    pub puts: u64,
    /// Existence, lock and health checks.
    pub heads: u64,
    /// Listings (a usage count lists too).
    pub lists: u64,
    pub deletes: u64,
    /// Lock changes (retention extended, legal hold placed or lifted).
    pub locks: u64,
    /// Bytes read back from the network (egress).
    pub bytes_read: u64,
    /// Bytes written to it.
    pub bytes_written: u64,
}

/// `operator.action`: what an operator did through the console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OperatorAction {
    /// The operator's name, as the console's operators file gives it for
    /// the token they presented.
    pub operator: String,
    /// `repair`, `hold`, `release`, `drill` or `retry`.
    pub action: String,
    /// What it acted on: a backup id, or a dead letter's stream sequence.
    pub target: String,
    /// `ok`, or why it did not succeed.
    pub outcome: String,
}

/// `network.traffic`: one process's requests since it last recorded them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Traffic {
    /// What the process was doing: `serve`, `restore`, `drill`, `repair`...
    pub purpose: String,
    pub networks: Vec<NetworkRequests>,
    /// Who (`cli@host`, `serve@host`).
    pub by: String,
}

/// Figures every outcome reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {
    /// Plaintext bytes of the source (those of unchanged files included).
    pub bytes_read: u64,
    /// Sealed bytes this backup added to each network (new chunks, manifest,
    /// chunk lists).
    pub bytes_stored: u64,
    /// Distinct chunks the backup references (data and tree).
    pub chunks_total: u64,
    /// Chunks the repository did not hold before this backup.
    pub chunks_new: u64,
    /// Regular files, directories and symlinks read.
    pub files: u64,
    /// Regular files the parent's files cache vouched for (size, mtime,
    /// ctime and inode unchanged): not read, their chunks reused.
    #[serde(default)]
    pub files_unchanged: u64,
    /// Their bytes (part of `bytes_read`).
    #[serde(default)]
    pub bytes_unchanged: u64,
}

/// Names one object in a repository; `cairn_repo::layout` maps it to a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ObjectKey {
    /// A sealed chunk stored alone (file data or tree), named by its keyed
    /// id: how repositories of format 1 hold every chunk.
    Chunk { id: ChunkId },
    /// Many sealed chunks stored as one object, one after the other (format
    /// 2); the chunk lists say which chunk is where.
    Pack { id: PackId },
    /// A backup's sealed manifest.
    Manifest { backup_id: BackupId },
    /// One page of a backup's public chunk list.
    ChunkList { backup_id: BackupId, page: u32 },
    /// A backup's data key, wrapped to the repository's public key
    /// (format 3).
    DataKey { id: KeyId },
    /// A backup's sealed catalogue entry: what `cairn recover list` shows
    /// of it (dataset, tags, time, sizes) with no ledger at hand.
    Catalogue { backup_id: BackupId },
    /// A dataset's key pair, its private key wrapped to the repository's
    /// public key (format 4), named by its public key's fingerprint.
    DatasetKey { id: KeyId },
}

/// The digest of a sealed (or public) object, as it must be on every network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObjectDigest {
    pub object: ObjectKey,
    /// SHA-256 (hex) of the bytes stored on the network.
    pub sha256: String,
    /// Length of the stored bytes.
    pub len: u64,
    /// For a pack: each chunk it holds, where its sealed bytes are. The
    /// ledger's chunk index learns from this which pack holds a chunk.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packed: Vec<PackedChunk>,
    /// For a backup's own objects that another run of it would write
    /// differently under the same name (its manifest, catalogue entry and
    /// chunk list pages): the run that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    /// For an erasure-coded pack (`object.sealed`): its shard files, shard
    /// `i` on the backup's `i`-th network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<Shards>,
}

/// An erasure-coded pack's shard files, as sealing made them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Shards {
    /// Shards that rebuild the pack.
    pub k: u32,
    /// Each shard file's digest, by index (`n` of them).
    pub files: Vec<ShardDigest>,
}

/// One shard file of an erasure-coded pack, as it must be on its network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShardDigest {
    /// SHA-256 (hex) of the shard file (header and body).
    pub sha256: String,
    pub len: u64,
}

/// Which shard of an erasure-coded pack a network holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShardOf {
    pub index: u32,
    pub k: u32,
    pub n: u32,
}

/// One run of a backup's ingest. A backup whose ingest process stopped
/// renewing its lease is run again by another, under a new data key; what
/// the old run still sends must then count for nothing. Events of the two
/// runs can reach a reader in any order (a message handed to a process
/// that was cut off is delivered again only later), so runs are ordered:
/// `order` is the sequence, on the RUNS stream, of the lease write that
/// named the run, and a later run's is always higher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Run {
    /// The run's data key, which every object it seals is sealed under.
    pub key: KeyId,
    /// Higher for a later run of the same backup; 0 for an ingest that
    /// took no lease (a client's own `--stdin` backup has one run only).
    pub order: u64,
}

impl Run {
    /// Whether `self` is a later run than `other` (of the same backup).
    pub fn supersedes(&self, other: &Run) -> bool {
        self.order > other.order
    }
}

/// One chunk inside a pack: its sealed bytes are `len` bytes at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PackedChunk {
    pub id: ChunkId,
    pub offset: u32,
    pub len: u32,
}

/// Reported by a store worker after `put` (or on finding it already there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Stored {
    pub network: String,
    /// What the network holds: for a shard, the shard file's digest.
    pub digest: ObjectDigest,
    /// True when the network already held the object (nothing written).
    pub existed: bool,
    /// Set when the network holds one shard of the pack, not all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardOf>,
}

/// A terminal report: completed, degraded or failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Outcome {
    pub stats: Stats,
    /// Merkle root over chunk ids (hex), as checked by verify. Empty if none.
    #[serde(default)]
    pub merkle_root: String,
    /// Merkle root (hex), in chunk-list order, over (chunk id ‖ SHA-256 of
    /// its sealed object) for a chunk stored alone and (chunk id ‖ SHA-256
    /// of its pack ‖ offset ‖ length, big-endian u32) for a packed one: lets
    /// an auditor without the key check sampled ciphertext against the
    /// backup.
    #[serde(default)]
    pub sealed_root: String,
    /// Per-network result.
    #[serde(default)]
    pub networks: Vec<NetworkReport>,
    /// Why the backup is not completed (empty when it is).
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// Verify's finding for one network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkReport {
    pub network: String,
    pub ok: bool,
    /// Objects missing on this network.
    pub missing: u64,
    /// Objects whose bytes do not hash to the recorded digest.
    pub corrupt: u64,
    /// First problem, in words.
    #[serde(default)]
    pub detail: String,
    /// How the data objects the backup wrote were checked on this network.
    #[serde(default)]
    pub checked: Checked,
    /// RFC 3339: on a network that locks objects, the date until which
    /// verify saw every object of the backup locked (at least).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
}

/// How verify checked a network's copies of a backup's new data objects
/// (its chunk list and manifest are always read back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Checked {
    /// Read back and hashed against the digests recorded at sealing.
    #[default]
    Read,
    /// Recorded as stored by the network's store worker, which checked each
    /// object's SHA-256 before a write the network acknowledged (the
    /// network's `read_back = false`); not read back.
    Stored,
}

/// How far a backup's ingest has got, published every 250 ms on core NATS
/// (`<prefix>.progress.<backup_id>`, never stored) as JSON, for progress
/// bars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Progress {
    /// Plaintext bytes read so far.
    pub bytes_read: u64,
    /// Estimated total (0 when unknown, e.g. a stream).
    pub bytes_total: u64,
    pub files: u64,
}

/// Recorded after a restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Restored {
    /// `dir:<path>`, `postgres:<url>` or `stdout`.
    pub target: String,
    pub bytes_written: u64,
    pub files: u64,
    /// Network each chunk was read from, with counts.
    pub networks: Vec<String>,
    pub restored_by: String,
}

/// Who put a legal hold on a backup or lifted it, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Hold {
    /// The operator (`user@host`) who asked.
    pub by: String,
    pub reason: String,
}

/// A legal hold placed on or lifted from a backup's objects where the
/// networks lock objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Locked {
    /// True: placed; false: lifted.
    pub legal_hold: bool,
    pub networks: Vec<LockReport>,
    pub by: String,
}

/// What one network did with a backup's objects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LockReport {
    pub network: String,
    /// Objects whose legal hold is now as asked.
    pub objects: u64,
    /// Objects it could not change, and the first reason.
    pub failed: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A backup copied whole to an archive network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Migrated {
    /// The archive network.
    pub to: String,
    /// Objects copied now, and those the archive held already.
    pub copied: u64,
    pub present: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// RFC 3339: where the archive locks objects, until when every object
    /// of the backup is locked there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
    pub by: String,
}

/// A migrated backup gone from its regular networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Left {
    /// The archive it stays on.
    pub to: String,
    /// Networks its manifest, chunk list and catalogue entry are deleted
    /// from, once this is recorded.
    pub networks: Vec<String>,
    /// Regular networks that cannot delete, and keep it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_on: Vec<String>,
    pub by: String,
}

/// A backup's copy moved from one network to another that replaces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Moved {
    /// The network replaced (lost, or being retired).
    pub from: String,
    /// The network now in its place, holding every object intact.
    pub to: String,
    /// Objects written to `to` (the rest it held already).
    pub copied: u64,
    pub by: String,
}

/// Recorded after forgetting a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Forgotten {
    /// Its manifest and chunk-list pages deleted, over every network.
    pub objects_deleted: u64,
    /// Networks it was removed from.
    pub networks: Vec<String>,
    /// Networks that cannot delete (permanent storage) and still hold it.
    #[serde(default)]
    pub retained_on: Vec<String>,
}

/// Chunks on one network, as the collector marks, revives, condemns or
/// deletes them (at most [`ChunkBatch::MAX`] per event, so that an event
/// stays well under NATS's 1 MiB payload limit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChunkBatch {
    pub network: String,
    pub chunks: Vec<ChunkId>,
    /// RFC 3339, the collector's clock: when they were found unreferenced
    /// (`chunks.marked`), or when the step happened.
    pub at: String,
    /// Sealed bytes these chunks held (`chunks.deleted`; 0 otherwise).
    #[serde(default)]
    pub bytes: u64,
    /// Packs, treated as `chunks` are (a pack is deleted only when no
    /// backup's chunk list names it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packs: Vec<PackId>,
}

impl ChunkBatch {
    pub const MAX: usize = 4096;
}

/// What one collection did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Collection {
    /// RFC 3339, the collector's clock.
    pub at: String,
    pub grace_secs: u64,
    pub networks: Vec<NetworkCollection>,
}

/// What one collection did on one network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkCollection {
    pub network: String,
    /// `swept` (it ran to the end, perhaps deleting nothing), `deferred`
    /// (a backup was running), `skipped` (the network cannot delete) or
    /// `aborted` (something could not be read or deleted).
    pub outcome: String,
    /// Why it was deferred, skipped or aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Chunks the network holds.
    pub chunks: u64,
    /// Chunks referenced by some backup.
    pub referenced: u64,
    /// Newly marked unreferenced in this run.
    pub marked: u64,
    /// Marked before, referenced again.
    pub revived: u64,
    /// Marked and still waiting for their grace period.
    pub waiting: u64,
    pub deleted: u64,
    pub bytes_freed: u64,
}

/// A passphrase's key file added to or removed from the repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeyChange {
    pub repo_id: String,
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Networks where the change is done.
    pub networks: Vec<String>,
    /// Networks where it is not (yet), each with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Pending>,
}

/// A network a key change has not reached, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Pending {
    pub network: String,
    pub reason: String,
}

/// The master key split into threshold shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeySplit {
    pub repo_id: String,
    /// The split's id, written in each of its shares.
    pub set: String,
    pub threshold: u8,
    pub count: u8,
}

/// A writer file issued: for which repository and public key, and where it
/// was written (on the issuing host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WriterIssued {
    pub repo_id: String,
    pub public_key: String,
    pub file: String,
}

/// A repository given its key pair: the public key writers pin from now on,
/// and where the upgrade is still pending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeyUpgraded {
    pub repo_id: String,
    pub public_key: String,
    pub networks: Vec<String>,
    pub pending: Vec<Pending>,
}

/// A rotation (or a run finishing one): the new public key and key file,
/// the old key files dropped, how many wrapped data keys were re-wrapped,
/// and where it is still pending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeyRotated {
    pub repo_id: String,
    pub public_key: String,
    pub key_id: String,
    pub dropped: Vec<String>,
    pub rewrapped: u64,
    pub finished: bool,
    pub pending: Vec<Pending>,
}

/// One restore drill: which backup was restored where, what came back and
/// how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Drill {
    pub dataset: String,
    /// `newest` (the dataset's newest restorable backup), `sample` (a
    /// randomly chosen older one) or `asked` (named by an operator).
    pub pick: String,
    /// Where it was restored: `dir:<scratch dir>`, `postgres:<scratch
    /// database>` (dropped afterwards), or `verify-only` (a database dump
    /// with no scratch server configured: read and checked, not loaded).
    pub target: String,
    /// Plaintext bytes restored.
    pub bytes: u64,
    /// Files, directories and symlinks restored.
    pub files: u64,
    /// Chunks read and authenticated (data and tree).
    pub chunks: u64,
    pub duration_ms: u64,
    /// RFC 3339: when the drill began.
    pub started_at: String,
    /// Why it failed (`drill.failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who ran it: `retention` (the service's schedule) or `user@host`.
    pub by: String,
}

/// A message a stage could not process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetter {
    /// Stage that gave up.
    pub stage: String,
    /// Subject the message arrived on.
    pub subject: String,
    /// Why, in words (decode error, last handler error, ...).
    pub reason: String,
    /// How many times it was delivered.
    pub deliveries: u64,
    /// SHA-256 (hex) of the message payload, for matching with the DLQ copy.
    pub payload_sha256: String,
}

/// A chunk of plaintext (zstd-compressed or raw) on its way to encrypt.
/// Travels only as a core-NATS request (`<prefix>.seal.<backup_id>`), which
/// the server passes on and never stores.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlainChunk {
    pub schema: u16,
    pub backup_id: BackupId,
    pub object: ObjectKey,
    /// Target networks (resolved).
    pub networks: Vec<String>,
    /// True when `payload` is zstd-compressed.
    pub compressed: bool,
    /// Length of the uncompressed plaintext.
    pub plain_len: u32,
    #[serde(with = "serde_bytes")]
    #[schemars(with = "Vec<u8>")]
    pub payload: Vec<u8>,
    /// For a pack (`payload` empty): its chunks, each sealed on its own and
    /// laid one after the other in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PlainPart>,
    /// The backup's data key (format 3): encrypt seals with it and keeps
    /// nothing, so no encrypt worker holds a key to an earlier backup.
    pub data_key: Option<SealKey>,
    /// RFC 3339: lock the sealed object at least until then where networks
    /// lock objects (a compliance rule keeps the backup that long).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<String>,
    /// The ingest run that sent it, which encrypt names on the backup's own
    /// objects ([`ObjectDigest::run`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    /// For a pack of an erasure-coded backup: its coding (shard `i` for
    /// `networks[i]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure: Option<Erasure>,
}

/// A backup's data key, as the job hands it to encrypt with each seal
/// request (never stored; its only stored form is wrapped, `datakeys/<id>`).
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SealKey {
    pub id: KeyId,
    #[serde(with = "serde_bytes")]
    #[schemars(with = "Vec<u8>")]
    pub key: Vec<u8>,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey({}, <redacted>)", self.id.to_hex())
    }
}

impl Drop for SealKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

/// One chunk of a pack on its way to encrypt.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlainPart {
    pub id: ChunkId,
    pub compressed: bool,
    #[serde(with = "serde_bytes")]
    #[schemars(with = "Vec<u8>")]
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for PlainPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainPart")
            .field("id", &self.id)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl std::fmt::Debug for PlainChunk {
    // Never print plaintext, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainChunk")
            .field("backup_id", &self.backup_id)
            .field("object", &self.object)
            .field("payload_len", &self.payload.len())
            .field("parts", &self.parts.len())
            .finish()
    }
}

/// A stage's answer to a core-NATS request: encrypt's to a seal request
/// ([`PlainChunk`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "answer", rename_all = "lowercase")]
pub enum Answer {
    /// Done (sealed, on the SEALED stream, its `object.sealed` published).
    Done,
    /// Not now (the SEALED stream full, the broker briefly away): ask again
    /// after a while.
    Busy { reason: String },
    /// Never: the request is malformed (it was dead-lettered, without its
    /// payload).
    Refused { reason: String },
}

/// An object ready for the networks: sealed ciphertext, or a public
/// (key-less) object such as a chunk-list page.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SealedObject {
    pub schema: u16,
    pub backup_id: BackupId,
    pub object: ObjectKey,
    pub networks: Vec<String>,
    /// SHA-256 (hex) of `payload`, checked by the store worker.
    pub sha256: String,
    #[serde(with = "serde_bytes")]
    #[schemars(with = "Vec<u8>")]
    pub payload: Vec<u8>,
    /// RFC 3339: where networks lock objects, locked at least until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<String>,
    /// As [`ObjectDigest::run`]: a store worker passes over an object of a
    /// run that is no longer the backup's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    /// For an erasure-coded pack: each store worker writes only the shard
    /// of its network, `networks[i]` holding shard `i`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure: Option<Erasure>,
}

impl std::fmt::Debug for SealedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedObject")
            .field("backup_id", &self.backup_id)
            .field("object", &self.object)
            .field("sha256", &self.sha256)
            .field("len", &self.payload.len())
            .finish()
    }
}

/// RFC 3339 "now", the format of [`Envelope::at`].
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Envelope {
    /// Wraps `event` with a deterministic id derived from `id_parts`, which
    /// must identify the event's content (e.g. backup id and chunk id).
    pub fn new(
        source: impl Into<String>,
        backup_id: BackupId,
        event: Event,
        id_parts: &[&[u8]],
    ) -> Self {
        let mut parts: Vec<&[u8]> = vec![event.kind().as_bytes(), backup_id.as_str().as_bytes()];
        parts.extend_from_slice(id_parts);
        Envelope {
            schema: SCHEMA_VERSION,
            id: EventId::derive(&parts),
            at: now_rfc3339(),
            source: source.into(),
            backup_id,
            event,
        }
    }

    /// The event a stage publishes in answer to `to` (same backup): its id
    /// derives from `to`'s, so a redelivered request yields the same answer
    /// id and JetStream drops the duplicate.
    pub fn answer(source: impl Into<String>, to: &Envelope, event: Event) -> Self {
        Envelope::new(
            source,
            to.backup_id.clone(),
            event,
            &[to.id.as_str().as_bytes()],
        )
    }
}
