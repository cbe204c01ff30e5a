//! One backup, from request to `backup.ingested`: find the parent's files
//! cache, start the producer, drop chunks this backup already listed, ask the
//! ledger's chunk index which of the rest every target network already holds,
//! compress and publish the new ones to encrypt, write the chunk list pages,
//! then the manifest, and leave a files cache for the next backup.
//!
//! Used by the ingest worker and, for `--stdin`, by the CLI itself.

use crate::files_cache::{self, FilesCache};
use crate::source::{self, Caching, Counters, Input, Item, SourceError};
use bytes::Bytes;
use cairn_bus::request::Requests;
use cairn_bus::{Bus, BusError, Pipeline};
use cairn_crypto::{NewDataKey, Writer};
use cairn_events::{
    encode, BackupId, BackupRequest, ChunkId, Envelope, Event, Ingested, KeyId, ObjectDigest,
    ObjectKey, PlainChunk, PlainPart, Redundancy, Run, SealKey, SealedObject, Stats,
    SCHEMA_VERSION,
};
use cairn_repo::chunklist::ChunkListBuilder;
use cairn_repo::format::{ChunkListPage, Location, Manifest, RepoConfig, FORMAT};
use cairn_repo::layout;
use cairn_repo::pack::{FormedPack, PackBuilder};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Everything an ingest needs; shared by all jobs of a worker.
pub struct IngestContext {
    pub bus: Bus,
    pub repo: RepoConfig,
    /// The chunk-id key and the repository's public key: nothing that opens
    /// a stored object.
    pub writer: Writer,
    pub pg: tokio_postgres::Client,
    /// Every configured network (the default targets).
    pub networks: Vec<String>,
    /// Per-dataset redundancy policies (`[datasets.<name>]`).
    pub policies: std::collections::BTreeMap<String, cairn_config::DatasetPolicy>,
    /// Compliance profiles, and what they need to know of each network:
    /// a request its profiles refuse fails before anything is read.
    pub compliance: cairn_compliance::ComplianceConfig,
    pub network_facts: Vec<cairn_compliance::NetworkFacts>,
    /// Who is ingesting (`ingest@host`, `cli@host`).
    pub source: String,
    /// Where this host keeps its files caches (`[ingest] files_cache`);
    /// none reads every file every time.
    pub files_cache: Option<files_cache::Store>,
    /// Networks that could not destroy a dataset's key when it is shredded:
    /// those that cannot delete (`can_delete = false`, Arweave) and those
    /// that lock what they hold (S3 Object Lock, until the lock ends). A
    /// shreddable dataset's key goes there only when no other target could.
    pub cannot_erase: Vec<String>,
    /// `quota_bytes` of the networks that have one: a backup that would
    /// take one past it goes elsewhere or is refused before it reads.
    pub quotas: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The request or its source is at fault: record `backup.failed`.
    #[error("{0}")]
    Source(String),
    /// Infrastructure trouble: retry later.
    #[error(transparent)]
    Bus(BusError),
    #[error("chunk index (PostgreSQL): {0}")]
    Index(#[from] tokio_postgres::Error),
    /// Chunks this backup needs stayed condemned by a collection for too
    /// long (a collector that died mid-sweep): retry later.
    #[error("{0}")]
    Collecting(String),
}

/// A stage that refused part of the backup will refuse it again: the backup
/// fails, naming why. Anything else the bus says is worth a retry.
impl From<BusError> for JobError {
    fn from(e: BusError) -> Self {
        match e {
            BusError::Refused { .. } => JobError::Source(e.to_string()),
            e => JobError::Bus(e),
        }
    }
}

/// How long a job waits for a sweep to finish with chunks it needs, before
/// giving up for a later retry.
const CONDEMNED_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Which of `ids` to deduplicate against: waits while any is being swept
/// (condemned) on a target network, since leaning on it now could make the
/// backup need a chunk in the moment it is deleted. Once the sweep is over
/// such a chunk is simply new, and written again.
async fn dedup_against(
    pg: &tokio_postgres::Client,
    ids: &[ChunkId],
    networks: &[String],
    redundancy: &Redundancy,
) -> Result<HashMap<ChunkId, Location>, JobError> {
    let started = std::time::Instant::now();
    let k = redundancy.erasure().map(|e| e.k);
    loop {
        let states = cairn_ledger::marks::chunk_states(pg, ids, networks, k).await?;
        if states.condemned.is_empty() {
            return Ok(states.known);
        }
        if started.elapsed() > CONDEMNED_WAIT {
            return Err(JobError::Collecting(format!(
                "{} chunks this backup needs (first {}) have been condemned by a collection on {} for {} s; retrying later (run `cairn gc` to finish the sweep)",
                states.condemned.len(),
                states.condemned.iter().next().map(|c| c.to_string()).unwrap_or_default(),
                networks.join(", "),
                CONDEMNED_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Chunk ids per chunk-index query when checking a parent's files cache.
const CACHE_CHECK_BATCH: usize = 8192;

/// Where the chunks of the parent's cached files are (as the check before
/// the walk found them), so that a reused file needs no second lookup.
type ReusedAt = HashMap<ChunkId, Location>;

/// The parent's files cache for a directory backup, with every entry whose
/// chunks are not all held (and not condemned) on every target network
/// dropped: such a file is read again. None for streams, `--force-read`, or
/// when no completed backup of the dataset left a cache on this host.
async fn parent_cache(
    ctx: &IngestContext,
    req: &BackupRequest,
    networks: &[String],
    redundancy: &Redundancy,
) -> Result<Option<(FilesCache, ReusedAt)>, JobError> {
    let k = redundancy.erasure().map(|e| e.k);
    let Some(store) = &ctx.files_cache else {
        return Ok(None);
    };
    if req.force_read || !matches!(req.source, cairn_events::Source::Paths { .. }) {
        return Ok(None);
    }
    let candidates: Vec<BackupId> =
        cairn_ledger::query::list_backups(&ctx.pg, Some(&req.dataset), None)
            .await?
            .into_iter()
            .filter(|b| b.status == "completed")
            .filter_map(|b| BackupId::parse(&b.backup_id).ok())
            .take(8)
            .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    let (store2, dataset) = (store.clone(), req.dataset.clone());
    let loaded = tokio::task::spawn_blocking(move || store2.parent(&dataset, &candidates))
        .await
        .map_err(|e| JobError::Source(format!("files cache reader crashed: {e}")))?;
    let Some(mut cache) = loaded else {
        return Ok(None);
    };
    // One batch of ids at a time: a large tree's cache names millions.
    let mut dropped = 0;
    let mut at = ReusedAt::new();
    for keys in cache.batches(CACHE_CHECK_BATCH) {
        let ids = cache.chunk_ids_of(&keys);
        let states = cairn_ledger::marks::chunk_states(&ctx.pg, &ids, networks, k).await?;
        let usable: HashSet<ChunkId> = states.known.keys().copied().collect();
        dropped += cache.retain_known(&keys, &usable);
        at.extend(states.known);
    }
    tracing::info!(
        dataset = %req.dataset,
        parent = ?cache.backup_id,
        files = cache.len(),
        dropped,
        "files cache: unchanged files will not be read"
    );
    Ok(Some((cache, at)))
}

/// Batches in flight to compression, per job.
const COMPRESS_WINDOW: usize = 4;
/// Producer batches (each ~1 MiB or 256 items) waiting for the async side.
const PRODUCED_AHEAD: usize = 8;
/// Chunk ids and plaintext bytes gathered for one chunk-index lookup.
const LOOKUP_IDS: usize = 512;
const LOOKUP_BYTES: usize = 8 << 20;

/// Chunk ids (new or reused) and plaintext bytes in a producer batch.
fn weigh(batch: &[Item]) -> (usize, usize) {
    batch.iter().fold((0, 0), |(ids, bytes), item| match item {
        Item::Chunk { plain, .. } => (ids + 1, bytes + plain.len()),
        Item::Reused { refs } => (ids + refs.len(), bytes),
    })
}
/// Seal requests awaiting encrypt's answer, and chunk-list pages awaiting
/// their JetStream ack, per job (each also bounded at 8 MiB of payloads).
const PUBLISH_WINDOW: usize = 64;

/// The networks a request targets, checked against the configuration.
pub fn resolve_targets(
    req: &BackupRequest,
    configured: &[String],
    policies: &std::collections::BTreeMap<String, cairn_config::DatasetPolicy>,
) -> Result<(Vec<String>, Redundancy), JobError> {
    let policy = policies.get(&req.dataset);
    let asked: &[String] = if !req.networks.is_empty() {
        &req.networks
    } else {
        policy.map(|p| p.networks.as_slice()).unwrap_or(&[])
    };
    let mut out = Vec::new();
    for n in asked {
        if !configured.contains(n) {
            return Err(JobError::Source(format!(
                "unknown network {n:?} (configured: {})",
                configured.join(", ")
            )));
        }
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    if out.is_empty() {
        out = configured.to_vec();
    }
    let erasure = match policy.map(|p| p.erasure()).transpose() {
        Ok(e) => e.flatten(),
        Err(e) => {
            return Err(JobError::Source(format!(
                "datasets.{}.redundancy = {e}",
                req.dataset
            )))
        }
    };
    if let Some(e) = erasure {
        if let Some(m) = req.min_copies {
            return Err(JobError::Source(format!(
                "min_copies {m} asks for whole copies, and dataset {:?} is {e} (any {} of its {} shards rebuild a pack)",
                req.dataset, e.k, e.n
            )));
        }
        if e.n as usize != out.len() {
            return Err(JobError::Source(format!(
                "dataset {:?} is {e}: one shard per target network, and this backup has {} ({})",
                req.dataset,
                out.len(),
                out.join(", ")
            )));
        }
        return Ok((out, Redundancy::Erasure(e)));
    }
    let min = req
        .min_copies
        .or(policy.and_then(|p| p.min_copies))
        .unwrap_or(out.len() as u32);
    if min == 0 || min as usize > out.len() {
        return Err(JobError::Source(format!(
            "min_copies {min} is impossible with {} target networks ({})",
            out.len(),
            out.join(", ")
        )));
    }
    Ok((out, Redundancy::Replicate { min_copies: min }))
}

/// Why the profiles that apply to `req` refuse it, if they do: judged on
/// the resolved targets before anything is read. A request whose targets
/// cannot be resolved is left to [`run`], which names that.
pub fn refused_by_profile(ctx: &IngestContext, req: &BackupRequest) -> Option<String> {
    let (targets, redundancy) = resolve_targets(req, &ctx.networks, &ctx.policies).ok()?;
    refused_for(ctx, req, &targets, &redundancy)
}

/// The whole copies a policy is worth in networks that may be lost: an
/// erasure-coded backup survives losing `n - k` networks, as `n - k + 1`
/// whole copies do. What compliance rules on copies and the quotas' "may a
/// full network be dropped" are judged on.
pub fn copies_held(r: &Redundancy) -> u32 {
    match r {
        Redundancy::Replicate { min_copies } => *min_copies,
        Redundancy::Erasure(e) => e.n - e.k + 1,
    }
}

/// Why the profiles that apply to `req` refuse it on `targets`, if they do.
fn refused_for(
    ctx: &IngestContext,
    req: &BackupRequest,
    targets: &[String],
    redundancy: &Redundancy,
) -> Option<String> {
    let policy = ctx.policies.get(&req.dataset);
    let profiles = profiles(ctx, req);
    if profiles.is_empty() {
        return None;
    }
    let plan = cairn_compliance::Planned {
        targets: ctx
            .network_facts
            .iter()
            .filter(|n| targets.contains(&n.name))
            .collect(),
        min_copies: copies_held(redundancy),
        shards_needed: redundancy.erasure().map(|e| e.k),
        shreddable: policy.and_then(|p| p.shreddable).unwrap_or(true),
        repo_format: ctx.repo.format,
        configured: &ctx.network_facts,
    };
    cairn_compliance::request::check(&profiles, &plan)
        .err()
        .map(|r| r.to_string())
}

/// The compliance profiles `req` is held to.
fn profiles(ctx: &IngestContext, req: &BackupRequest) -> Vec<(String, cairn_compliance::Profile)> {
    let named = ctx
        .policies
        .get(&req.dataset)
        .map(|p| p.profiles.as_slice())
        .unwrap_or(&[]);
    ctx.compliance.applying(named, &req.tags)
}

/// Until when a compliance rule keeps the backup requested at
/// `requested_at` (RFC 3339), if one does: networks that lock objects lock
/// its objects that long.
pub fn retain_until(
    ctx: &IngestContext,
    req: &BackupRequest,
    requested_at: &str,
) -> Option<String> {
    let taken = chrono::DateTime::parse_from_rfc3339(requested_at)
        .ok()?
        .with_timezone(&chrono::Utc);
    cairn_compliance::retention_floor(&profiles(ctx, req), taken)
        .map(|(until, _)| until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

struct Publisher<'a> {
    ctx: &'a IngestContext,
    backup_id: &'a BackupId,
    networks: &'a [String],
    /// Packs are cut into one shard per network (`networks[i]`: shard `i`).
    erasure: Option<cairn_events::Erasure>,
    /// Until when networks that lock objects must keep this backup's.
    retain_until: Option<String>,
    /// This backup's data key, handed to encrypt with every seal request.
    key: SealKey,
    /// This run of the backup, named on its own objects.
    run: Run,
    /// Plaintext to encrypt: core-NATS requests, never stored.
    seal: Requests,
    /// Public chunk-list pages, straight to SEALED.
    pipe: Pipeline,
}

impl Publisher<'_> {
    async fn plain(
        &mut self,
        object: ObjectKey,
        compressed: bool,
        plain_len: u32,
        payload: Vec<u8>,
    ) -> Result<(), BusError> {
        self.send_plain(object, compressed, plain_len, payload, Vec::new())
            .await
    }

    /// A pack of new chunks, to be sealed as one object; its chunks are
    /// located in the chunk list.
    async fn pack(
        &mut self,
        formed: FormedPack,
        list: &mut ChunkListBuilder,
    ) -> Result<(), JobError> {
        for (id, loc) in formed.located {
            list.locate(id, loc)
                .map_err(|e| JobError::Source(e.to_string()))?;
        }
        let object = ObjectKey::Pack { id: formed.id };
        self.send_plain(object, false, 0, Vec::new(), formed.parts)
            .await?;
        for page in list.ready() {
            self.page(page).await?;
        }
        Ok(())
    }

    /// One seal request: a chunk or manifest (`payload`), or a pack (`parts`).
    async fn send_plain(
        &mut self,
        object: ObjectKey,
        compressed: bool,
        plain_len: u32,
        payload: Vec<u8>,
        parts: Vec<PlainPart>,
    ) -> Result<(), BusError> {
        let erasure = self
            .erasure
            .filter(|_| matches!(object, ObjectKey::Pack { .. }));
        let msg = PlainChunk {
            schema: SCHEMA_VERSION,
            backup_id: self.backup_id.clone(),
            erasure,
            object,
            networks: self.networks.to_vec(),
            compressed,
            plain_len,
            payload,
            parts,
            data_key: Some(self.key.clone()),
            retain_until: self.retain_until.clone(),
            run: Some(self.run),
        };
        let subject = self.ctx.bus.subjects.seal(self.backup_id);
        self.seal.send(subject, Bytes::from(encode(&msg))).await
    }

    /// A public chunk-list page goes straight to the networks, with its digest
    /// recorded like a sealed object's.
    async fn page(&mut self, page: ChunkListPage) -> Result<(), BusError> {
        let object = ObjectKey::ChunkList {
            backup_id: self.backup_id.clone(),
            page: page.page,
        };
        let payload = cairn_repo::encode_page(&page);
        self.direct(object, payload).await
    }

    /// The backup's wrapped data key goes straight to the networks (it is
    /// already sealed, to the repository's public key), ahead of everything
    /// sealed under it: store writes nothing sealed under a data key to a
    /// network before that key is there.
    async fn data_key(&mut self, dk: &NewDataKey) -> Result<(), BusError> {
        let object = ObjectKey::DataKey { id: KeyId(dk.id.0) };
        self.direct(object, dk.wrapped.clone()).await?;
        self.pipe.flush().await
    }

    /// A dataset's new key, to `to` (the target networks that can delete),
    /// then its public half recorded for the dataset's next backups; all
    /// before this backup's data key, which is wrapped to it.
    async fn dataset_key(
        &mut self,
        dataset: &str,
        public: &cairn_crypto::PublicKey,
        stored: Vec<u8>,
        to: Vec<String>,
    ) -> Result<(), BusError> {
        let fingerprint = KeyId(public.fingerprint());
        self.direct_to(ObjectKey::DatasetKey { id: fingerprint }, stored, &to)
            .await?;
        self.pipe.flush().await?;
        let keyed = cairn_events::DatasetKeyed {
            tag: KeyId(self.ctx.writer.dataset_tag(dataset).0),
            fingerprint,
            public_key: public.to_hex(),
            mac: hex::encode(self.ctx.writer.public_mac(dataset, public)),
        };
        let env = Envelope::new(
            self.ctx.source.clone(),
            self.backup_id.clone(),
            Event::DatasetKeyed(keyed),
            &[public.to_hex().as_bytes()],
        );
        self.ctx.bus.publish_event(&env).await
    }

    /// An object that needs no sealing, onto SEALED with its digest recorded.
    async fn direct(&mut self, object: ObjectKey, payload: Vec<u8>) -> Result<(), BusError> {
        let to = self.networks;
        self.direct_to(object, payload, to).await
    }

    /// As [`direct`](Self::direct), to networks `to` only.
    async fn direct_to(
        &mut self,
        object: ObjectKey,
        payload: Vec<u8>,
        to: &[String],
    ) -> Result<(), BusError> {
        let sha256 = hex::encode(Sha256::digest(&payload));
        let run = layout::of_one_run(&object).then_some(self.run);
        let digest = ObjectDigest {
            object: object.clone(),
            sha256: sha256.clone(),
            len: payload.len() as u64,
            packed: Vec::new(),
            run,
            shards: None,
        };
        let path = layout::object(&object);
        let msg_id = layout::sealed_msg_id(self.backup_id, &path, run.as_ref().map(|r| &r.key));
        let msg = SealedObject {
            schema: SCHEMA_VERSION,
            backup_id: self.backup_id.clone(),
            object,
            networks: to.to_vec(),
            sha256: sha256.clone(),
            payload,
            retain_until: self.retain_until.clone(),
            run,
            erasure: None,
        };
        let env = Envelope::new(
            self.ctx.source.clone(),
            self.backup_id.clone(),
            Event::ObjectSealed(digest),
            &[path.as_bytes(), sha256.as_bytes()],
        );
        self.ctx.bus.publish_event(&env).await?;
        let subject = self.ctx.bus.subjects.sealed(self.backup_id);
        self.pipe
            .publish(subject, msg_id, Bytes::from(encode(&msg)))
            .await
    }
}

/// New chunks compressed together on one blocking thread: a small file's
/// chunk compresses in microseconds, less than handing it to a thread costs.
#[derive(Default)]
struct ToCompress {
    /// Each chunk's id and plaintext length.
    chunks: Vec<(ChunkId, u32)>,
    plains: Vec<Vec<u8>>,
    bytes: usize,
}

/// A batch closes at this much plaintext or this many chunks.
const COMPRESS_BATCH_BYTES: usize = 1 << 20;
const COMPRESS_BATCH_CHUNKS: usize = 64;

impl ToCompress {
    fn push(&mut self, id: ChunkId, plain: Vec<u8>) {
        self.chunks.push((id, plain.len() as u32));
        self.bytes += plain.len();
        self.plains.push(plain);
    }

    fn full(&self) -> bool {
        self.bytes >= COMPRESS_BATCH_BYTES || self.chunks.len() >= COMPRESS_BATCH_CHUNKS
    }

    /// Starts compressing what was gathered; none if nothing was.
    fn start(&mut self, level: i32) -> Option<Compressing> {
        if self.chunks.is_empty() {
            return None;
        }
        let ToCompress { chunks, plains, .. } = std::mem::take(self);
        let done = tokio::task::spawn_blocking(move || {
            plains
                .into_iter()
                .map(|p| cairn_repo::compress(p, level))
                .collect()
        });
        Some(Compressing { chunks, done })
    }
}

/// A batch being compressed: each chunk's id and plaintext length, and
/// (compressed?, payload) for each, in order.
struct Compressing {
    chunks: Vec<(ChunkId, u32)>,
    done: JoinHandle<Vec<(bool, Vec<u8>)>>,
}

/// Sends a compressed batch on, chunk by chunk ([`packed`]).
async fn send_compressed(
    publisher: &mut Publisher<'_>,
    packing: &mut PackBuilder,
    list: &mut ChunkListBuilder,
    batch: Compressing,
) -> Result<(), JobError> {
    let done = batch
        .done
        .await
        .map_err(|e| JobError::Source(e.to_string()))?;
    for ((id, _), (compressed, payload)) in batch.chunks.into_iter().zip(done) {
        packed(publisher, packing, list, id, compressed, payload).await?;
    }
    Ok(())
}

/// Sends a compressed chunk on: alone if it is large
/// ([`PACK_ALONE`](cairn_repo::format::PACK_ALONE)), else into the pack
/// being formed, sending that pack first if the chunk does not fit.
async fn packed(
    publisher: &mut Publisher<'_>,
    packing: &mut PackBuilder,
    list: &mut ChunkListBuilder,
    id: ChunkId,
    compressed: bool,
    payload: Vec<u8>,
) -> Result<(), JobError> {
    let part = PlainPart {
        id,
        compressed,
        payload,
    };
    if part.payload.len() >= cairn_repo::format::PACK_ALONE {
        // In a pack of its own: a pack's name carries its data key, so
        // two backups sealing the same new chunk at once never write
        // different bytes under one name.
        let single = PackBuilder::single(publisher.key.id, part);
        return publisher.pack(single, list).await;
    }
    if !packing.fits(part.payload.len()) {
        if let Some(formed) = packing.take() {
            publisher.pack(formed, list).await?;
        }
    }
    packing.push(part);
    Ok(())
}

/// The key backups of `dataset` wrap their data keys to: the oldest live
/// one the ledger records whose writers' tag holds; `None` when it has
/// none (a new dataset, or one shredded), and the job makes one.
async fn dataset_key(
    ctx: &IngestContext,
    dataset: &str,
) -> Result<Option<cairn_crypto::PublicKey>, JobError> {
    let tag = ctx.writer.dataset_tag(dataset).to_hex();
    for row in cairn_ledger::query::dataset_keys(&ctx.pg, &tag).await? {
        let Ok(public) = cairn_crypto::PublicKey::from_hex(&row.public_key) else {
            tracing::warn!(fingerprint = %row.fingerprint, "dataset key in the ledger is not a public key; passed over");
            continue;
        };
        if hex::encode(ctx.writer.public_mac(dataset, &public)) != row.mac {
            tracing::warn!(fingerprint = %row.fingerprint, "dataset key in the ledger fails the writers' tag; passed over");
            continue;
        }
        return Ok(Some(public));
    }
    Ok(None)
}

/// Whether this writer may write to the repository `repo` describes: it
/// must have a key pair (format 3), and the public key pinned in the
/// writer's own configuration must be the repository's. A config that names
/// another key (a network substituting its own, or a rotation the writer
/// has not been given) stops the backup before a byte moves.
pub fn writes_to(repo: &RepoConfig, writer: &Writer) -> Result<(), JobError> {
    match &repo.public_key {
        None => Err(JobError::Source(format!(
            "repository {} is of format {}, which predates write-only backups: this build restores from it but writes only format {FORMAT} (run `cairn key upgrade` once, with the passphrase)",
            repo.repo_id, repo.format
        ))),
        Some(_) if repo.format < FORMAT => Err(JobError::Source(format!(
            "repository {} is of format {}: this build writes format {FORMAT} (a key pair per dataset, for `cairn shred`) and restores the older backups as they are (run `cairn key upgrade` once, with the passphrase)",
            repo.repo_id, repo.format
        ))),
        Some(k) if *k != writer.public().to_hex() => Err(JobError::Source(format!(
            "repository {}'s config names public key {k}, but this worker's writer file pins {}: refusing to write (was the key rotated? give this worker a new writer file)",
            repo.repo_id,
            writer.public().to_hex()
        ))),
        Some(_) => Ok(()),
    }
}

/// Where a backup goes: its target networks once the quotas had their
/// say, the redundancy verify holds it to, and where quotas turned it away.
pub struct Placed {
    pub networks: Vec<String>,
    pub redundancy: Redundancy,
    pub rerouted: Vec<cairn_events::Reroute>,
}

/// Places `req` before anything is opened or read: its targets resolved,
/// held to the quotas ([`crate::quota`]), and any network that took over a
/// full one judged against its compliance profiles as the first ones were.
pub async fn place(ctx: &IngestContext, req: &BackupRequest) -> Result<Placed, JobError> {
    let (networks, redundancy) = resolve_targets(req, &ctx.networks, &ctx.policies)?;
    // An erasure-coded backup needs all its networks (one shard each): a
    // full one may be replaced by an overflow network, never dropped.
    let keep = match &redundancy {
        Redundancy::Replicate { min_copies } => *min_copies,
        Redundancy::Erasure(e) => e.n,
    };
    let (networks, rerouted) = crate::quota::admit(ctx, req, networks, keep).await?;
    if !rerouted.is_empty() {
        if let Some(reason) = refused_for(ctx, req, &networks, &redundancy) {
            return Err(JobError::Source(reason));
        }
    }
    Ok(Placed {
        networks,
        redundancy,
        rerouted,
    })
}

/// Runs one backup's ingest, to the networks [`place`] chose; returns what
/// `backup.ingested` reported.
pub async fn run(
    ctx: &IngestContext,
    request: &Envelope,
    req: &BackupRequest,
    input: Input,
    counters: Arc<Counters>,
    placed: Placed,
    lease: Option<&cairn_bus::lease::Lease>,
) -> Result<Ingested, JobError> {
    let (backup_id, requested_at) = (&request.backup_id, request.at.as_str());
    let Placed {
        networks,
        redundancy,
        rerouted,
    } = placed;
    writes_to(&ctx.repo, &ctx.writer)?;
    let (parent, reused_at) = match parent_cache(ctx, req, &networks, &redundancy).await? {
        Some((cache, at)) => (Some(cache), at),
        None => (None, ReusedAt::new()),
    };
    let parent_id = parent.as_ref().and_then(|p| p.backup_id.clone());
    let caching = Caching {
        parent,
        record: ctx.files_cache.is_some() && matches!(input, Input::Paths(_)),
    };
    // Batches of up to ~1 MiB of plaintext each (`source::BATCH_BYTES`).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Item>>(PRODUCED_AHEAD);
    // The dataset's key (a new one if it has none): the data key is
    // wrapped to it, and chunk ids are keyed with it (format 4), so no
    // backup deduplicates against another dataset's chunks, or against a
    // shredded key's.
    let (dataset_public, new_dataset_key) = match dataset_key(ctx, &req.dataset).await? {
        Some(public) => (public, None),
        None => {
            let (public, stored) = ctx.writer.new_dataset_key(&req.dataset);
            (public, Some(stored))
        }
    };
    let chunking = ctx.repo.chunking;
    let id_key = ctx
        .writer
        .id_key()
        .for_dataset(&req.dataset, &dataset_public.fingerprint());
    let prod_counters = counters.clone();
    let producer: JoinHandle<Result<source::Produced, SourceError>> =
        tokio::task::spawn_blocking(move || {
            source::produce(input, chunking, &id_key, tx, prod_counters, caching)
        });

    // This backup's own data key: no worker keeps it past the backup, so no
    // worker holds a key to a backup already written.
    let dk = ctx.writer.data_key_to(&dataset_public);
    let key_id = KeyId(dk.id.0);
    // This run is named by its data key, before anything of it is sent:
    // what an earlier run of this backup still sends is passed over.
    let order = match lease {
        Some(lease) => lease.set_run(&key_id.to_hex()).await?.ok_or_else(|| {
            JobError::Bus(BusError::JetStream(format!(
                "lost the lease on backup {backup_id} before its run began"
            )))
        })?,
        None => 0,
    };
    let run = Run { key: key_id, order };
    let started = Envelope::new(
        ctx.source.clone(),
        backup_id.clone(),
        Event::BackupStarted {
            worker: ctx.source.clone(),
            run: Some(run),
        },
        &[&key_id.0],
    );
    ctx.bus.publish_event(&started).await?;
    let retain_until = retain_until(ctx, req, requested_at);
    let mut publisher = Publisher {
        ctx,
        backup_id,
        networks: &networks,
        erasure: redundancy.erasure(),
        retain_until: retain_until.clone(),
        key: SealKey {
            id: key_id,
            key: dk.key.as_bytes().to_vec(),
        },
        run,
        seal: Requests::new(
            ctx.bus.client.clone(),
            PUBLISH_WINDOW,
            std::time::Duration::from_secs(ctx.bus.cfg.ack_wait_secs.max(1)),
        ),
        pipe: Pipeline::new(ctx.bus.js.clone(), PUBLISH_WINDOW),
    };
    let mut list = ChunkListBuilder::new(backup_id.clone());
    let mut compressing: VecDeque<Compressing> = VecDeque::new();
    let mut to_compress = ToCompress::default();
    let mut packing = PackBuilder::new(key_id);
    let mut chunks_new = 0u64;
    let level = ctx.repo.compression_level;

    let consumed: Result<(), JobError> = async {
        if let Some(stored) = new_dataset_key {
            let shreddable = ctx
                .policies
                .get(&req.dataset)
                .and_then(|p| p.shreddable)
                .unwrap_or(true);
            let deleting: Vec<String> = networks
                .iter()
                .filter(|n| !ctx.cannot_erase.contains(n))
                .cloned()
                .collect();
            let to = if deleting.is_empty() || !shreddable {
                networks.clone()
            } else {
                deleting
            };
            publisher
                .dataset_key(&req.dataset, &dataset_public, stored, to)
                .await?;
        }
        publisher.data_key(&dk).await?;
        drop(dk);
        loop {
            let Some(mut buf) = rx.recv().await else {
                break;
            };
            // Ask the chunk index about what the producer has ready besides,
            // up to a bound: one lookup per ~30 small files cost PostgreSQL
            // more to parse and plan than to run.
            let (mut ids_in, mut bytes_in) = weigh(&buf);
            while ids_in < LOOKUP_IDS && bytes_in < LOOKUP_BYTES {
                let Ok(more) = rx.try_recv() else { break };
                let (i, b) = weigh(&more);
                ids_in += i;
                bytes_in += b;
                buf.extend(more);
            }
            // Only the first appearance of a chunk in this backup matters.
            // A reused chunk (files cache) was checked on every target
            // network before the walk began, which found where it is; the
            // others are looked up now.
            let mut fresh: Vec<(ChunkId, Option<Vec<u8>>)> = Vec::with_capacity(buf.len());
            let mut batch_ids = HashSet::new();
            for item in buf.drain(..) {
                match item {
                    Item::Chunk { id, plain, .. } => {
                        if !list.contains(&id) && batch_ids.insert(id) {
                            fresh.push((id, Some(plain)));
                        }
                    }
                    Item::Reused { refs } => {
                        for r in refs {
                            if !list.contains(&r.id) && batch_ids.insert(r.id) {
                                fresh.push((r.id, None));
                            }
                        }
                    }
                }
            }
            if fresh.is_empty() {
                continue;
            }
            let ids: Vec<ChunkId> = fresh
                .iter()
                .filter(|(id, plain)| plain.is_some() || !reused_at.contains_key(id))
                .map(|(id, _)| *id)
                .collect();
            // Up to LOOKUP_IDS ids at once: planned by index whatever the
            // tables' statistics (`cairn_ledger::marks::plan_lookups_by_index`).
            let known = if ids.is_empty() {
                HashMap::new()
            } else {
                dedup_against(&ctx.pg, &ids, &networks, &redundancy).await?
            };
            for (id, plain) in fresh {
                if let Some(loc) = known.get(&id).or_else(|| reused_at.get(&id)) {
                    list.add(id, Some(*loc));
                    cairn_telemetry::metrics::get().reused(1);
                    continue;
                }
                let Some(plain) = plain else {
                    // Held when the walk began, gone now: a collection
                    // swept it. The next attempt reads the file again.
                    return Err(JobError::Collecting(format!(
                        "chunk {id} of an unchanged file is no longer held on every target network ({}); retrying reads the file again",
                        networks.join(", ")
                    )));
                };
                list.add(id, None);
                chunks_new += 1;
                cairn_telemetry::metrics::get().chunk("ingest", plain.len() as u64);
                to_compress.push(id, plain);
                if to_compress.full() {
                    if compressing.len() >= COMPRESS_WINDOW {
                        if let Some(done) = compressing.pop_front() {
                            send_compressed(&mut publisher, &mut packing, &mut list, done)
                                .await?;
                        }
                    }
                    compressing.extend(to_compress.start(level));
                }
            }
            // What this lookup left gathered starts now, not with the next.
            if compressing.len() >= COMPRESS_WINDOW && !to_compress.chunks.is_empty() {
                if let Some(done) = compressing.pop_front() {
                    send_compressed(&mut publisher, &mut packing, &mut list, done).await?;
                }
            }
            compressing.extend(to_compress.start(level));
            for page in list.ready() {
                publisher.page(page).await?;
            }
        }
        while let Some(done) = compressing.pop_front() {
            send_compressed(&mut publisher, &mut packing, &mut list, done).await?;
        }
        if let Some(formed) = packing.take() {
            publisher.pack(formed, &mut list).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = consumed {
        drop(rx);
        let _ = producer.await;
        return Err(e);
    }
    let produced = match producer.await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return Err(JobError::Source(format!("cannot read the source: {e}"))),
        Err(e) => return Err(JobError::Source(format!("source reader crashed: {e}"))),
    };

    let wal = crate::sources::kind_of(&req.source)
        .finish(&produced)
        .map_err(JobError::Source)?;
    let (pages, summary) = list.finish().map_err(|e| JobError::Source(e.to_string()))?;
    for page in pages {
        publisher.page(page).await?;
    }
    let stats = Stats {
        bytes_read: counters.bytes_read.load(Ordering::Relaxed),
        bytes_stored: 0,
        chunks_total: summary.count,
        chunks_new,
        files: counters.files.load(Ordering::Relaxed),
        files_unchanged: counters.files_unchanged.load(Ordering::Relaxed),
        bytes_unchanged: counters.bytes_unchanged.load(Ordering::Relaxed),
    };
    let manifest = Manifest {
        format: FORMAT,
        backup_id: backup_id.clone(),
        dataset: req.dataset.clone(),
        tags: req.tags.clone(),
        source: req.source.clone(),
        requested_at: requested_at.to_string(),
        requested_by: req.requested_by.clone(),
        tree: produced.tree,
        chunk_count: summary.count,
        chunk_pages: summary.pages,
        merkle_root: summary.root.to_vec(),
        stats: stats.clone(),
        networks: networks.clone(),
        redundancy: redundancy.clone(),
        dataset_key: Some(hex::encode(dataset_public.fingerprint())),
        wal: wal.clone(),
        dump_index: produced.dump_index.clone(),
    };
    let (compressed, payload, plain_len) = cairn_repo::encode_manifest(&manifest);
    publisher
        .plain(
            ObjectKey::Manifest {
                backup_id: backup_id.clone(),
            },
            compressed,
            plain_len,
            payload,
        )
        .await?;
    // The catalogue entry last: on a network it says "this backup was
    // written whole", so it follows everything else on SEALED.
    let entry = cairn_repo::catalogue::Entry::of(
        &manifest,
        &cairn_events::now_rfc3339(),
        Some(key_id.to_string()),
    );
    let (compressed, payload, plain_len) = entry.encode();
    publisher
        .plain(
            ObjectKey::Catalogue {
                backup_id: backup_id.clone(),
            },
            compressed,
            plain_len,
            payload,
        )
        .await?;
    // Everything sealed and recorded, every page on SEALED: only now may
    // verify look.
    publisher.seal.flush().await?;
    publisher.pipe.flush().await?;
    let ingested = Ingested {
        stats,
        chunk_pages: summary.pages,
        merkle_root: hex::encode(summary.root),
        networks,
        redundancy,
        data_key: Some(key_id),
        run: Some(run),
        catalogue: true,
        dataset_key: Some(KeyId(dataset_public.fingerprint())),
        wal,
        retain_until,
        rerouted,
    };
    let env = Envelope::new(
        ctx.source.clone(),
        backup_id.clone(),
        Event::BackupIngested(ingested.clone()),
        &[ingested.merkle_root.as_bytes(), &key_id.0],
    );
    ctx.bus.publish_event(&env).await?;
    save_cache(ctx, req, backup_id, produced.cache, parent_id).await;
    Ok(ingested)
}

/// Leaves this backup's files cache for the next one. Failing to is not the
/// backup's failure: the next one reads every file.
async fn save_cache(
    ctx: &IngestContext,
    req: &BackupRequest,
    backup_id: &BackupId,
    cache: files_cache::NewCache,
    parent: Option<BackupId>,
) {
    let Some(store) = ctx.files_cache.clone() else {
        return;
    };
    if cache.is_empty() {
        return;
    }
    let (dataset, id) = (req.dataset.clone(), backup_id.clone());
    let files = cache.len();
    match tokio::task::spawn_blocking(move || store.save(&dataset, &id, cache, parent.as_ref()))
        .await
    {
        Ok(Ok(path)) => tracing::debug!(path = %path.display(), files, "files cache written"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "files cache not written: the next backup reads every file")
        }
        Err(e) => tracing::warn!(error = %e, "files cache writer crashed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_config::DatasetPolicy;
    use cairn_events::Source;
    use std::collections::BTreeMap;

    fn request(dataset: &str, networks: &[&str], min_copies: Option<u32>) -> BackupRequest {
        BackupRequest {
            dataset: dataset.into(),
            tags: vec![],
            source: Source::Paths {
                paths: vec!["/x".into()],
            },
            networks: networks.iter().map(|n| n.to_string()).collect(),
            min_copies,
            requested_by: "t".into(),
            force_read: false,
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn targets_come_from_the_request_then_the_policy_then_every_network() {
        let configured = names(&["a", "b", "c"]);
        let mut policies = BTreeMap::new();
        policies.insert(
            "gov".to_string(),
            DatasetPolicy {
                networks: names(&["b", "c"]),
                min_copies: Some(1),
                ..DatasetPolicy::default()
            },
        );
        let t = |r: &BackupRequest| resolve_targets(r, &configured, &policies).unwrap();
        assert_eq!(
            t(&request("x", &[], None)),
            (configured.clone(), Redundancy::Replicate { min_copies: 3 })
        );
        assert_eq!(
            t(&request("gov", &[], None)),
            (names(&["b", "c"]), Redundancy::Replicate { min_copies: 1 })
        );
        // The request wins over the policy, duplicates are dropped.
        assert_eq!(
            t(&request("gov", &["a", "a"], None)),
            (names(&["a"]), Redundancy::Replicate { min_copies: 1 })
        );
        assert_eq!(
            t(&request("x", &["c", "a"], Some(2))),
            (names(&["c", "a"]), Redundancy::Replicate { min_copies: 2 })
        );
    }

    #[test]
    fn impossible_targets_fail_the_backup_naming_why() {
        let configured = names(&["a", "b"]);
        let none = BTreeMap::new();
        let err = |r: &BackupRequest| match resolve_targets(r, &configured, &none) {
            Err(JobError::Source(reason)) => reason,
            other => panic!("{other:?}"),
        };
        let e = err(&request("x", &["z"], None));
        assert!(
            e.contains("unknown network \"z\"") && e.contains("a, b"),
            "{e}"
        );
        let e = err(&request("x", &["a"], Some(2)));
        assert!(e.contains("min_copies 2 is impossible with 1"), "{e}");
        let e = err(&request("x", &[], Some(0)));
        assert!(e.contains("min_copies 0"), "{e}");
    }
}
