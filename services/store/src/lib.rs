//! The store stage: one worker per network, each on its own durable consumer
//! of the SEALED stream, so a slow or dead network holds back only itself.
//! Writes are idempotent: a chunk already on the network is not written again
//! (content-addressed), backup metadata is atomically replaced.
//!
//! Nothing sealed under a data key is written to a network before that data
//! key's wrapped copy is there (it travels ahead on SEALED; a pack that
//! overtakes it waits). A chunk on a network is then always readable with
//! the repository's key, so a later backup that deduplicates against it
//! never leans on a chunk whose key was lost with a failed backup.
//!
//! An erasure-coded pack (`erasure` on its message) arrives whole, as
//! every other object; each worker cuts it the same way and writes only its
//! own network's shard (`cairn_repo::erasure`), so SEALED carries a pack
//! once, not once per shard.
//!
//! A worker also makes its network a whole repository: a network added to
//! the configuration after `cairn init` gets the repository config and key
//! files copied from another network when its worker starts.

use cairn_bus::{Bus, BusError, Delivery, Failure, Handler};
use cairn_events::{
    decode, DecodeError, Envelope, Event, KeyId, ObjectDigest, ObjectKey, SealedObject, ShardOf,
    Stage, Stored,
};
use cairn_networks::{DynNetwork, NetworkError, Put, PutMode};
use cairn_repo::{layout, Repository};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Why an object was not stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{object}: payload hashes to {actual}, the message says {claimed}")]
    Digest {
        object: String,
        actual: String,
        claimed: String,
    },
    #[error(
        "network {network} is at its quota ({used} of {quota} bytes, as the ledger counts them; {path} needs {len} more)"
    )]
    Quota {
        network: String,
        used: u64,
        quota: u64,
        path: String,
        len: u64,
    },
    #[error("{object}: its data key {key} is not on network {network} yet; waiting for it")]
    KeyNotYet {
        object: String,
        key: String,
        network: String,
    },
    #[error("{object}: cannot cut its shard for network {network}: {why}")]
    Shard {
        object: String,
        network: String,
        why: String,
    },
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("the ledger, asked what network {network} holds against its quota: {detail}")]
    Ledger { network: String, detail: String },
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Decode(_) | StoreError::Digest { .. } | StoreError::Shard { .. } => {
                Failure::permanent(e)
            }
            // Space may be freed, the network may come back.
            StoreError::Quota { .. }
            | StoreError::Ledger { .. }
            | StoreError::KeyNotYet { .. }
            | StoreError::Network(_)
            | StoreError::Bus(_) => Failure::retry(e),
        }
    }
}

/// A network's `quota_bytes`, held against the ledger's count of what the
/// network holds: the same count for every replica and every process, that
/// forget and the collector lower.
pub struct Quota {
    pub bytes: u64,
    /// The ledger, read as `cairn_reader`.
    pub ledger: cairn_ledger::PostgresConfig,
}

/// What this worker wrote that the ledger may not have recorded yet.
#[derive(Default)]
struct Unrecorded {
    /// The ledger connection (made at the first write that needs it).
    client: Option<tokio_postgres::Client>,
    /// The ledger's count when last asked, and when.
    ledger: Option<(u64, std::time::Instant)>,
    /// Path → (bytes, when), written since and not yet seen in the ledger.
    written: std::collections::HashMap<String, (u64, std::time::Instant)>,
}

/// How long a write of this worker is counted on top of the ledger's
/// figure while the ledger does not show it: it records a write within
/// seconds, so one it never shows failed to be recorded or was deleted
/// since.
const UNRECORDED_FOR: Duration = Duration::from_secs(600);

/// How long a count of the ledger serves before it is asked again.
const LEDGER_FRESH: Duration = Duration::from_secs(1);

pub struct StoreWorker {
    pub bus: Bus,
    pub network: DynNetwork,
    /// `quota_bytes` of the network, if any.
    pub quota: Option<Quota>,
    unrecorded: tokio::sync::Mutex<Unrecorded>,
    /// Data keys known to be on the network.
    keys_here: std::sync::Mutex<HashSet<[u8; 16]>>,
    /// Data keys this worker is storing right now.
    keys_storing: std::sync::Mutex<HashSet<[u8; 16]>>,
    /// Every configured network: where a dataset's key is copied from.
    repo: Option<Repository>,
    /// Dataset keys (fingerprints) known to be on the network.
    datasets_here: std::sync::Mutex<HashSet<[u8; 16]>>,
}

impl StoreWorker {
    pub fn new(bus: Bus, network: DynNetwork, quota: Option<Quota>) -> Self {
        StoreWorker {
            bus,
            network,
            quota,
            unrecorded: Default::default(),
            keys_here: Default::default(),
            keys_storing: Default::default(),
            repo: None,
            datasets_here: Default::default(),
        }
    }

    /// Copies dataset keys onto this network from `repo`'s other networks
    /// when a data key wrapped to one arrives before it (a network added
    /// to the dataset's targets after its key was made).
    pub fn with_repo(mut self, repo: Repository) -> Self {
        self.repo = Some(repo);
        self
    }

    /// A data key wrapped to a dataset's key (format 4) is written to a
    /// network that can delete only once that dataset key is there: copied
    /// from another network if need be, waited for if none has it yet. A
    /// network that cannot delete gets dataset keys only from ingest (for a
    /// dataset that is not shreddable), never by copy.
    async fn dataset_key_is_here(&self, obj: &SealedObject) -> Result<(), StoreError> {
        if !matches!(obj.object, ObjectKey::DataKey { .. })
            || !self.network.capabilities().can_delete
            || self.network.locks()
        {
            return Ok(());
        }
        let Some(to) = cairn_crypto::datakey::recipient(&obj.payload) else {
            return Ok(());
        };
        // Usually this worker is storing that dataset key this very moment
        // (ingest sends it just before): wait for it here, without asking
        // the network.
        for _ in 0..8 {
            if self.datasets_here.lock().expect("lock").contains(&to) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(125)).await;
        }
        let path = layout::object(&ObjectKey::DatasetKey { id: KeyId(to) });
        if !self.network.exists(&path).await? {
            // Wrapped to the repository's own key (format 3): no dataset key.
            let own = Repository::new(vec![self.network.clone()])
                .config()
                .await
                .ok()
                .and_then(|c| c.public_key)
                .and_then(|k| cairn_crypto::PublicKey::from_hex(&k).ok());
            if own.is_some_and(|k| k.fingerprint() == to) {
                self.datasets_here.lock().expect("lock").insert(to);
                return Ok(());
            }
            // Ask the other networks briefly, so that one that is away
            // holds nothing up.
            let copy = match &self.repo {
                Some(repo) => {
                    let others: Vec<String> = repo
                        .networks()
                        .iter()
                        .map(|n| n.name().to_string())
                        .filter(|n| n != self.network.name())
                        .collect();
                    repo.subset(&others)
                        .fetch_within(Duration::from_secs(2), &path, "dataset key", Ok)
                        .await
                        .ok()
                }
                None => None,
            };
            let Some((bytes, from)) = copy else {
                return Err(StoreError::KeyNotYet {
                    object: layout::describe(&obj.object),
                    key: format!("dataset key {}", hex::encode(to)),
                    network: self.network.name().to_string(),
                });
            };
            let sha256 = hex::encode(Sha256::digest(&bytes));
            let len = bytes.len() as u64;
            let put = self.network.put(&path, bytes, PutMode::IfAbsent).await?;
            tracing::info!(network = %self.network.name(), %from, %path, "dataset key copied");
            // Recorded like any object on the network (what it holds is
            // counted from the ledger).
            let name = self.network.name();
            let env = Envelope::new(
                Stage::Store.label(Some(name)),
                obj.backup_id.clone(),
                Event::ObjectStored(Stored {
                    network: name.to_string(),
                    digest: ObjectDigest {
                        object: ObjectKey::DatasetKey { id: KeyId(to) },
                        sha256: sha256.clone(),
                        len,
                        packed: Vec::new(),
                        run: None,
                        shards: None,
                    },
                    existed: put == Put::Existed,
                    shard: None,
                }),
                &[name.as_bytes(), path.as_bytes(), sha256.as_bytes()],
            );
            self.bus.publish_event(&env).await?;
        }
        self.datasets_here.lock().expect("lock").insert(to);
        Ok(())
    }

    /// Holds back an object sealed under a data key the network does not
    /// hold yet.
    async fn key_is_here(&self, obj: &SealedObject) -> Result<(), StoreError> {
        let key = match &obj.object {
            ObjectKey::DataKey { .. }
            | ObjectKey::DatasetKey { .. }
            | ObjectKey::ChunkList { .. } => return Ok(()),
            _ => match cairn_crypto::seal::key_id_of(&obj.payload) {
                Some(k) => k,
                // Not a sealed object: its reader will say so.
                None => return Ok(()),
            },
        };
        // Its data key is often being stored by this worker this very
        // moment (ingest sends it first): wait for that rather than be sent
        // back to the queue for a redelivery.
        for _ in 0..80 {
            if self.keys_here.lock().expect("lock").contains(&key.0) {
                return Ok(());
            }
            if !self.keys_storing.lock().expect("lock").contains(&key.0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if self.keys_here.lock().expect("lock").contains(&key.0) {
            return Ok(());
        }
        let path = layout::object(&ObjectKey::DataKey { id: KeyId(key.0) });
        if self.network.exists(&path).await? {
            self.keys_here.lock().expect("lock").insert(key.0);
            return Ok(());
        }
        Err(StoreError::KeyNotYet {
            object: layout::describe(&obj.object),
            key: key.to_hex(),
            network: self.network.name().to_string(),
        })
    }

    /// Refuses a write that would take the network past its quota: what
    /// the ledger counts on it, plus what this worker wrote that the
    /// ledger has not recorded yet. An object already there costs nothing.
    async fn within_quota(&self, path: &str, len: u64) -> Result<(), StoreError> {
        let Some(q) = &self.quota else {
            return Ok(());
        };
        let name = self.network.name();
        let ledger = |detail: String| StoreError::Ledger {
            network: name.to_string(),
            detail,
        };
        let mut guard = self.unrecorded.lock().await;
        let u = &mut *guard;
        // A connection PostgreSQL dropped is made again.
        if u.client.as_ref().is_none_or(|c| c.is_closed()) {
            u.client = Some(
                cairn_ledger::db::connect_as(&q.ledger, cairn_ledger::Role::Reader)
                    .await
                    .map_err(|e| ledger(e.to_string()))?,
            );
        }
        let pg = u.client.as_ref().expect("connected above");
        let mut fresh = false;
        loop {
            let stale = u.ledger.is_none_or(|(_, at)| at.elapsed() >= LEDGER_FRESH);
            if stale || fresh {
                // The count and which of our writes it already holds.
                let mine: Vec<String> = u.written.keys().cloned().collect();
                let (count, counted) = cairn_ledger::usage::used_and_counted(pg, name, &mine)
                    .await
                    .map_err(|e| ledger(e.to_string()))?;
                for p in counted {
                    u.written.remove(&p);
                }
                u.written.retain(|_, (_, at)| at.elapsed() < UNRECORDED_FOR);
                u.ledger = Some((count, std::time::Instant::now()));
            }
            let used = u.ledger.map(|(b, _)| b).unwrap_or(0)
                + u.written.values().map(|(len, _)| len).sum::<u64>();
            if used + len <= q.bytes || u.written.contains_key(path) {
                break;
            }
            if !fresh {
                // About to refuse: on a count taken now, not a second ago.
                fresh = true;
                continue;
            }
            if cairn_ledger::usage::holds(pg, name, path)
                .await
                .map_err(|e| ledger(e.to_string()))?
                || self.network.exists(path).await?
            {
                return Ok(());
            }
            return Err(StoreError::Quota {
                network: name.to_string(),
                used,
                quota: q.bytes,
                path: path.to_string(),
                len,
            });
        }
        u.written
            .insert(path.to_string(), (len, std::time::Instant::now()));
        Ok(())
    }

    /// A write `within_quota` counted did not happen.
    async fn not_written(&self, path: &str) {
        if self.quota.is_some() {
            self.unrecorded.lock().await.written.remove(path);
        }
    }

    /// This network's shard of an erasure-coded pack (shard `i` for the
    /// message's `i`-th network), or None to store the object whole.
    async fn shard_of(&self, obj: &SealedObject) -> Result<Option<(Vec<u8>, ShardOf)>, StoreError> {
        let (Some(e), ObjectKey::Pack { .. }) = (obj.erasure, &obj.object) else {
            return Ok(None);
        };
        let name = self.network.name();
        let bad = |why: String| StoreError::Shard {
            object: layout::describe(&obj.object),
            network: name.to_string(),
            why,
        };
        let index = obj
            .networks
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| bad("not one of its networks".into()))?;
        if e.n as usize != obj.networks.len() {
            return Err(bad(format!("{e} over {} networks", obj.networks.len())));
        }
        let sealed = obj.payload.clone();
        let files =
            tokio::task::spawn_blocking(move || cairn_repo::erasure::encode(&sealed, e.k, e.n))
                .await
                .map_err(|e| bad(e.to_string()))?
                .map_err(|e| bad(e.to_string()))?;
        let file = files
            .into_iter()
            .nth(index)
            .ok_or_else(|| bad(format!("no shard {index}")))?;
        Ok(Some((
            file,
            ShardOf {
                index: index as u32,
                k: e.k,
                n: e.n,
            },
        )))
    }

    /// What the network holds at `path`, where this worker found a pack it
    /// was to write a shard of: the same shard (nothing to say), the whole
    /// pack, or (never by Cairn's own placement) another shard.
    async fn held(
        &self,
        path: &str,
        mine: ShardOf,
        shard: (String, u64),
        whole: (String, u64),
    ) -> Result<(String, u64, Option<ShardOf>), StoreError> {
        let head = self.network.get_range(path, 0, 8).await?;
        if !cairn_repo::erasure::is_shard(&head) {
            return Ok((whole.0, whole.1, None));
        }
        if head[7] as u32 == mine.index {
            return Ok((shard.0, shard.1, Some(mine)));
        }
        let there = self.network.get(path).await?;
        let sha = hex::encode(Sha256::digest(&there));
        tracing::warn!(network = %self.network.name(), %path, index = head[7], want = mine.index, "the network holds another shard of this pack; recorded as it is");
        Ok((
            sha,
            there.len() as u64,
            Some(ShardOf {
                index: head[7] as u32,
                k: head[5] as u32,
                n: head[6] as u32,
            }),
        ))
    }

    async fn store(&self, d: &Delivery) -> Result<(), StoreError> {
        let obj: SealedObject = decode(&d.payload, "sealed object")?;
        let name = self.network.name().to_string();
        if !obj.networks.contains(&name) {
            return Ok(()); // another network's copy
        }
        let path = layout::object(&obj.object);
        if obj.run.is_some() {
            let current = cairn_bus::runs::current(&self.bus, &obj.backup_id).await?;
            if cairn_bus::runs::not_current(current.as_ref(), obj.run.as_ref()) {
                tracing::info!(network = %name, %path, "of a run this backup's ingest no longer counts; not written");
                return Ok(());
            }
        }
        let actual = hex::encode(Sha256::digest(&obj.payload));
        if actual != obj.sha256 {
            return Err(StoreError::Digest {
                object: layout::describe(&obj.object),
                actual,
                claimed: obj.sha256,
            });
        }
        let len = obj.payload.len() as u64;
        let storing = match &obj.object {
            ObjectKey::DataKey { id } => {
                self.keys_storing.lock().expect("lock").insert(id.0);
                Some(id.0)
            }
            _ => None,
        };
        let ready = async {
            self.key_is_here(&obj).await?;
            self.dataset_key_is_here(&obj).await
        }
        .await;
        if let Some(id) = storing {
            if ready.is_err() {
                self.keys_storing.lock().expect("lock").remove(&id);
            }
        }
        ready?;
        // An erasure-coded pack: this network gets its one shard.
        let whole = (obj.sha256.clone(), len);
        let (payload, sha256, len, shard) = match self.shard_of(&obj).await? {
            Some((file, shard)) => {
                let sha = hex::encode(Sha256::digest(&file));
                let len = file.len() as u64;
                (file, sha, len, Some(shard))
            }
            None => (obj.payload, obj.sha256.clone(), len, None),
        };
        self.within_quota(&path, len).await?;
        // A compliance rule's retention: where this network locks objects,
        // it locks this one at least that long.
        let until = obj
            .retain_until
            .as_deref()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(std::time::SystemTime::from);
        let put = match self
            .network
            .put_until(&path, payload.into(), layout::put_mode(&obj.object), until)
            .await
        {
            Ok(put) => put,
            Err(e) => {
                self.not_written(&path).await;
                return Err(e.into());
            }
        };
        match &obj.object {
            ObjectKey::DataKey { id } => {
                self.keys_here.lock().expect("lock").insert(id.0);
                self.keys_storing.lock().expect("lock").remove(&id.0);
            }
            ObjectKey::DatasetKey { id } => {
                self.datasets_here.lock().expect("lock").insert(id.0);
            }
            _ => {}
        }
        if put == Put::Written {
            cairn_telemetry::metrics::get().chunk(&Stage::Store.label(Some(&name)), len);
        }
        // A pack found already there is recorded as what the network holds.
        let (sha256, len, shard) = match (put, shard) {
            (Put::Existed, Some(mine)) => self.held(&path, mine, (sha256, len), whole).await?,
            (_, shard) => (sha256, len, shard),
        };
        tracing::debug!(network = %name, %path, seq = d.stream_sequence, deliveries = d.deliveries, "written; recording it");
        let env = Envelope::new(
            Stage::Store.label(Some(&name)),
            obj.backup_id,
            Event::ObjectStored(Stored {
                network: name.clone(),
                digest: ObjectDigest {
                    object: obj.object,
                    sha256: sha256.clone(),
                    len,
                    packed: Vec::new(),
                    run: obj.run,
                    shards: None,
                },
                existed: put == Put::Existed,
                shard,
            }),
            &[name.as_bytes(), path.as_bytes(), sha256.as_bytes()],
        );
        Ok(self.bus.publish_event(&env).await?)
    }
}

#[async_trait::async_trait]
impl Handler for StoreWorker {
    async fn handle(&self, d: &Delivery) -> Result<(), Failure> {
        Ok(self.store(d).await?)
    }
}

/// Copies the repository config and key files onto `network` if it lacks
/// them, from the other networks of `repo`; tries again every `every` while
/// it cannot (its network or every other one away).
async fn complete_repository(repo: Repository, network: DynNetwork, every: Duration) {
    loop {
        match repo.complete_on(&network).await {
            Ok(written) if written.is_empty() => return,
            Ok(written) => {
                tracing::info!(network = network.name(), files = ?written, "copied the repository config and key files to the network");
                return;
            }
            Err(e) => {
                tracing::warn!(network = network.name(), error = %e, "cannot make the network a whole repository yet (no config or key files there)");
                tokio::time::sleep(every).await;
            }
        }
    }
}

/// Runs the store worker of one network until the process stops. `repo`
/// is every configured network (where the repository files come from).
pub async fn run(
    bus: Bus,
    repo: Repository,
    network: DynNetwork,
    quota: Option<Quota>,
    concurrency: usize,
) -> Result<(), BusError> {
    let name = network.name().to_string();
    tokio::spawn(complete_repository(
        repo.clone(),
        network.clone(),
        Duration::from_secs(30),
    ));
    let worker = Arc::new(StoreWorker::new(bus.clone(), network, quota).with_repo(repo));
    cairn_bus::worker::run(bus, Stage::Store, Some(&name), concurrency, worker).await
}
