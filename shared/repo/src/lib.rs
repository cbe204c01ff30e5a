//! The repository: Cairn's on-network format and the code that reads it.
//!
//! This is the library core (as rustic_core is to rustic): the CLI, the
//! services and a disaster-recovery tool all use it, and it needs no broker and
//! no database. A repository is self-describing: any one network holding it,
//! plus the passphrase, restores every backup.
//!
//! * [`layout`]: object names → paths.
//! * [`format`]: config, manifest, chunk lists and tree records as stored.
//! * [`tree`], [`chunklist`], [`pack`]: building them during ingest.
//! * [`restore`]: reading a backup back, verified, into a sink.
//! * [`shred`]: destroying one dataset's keys (crypto-shredding).
//! * [`target`]: the restore targets (directory, PostgreSQL, stdout).
//! * [`complete`]: the repository config and key files onto networks added
//!   later.
//! * [`catalogue`]: each backup's sealed catalogue entry, and listing
//!   backups from one network with the key alone.
//! * [`erasure`]: erasure-coded packs (k of n shards, one per network).
//! * [`check`]: comparing stored objects with their digests (no key).
//! * [`recovery`]: surveying a repository to record it in a new ledger.
//! * [`pgtools`]: running `pg_dump` / `pg_restore` with a database's own
//!   credentials.

pub mod catalogue;
pub mod check;
pub mod chunklist;
pub mod complete;
pub mod erasure;
pub mod format;
pub mod keys;
pub mod layout;
pub mod mariadbtools;
pub mod pack;
pub mod password_file;
pub mod pgdata;
pub mod pgdump;
pub mod pgtools;
pub mod recovery;
pub mod restore;
pub mod shred;
pub mod target;
pub mod tree;

pub use keys::{Credentials, KeyInfo, Opened, Rotated, Upgraded};

use bytes::Bytes;
use cairn_crypto::{CryptoError, KdfParams, KeyFile, Keyring, ObjectKind, Sealer, Secret};
use cairn_events::{BackupId, ObjectKey};
use cairn_networks::{DynNetwork, NetworkError, PutMode};
use format::{ChunkListPage, Manifest, RepoConfig, FORMAT};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("repository is not initialised on any configured network ({0}): run `cairn init`")]
    NotInitialised(String),
    #[error("repository already initialised on every configured network ({0})")]
    AlreadyInitialised(String),
    #[error("repository format: {0}")]
    Format(String),
    #[error("backup {0} not found on any network ({1})")]
    BackupNotFound(BackupId, String),
    #[error("{what} could not be read from any network: {errors}")]
    Unavailable { what: String, errors: String },
    #[error("backup {backup}: chunk list does not match the manifest's Merkle root ({detail})")]
    MerkleMismatch { backup: BackupId, detail: String },
    #[error("restore target: {0}")]
    Target(String),
    #[error("no key {0} in this repository")]
    NoSuchKey(String),
    #[error("key {0} is the repository's last key that opens it: add another before removing it")]
    LastKey(String),
    #[error("key {0} was removed from this repository: its passphrase no longer opens it here")]
    KeyRemoved(String),
    #[error("data key {data_key} is wrapped to dataset key {dataset_key}, which no network read holds ({networks}): dataset keys live only on networks that can delete, so name one in the configuration; if none holds it, the dataset was crypto-shredded (`cairn shred`) and what was sealed under it can never be read")]
    Shredded {
        data_key: String,
        dataset_key: String,
        networks: String,
    },
    #[error("restore: {0}")]
    Io(#[from] std::io::Error),
}

/// A network's failure to answer a read in time, as a restore names it.
fn no_answer(network: &str, path: &str, timeout: std::time::Duration) -> String {
    format!(
        "network {network}: {path}: no answer within {:.1} s",
        timeout.as_secs_f64()
    )
}

/// How long a read may take on one network before the next is tried.
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The repository on a set of networks.
#[derive(Clone)]
pub struct Repository {
    networks: Vec<DynNetwork>,
    /// Packs are read as shards first (a backup coded `erasure k/n`), not
    /// whole from one network after another.
    shards_first: bool,
}

pub(crate) fn names(nets: &[DynNetwork]) -> String {
    nets.iter().map(|n| n.name()).collect::<Vec<_>>().join(", ")
}

impl Repository {
    pub fn new(networks: Vec<DynNetwork>) -> Self {
        Repository {
            networks,
            shards_first: false,
        }
    }

    /// The same networks, reading packs as shards first (`yes`): for a
    /// backup whose packs are erasure-coded, where a whole read from one
    /// network would only find that network's shard.
    pub fn shards_first(mut self, yes: bool) -> Self {
        self.shards_first = yes;
        self
    }

    /// Every network of a configuration.
    pub fn open(networks: &[cairn_networks::NetworkConfig]) -> Result<Self, RepoError> {
        let nets = networks
            .iter()
            .map(cairn_networks::open)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Repository::new(nets))
    }

    pub fn networks(&self) -> &[DynNetwork] {
        &self.networks
    }

    /// The same networks, fastest first: each is timed reading the
    /// repository config (a small read, alike on every protocol; up to 5 s);
    /// networks that fail go last, tried only when every other copy failed.
    pub async fn fastest_first(&self) -> Repository {
        let probes = self.networks.iter().map(|n| async move {
            let start = std::time::Instant::now();
            let ok = matches!(
                tokio::time::timeout(std::time::Duration::from_secs(5), n.get(layout::CONFIG))
                    .await,
                Ok(Ok(_))
            );
            (!ok, start.elapsed(), n.clone())
        });
        let mut timed = futures::future::join_all(probes).await;
        timed.sort_by_key(|(down, took, _)| (*down, *took));
        Repository::new(timed.into_iter().map(|(_, _, n)| n).collect())
            .shards_first(self.shards_first)
    }

    pub fn network(&self, name: &str) -> Option<&DynNetwork> {
        self.networks.iter().find(|n| n.name() == name)
    }

    /// Only the named networks (for a backup's targets).
    pub fn subset(&self, names: &[String]) -> Repository {
        Repository::new(
            self.networks
                .iter()
                .filter(|n| names.iter().any(|x| x == n.name()))
                .cloned()
                .collect(),
        )
        .shards_first(self.shards_first)
    }

    /// Creates config and key file on every network. Refuses if any network
    /// already holds a repository.
    pub async fn init(
        &self,
        passphrase: &Secret,
        kdf: KdfParams,
    ) -> Result<(RepoConfig, KeyFile), RepoError> {
        for n in &self.networks {
            if n.exists(layout::CONFIG).await? {
                return Err(RepoError::AlreadyInitialised(n.name().to_string()));
            }
        }
        let now = cairn_events::now_rfc3339();
        let keyring = Keyring::generate();
        let key_file = KeyFile::create(passphrase, kdf, &keyring, &now)?;
        let config = RepoConfig {
            format: FORMAT,
            repo_id: hex::encode(rand::random::<[u8; 16]>()),
            created: now,
            chunking: Default::default(),
            compression_level: 3,
            public_key: keyring.public_key().map(|k| k.to_hex()),
        };
        let cfg_bytes = config.to_bytes();
        for n in &self.networks {
            n.put(
                &layout::key_file(&key_file.key_id),
                Bytes::from(key_file.to_json()),
                PutMode::IfAbsent,
            )
            .await?;
            // The config goes last: its presence means "initialised".
            n.put(layout::CONFIG, cfg_bytes.clone(), PutMode::IfAbsent)
                .await?;
        }
        Ok((config, key_file))
    }

    /// Reads an object from the first network that has it and passes `check`.
    /// Every network's failure is named if none succeeds.
    pub async fn fetch<T>(
        &self,
        path: &str,
        what: &str,
        check: impl FnMut(Bytes) -> Result<T, RepoError>,
    ) -> Result<(T, String), RepoError> {
        self.fetch_within(FETCH_TIMEOUT, path, what, check).await
    }

    /// As `fetch`, giving each network at most `timeout`.
    pub async fn fetch_within<T>(
        &self,
        timeout: std::time::Duration,
        path: &str,
        what: &str,
        check: impl FnMut(Bytes) -> Result<T, RepoError>,
    ) -> Result<(T, String), RepoError> {
        self.fetch_part(timeout, path, None, what, check).await
    }

    /// As `fetch`, reading only `len` bytes at `offset` of the object (one
    /// chunk of a pack).
    pub async fn fetch_range<T>(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        what: &str,
        check: impl FnMut(Bytes) -> Result<T, RepoError>,
    ) -> Result<(T, String), RepoError> {
        self.fetch_part(FETCH_TIMEOUT, path, Some((offset, len)), what, check)
            .await
    }

    /// The whole object, or a range of it, from the first network whose
    /// bytes pass `check`; every network's failure is named otherwise.
    async fn fetch_part<T>(
        &self,
        timeout: std::time::Duration,
        path: &str,
        range: Option<(u64, u64)>,
        what: &str,
        mut check: impl FnMut(Bytes) -> Result<T, RepoError>,
    ) -> Result<(T, String), RepoError> {
        let mut errors = Vec::new();
        for n in &self.networks {
            let read = async {
                match range {
                    None => n.get(path).await,
                    Some((offset, len)) => n.get_range(path, offset, len).await,
                }
            };
            match tokio::time::timeout(timeout, read).await {
                Ok(Ok(bytes)) => match check(bytes) {
                    Ok(v) => return Ok((v, n.name().to_string())),
                    Err(e) => errors.push(format!("network {}: {e}", n.name())),
                },
                Ok(Err(e)) => errors.push(e.to_string()),
                Err(_) => errors.push(no_answer(n.name(), path, timeout)),
            }
        }
        if errors.is_empty() {
            errors.push("no network configured".into());
        }
        Err(RepoError::Unavailable {
            what: what.to_string(),
            errors: errors.join("; "),
        })
    }

    /// A pack, or `range` of it, for `check`: whole from the first network
    /// whose bytes pass, else (or first, for [`shards_first`](Self::shards_first))
    /// rebuilt from shards.
    pub async fn fetch_pack<T>(
        &self,
        path: &str,
        range: Option<(u64, u64)>,
        what: &str,
        mut check: impl FnMut(Bytes) -> Result<T, RepoError>,
    ) -> Result<(T, String), RepoError> {
        let mut errors = Vec::new();
        if !self.shards_first {
            match self
                .fetch_part(FETCH_TIMEOUT, path, range, what, &mut check)
                .await
            {
                Ok(v) => return Ok(v),
                Err(RepoError::Unavailable { errors: e, .. }) => errors.push(e),
                Err(e) => return Err(e),
            }
        }
        self.fetch_rebuilt(path, range, what, check, errors).await
    }

    /// A pack rebuilt from the `k` fastest intact shards (networks asked in
    /// order, `k` at once, one more for each that fails), or read whole
    /// from a network that holds it whole. A shard that fails its hashes is
    /// excluded and named; so is every network that could not help.
    async fn fetch_rebuilt<T>(
        &self,
        path: &str,
        range: Option<(u64, u64)>,
        what: &str,
        mut check: impl FnMut(Bytes) -> Result<T, RepoError>,
        mut errors: Vec<String>,
    ) -> Result<(T, String), RepoError> {
        use futures::stream::{FuturesUnordered, StreamExt};
        let cut = |whole: Bytes| -> Result<Bytes, RepoError> {
            match range {
                None => Ok(whole),
                Some((off, len)) => {
                    let end = off.saturating_add(len);
                    if end > whole.len() as u64 {
                        return Err(RepoError::Format(format!(
                            "{path} is {} bytes; {off}..{end} lies past its end",
                            whole.len()
                        )));
                    }
                    Ok(whole.slice(off as usize..end as usize))
                }
            }
        };
        let mut pending = FuturesUnordered::new();
        let mut next = 0;
        // One read until a shard says how many rebuild the pack.
        let mut need = 1usize;
        let mut shards: Vec<erasure::Shard> = Vec::new();
        let mut from: Vec<String> = Vec::new();
        loop {
            while pending.len() + shards.len() < need && next < self.networks.len() {
                let n = self.networks[next].clone();
                next += 1;
                pending.push(async move {
                    let r = tokio::time::timeout(FETCH_TIMEOUT, n.get(path)).await;
                    (n.name().to_string(), r)
                });
            }
            let Some((name, read)) = pending.next().await else {
                break;
            };
            let bytes = match read {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    errors.push(e.to_string());
                    continue;
                }
                Err(_) => {
                    errors.push(no_answer(&name, path, FETCH_TIMEOUT));
                    continue;
                }
            };
            if !erasure::is_shard(&bytes) {
                match cut(bytes).and_then(&mut check) {
                    Ok(v) => return Ok((v, name)),
                    Err(e) => errors.push(format!("network {name}: {e}")),
                }
                continue;
            }
            match erasure::Shard::parse(&bytes) {
                Ok(s) => {
                    need = need.max(s.k as usize);
                    shards.push(s);
                    from.push(name);
                }
                Err(e) => {
                    errors.push(format!("network {name}: {e} (excluded)"));
                    continue;
                }
            }
            if shards.len() < need {
                continue;
            }
            match erasure::decode(&shards) {
                Ok(whole) => match cut(Bytes::from(whole)).and_then(&mut check) {
                    Ok(v) => return Ok((v, format!("{} (shards)", from.join("+")))),
                    Err(e) => {
                        errors.push(format!("rebuilt from {}: {e}", from.join(", ")));
                        break;
                    }
                },
                // Shards that disagree (another coding, the same shard
                // twice): one more network.
                Err(erasure::ErasureError::TooFew { .. }) => need += 1,
                Err(e) => {
                    errors.push(format!("rebuilt from {}: {e}", from.join(", ")));
                    break;
                }
            }
        }
        if !shards.is_empty() {
            errors.push(match erasure::decode(&shards) {
                Err(e) => format!("shards read from {}: {e}", from.join(", ")),
                Ok(_) => format!("shards read from {}", from.join(", ")),
            });
        }
        if errors.is_empty() {
            errors.push("no network configured".into());
        }
        Err(RepoError::Unavailable {
            what: what.to_string(),
            errors: errors.join("; "),
        })
    }

    /// The repository config from the first network that answers with it
    /// (one surviving network is enough; the others may be down).
    pub async fn config(&self) -> Result<RepoConfig, RepoError> {
        let mut errors = Vec::new();
        for n in &self.networks {
            match n.get(layout::CONFIG).await {
                Ok(bytes) => {
                    let c: RepoConfig = serde_json::from_slice(&bytes)
                        .map_err(|e| RepoError::Format(format!("config on {}: {e}", n.name())))?;
                    if !format::readable(c.format) {
                        return Err(RepoError::Format(format!(
                            "config on {} has format {}, this build reads {} to {FORMAT}",
                            n.name(),
                            c.format,
                            format::OLDEST_FORMAT
                        )));
                    }
                    return Ok(c);
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => errors.push(format!("{}: {e}", n.name())),
            }
        }
        if !errors.is_empty() {
            return Err(RepoError::Unavailable {
                what: "the repository config".into(),
                errors: errors.join("; "),
            });
        }
        Err(RepoError::NotInitialised(names(&self.networks)))
    }

    /// Opens the keyring with the passphrase.
    pub async fn unlock(&self, passphrase: &Secret) -> Result<Keyring, RepoError> {
        self.unlock_with(&keys::Credentials::Passphrase(passphrase.clone()))
            .await
    }

    /// Backups whose manifest any network holds, oldest first (ids are UUIDv7).
    pub async fn list_backups(&self) -> Result<Vec<BackupId>, RepoError> {
        let mut all = std::collections::BTreeSet::new();
        for n in &self.networks {
            for p in n.list(layout::BACKUPS_DIR).await? {
                if let Some(id) = layout::manifest_backup(&p) {
                    all.insert(id);
                }
            }
        }
        Ok(all.into_iter().collect())
    }

    /// The networks holding backup `backup_id`'s manifest. A network that
    /// does not answer is passed over while another holds it.
    pub async fn holders(&self, backup_id: &BackupId) -> Result<Vec<String>, RepoError> {
        let path = layout::object(&ObjectKey::Manifest {
            backup_id: backup_id.clone(),
        });
        let mut holders = Vec::new();
        let mut errors = Vec::new();
        for n in &self.networks {
            match n.exists(&path).await {
                Ok(true) => holders.push(n.name().to_string()),
                Ok(false) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        if holders.is_empty() && !errors.is_empty() {
            return Err(RepoError::Unavailable {
                what: format!("backup {backup_id}"),
                errors: errors.join("; "),
            });
        }
        Ok(holders)
    }

    pub async fn manifest(
        &self,
        sealer: &Sealer,
        backup_id: &BackupId,
    ) -> Result<Manifest, RepoError> {
        let key = ObjectKey::Manifest {
            backup_id: backup_id.clone(),
        };
        let what = layout::describe(&key);
        let result = self
            .fetch_learning(sealer, &layout::object(&key), None, &what, |bytes| {
                open_manifest(sealer, backup_id, &bytes)
            })
            .await;
        match result {
            Ok((m, _)) => Ok(m),
            Err(RepoError::Unavailable { errors, .. })
                if errors.split("; ").all(|e| e.contains("not found")) =>
            {
                Err(RepoError::BackupNotFound(
                    backup_id.clone(),
                    names(&self.networks),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Reads a sealed object (or `range` of it) and opens it with `open`;
    /// when it was sealed under a data key `sealer` does not know yet, learns
    /// that key from its wrapped copy first (format 3: each backup has its
    /// own) and reads again.
    pub async fn fetch_learning<T>(
        &self,
        sealer: &Sealer,
        path: &str,
        range: Option<(u64, u64)>,
        what: &str,
        mut open: impl FnMut(Bytes) -> Result<T, RepoError>,
    ) -> Result<(T, String), RepoError> {
        let mut learnt = false;
        loop {
            let check = |bytes: Bytes| match sealer.missing_key(&bytes) {
                Some(id) if !learnt && sealer.can_learn() => Ok(Err(id)),
                _ => open(bytes).map(Ok),
            };
            let read = if layout::pack_of(path).is_some() {
                self.fetch_pack(path, range, what, check).await?
            } else {
                self.fetch_part(FETCH_TIMEOUT, path, range, what, check)
                    .await?
            };
            match read {
                (Ok(v), network) => return Ok((v, network)),
                (Err(id), _) => {
                    self.learn_data_key(sealer, id).await?;
                    learnt = true;
                }
            }
        }
    }

    /// Teaches `sealer` data key `id`, from the first network whose wrapped
    /// copy opens. A data key wrapped to a dataset's key (format 4) needs
    /// that key first: the datasets' keys are learnt from the networks.
    pub async fn learn_data_key(
        &self,
        sealer: &Sealer,
        id: cairn_crypto::DataKeyId,
    ) -> Result<(), RepoError> {
        let key = ObjectKey::DataKey {
            id: cairn_events::KeyId(id.0),
        };
        let (wrapped, _) = self
            .fetch(&layout::object(&key), &layout::describe(&key), Ok)
            .await?;
        if sealer.can_learn() && !sealer.opens_recipient(&wrapped) {
            if let Some(to) = cairn_crypto::datakey::recipient(&wrapped) {
                // Its dataset's key, by name, from the first network that
                // has one that opens (no listing: a network that hangs is
                // passed over as for any read).
                let key = ObjectKey::DatasetKey {
                    id: cairn_events::KeyId(to),
                };
                let learnt = self
                    .fetch(&layout::object(&key), &layout::describe(&key), |stored| {
                        sealer.learn_dataset_key(&stored).map_err(RepoError::from)
                    })
                    .await;
                match learnt {
                    Ok(_) => {}
                    // Nowhere: kept off these networks, or shredded.
                    Err(RepoError::Unavailable { errors, .. })
                        if errors.split("; ").all(|e| e.contains("not found")) =>
                    {
                        return Err(RepoError::Shredded {
                            data_key: id.to_hex(),
                            dataset_key: hex::encode(to),
                            networks: names(&self.networks),
                        });
                    }
                    // Damaged, or not this repository's: named as it is.
                    Err(e) => return Err(e),
                }
            }
        }
        self.fetch(&layout::object(&key), &layout::describe(&key), |wrapped| {
            sealer.learn(id, &wrapped).map_err(RepoError::from)
        })
        .await
        .map(|_| ())
    }

    /// Every dataset key the networks hold that `sealer` opens (format 4),
    /// by fingerprint: its dataset's tag and its public key. A network that
    /// cannot be listed, or a copy that does not open, is passed over.
    pub async fn dataset_keys(
        &self,
        sealer: &Sealer,
    ) -> std::collections::BTreeMap<[u8; 16], (cairn_crypto::DataKeyId, cairn_crypto::PublicKey)>
    {
        let mut found = std::collections::BTreeMap::new();
        for n in &self.networks {
            let Ok(paths) = n.list(layout::DATASETS_DIR).await else {
                continue;
            };
            for p in paths {
                if let Ok(bytes) = n.get(&p).await {
                    if let Ok((tag, public)) = sealer.learn_dataset_key(&bytes) {
                        found.insert(public.fingerprint(), (tag, public));
                    }
                }
            }
        }
        found
    }

    /// Reads every chunk-list page of `backup_id` (`pages` of them).
    pub async fn chunk_pages(
        &self,
        backup_id: &BackupId,
        pages: u32,
    ) -> Result<Vec<ChunkListPage>, RepoError> {
        self.chunk_pages_within(FETCH_TIMEOUT, backup_id, pages)
            .await
    }

    /// As `chunk_pages`, giving each network at most `timeout` per page.
    pub async fn chunk_pages_within(
        &self,
        timeout: std::time::Duration,
        backup_id: &BackupId,
        pages: u32,
    ) -> Result<Vec<ChunkListPage>, RepoError> {
        let mut out = Vec::with_capacity(pages as usize);
        for page in 0..pages {
            let key = ObjectKey::ChunkList {
                backup_id: backup_id.clone(),
                page,
            };
            let (p, _) = self
                .fetch_within(
                    timeout,
                    &layout::object(&key),
                    &layout::describe(&key),
                    |b| decode_page(backup_id, page, &b),
                )
                .await?;
            out.push(p);
        }
        Ok(out)
    }
}

thread_local! {
    // One zstd context per thread, kept: making one costs about as much as
    // compressing a small file's chunk.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// zstd-compresses `plain` unless that does not make it smaller, in which
/// case `plain` itself comes back (random data is 40% of a typical tree:
/// copying it again cost more than zstd's quick look at it).
pub fn compress(plain: Vec<u8>, level: i32) -> (bool, Vec<u8>) {
    let out = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().map(|(l, _)| *l) != Some(level) {
            *cell = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        let (_, c) = cell.as_mut().expect("just made");
        c.compress(&plain)
    });
    match out {
        Ok(c) if c.len() < plain.len() => (true, c),
        _ => (false, plain),
    }
}

pub fn decompress(
    what: &str,
    compressed: bool,
    payload: Vec<u8>,
    plain_len: usize,
) -> Result<Vec<u8>, RepoError> {
    if !compressed {
        return Ok(payload);
    }
    DECOMPRESSOR
        .with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Some(zstd::bulk::Decompressor::new()?);
            }
            cell.as_mut()
                .expect("just made")
                .decompress(&payload, plain_len.max(1))
        })
        .map_err(|e| RepoError::Format(format!("{what}: zstd: {e}")))
}

/// The manifest as encrypt receives it: (compressed?, payload, plaintext length).
pub fn encode_manifest(m: &Manifest) -> (bool, Vec<u8>, u32) {
    let plain = rmp_serde::to_vec_named(m).expect("manifest serializes");
    let plain_len = plain.len() as u32;
    let (compressed, payload) = compress(plain, 3);
    (compressed, payload, plain_len)
}

pub fn seal_manifest(sealer: &Sealer, m: &Manifest) -> Vec<u8> {
    let (compressed, payload, _) = encode_manifest(m);
    sealer.seal(
        ObjectKind::Manifest,
        compressed,
        m.backup_id.as_str().as_bytes(),
        &payload,
    )
}

/// Largest manifest accepted when decompressing (a manifest lists tree chunks,
/// not data chunks, so it stays small).
const MANIFEST_MAX: usize = 64 << 20;

pub fn open_manifest(
    sealer: &Sealer,
    backup_id: &BackupId,
    sealed: &[u8],
) -> Result<Manifest, RepoError> {
    let what = format!("manifest of backup {backup_id}");
    let o = sealer.open(&what, backup_id.as_str().as_bytes(), sealed)?;
    if o.kind != ObjectKind::Manifest {
        return Err(RepoError::Format(format!("{what}: sealed as a chunk")));
    }
    let plain = decompress(&what, o.compressed, o.payload, MANIFEST_MAX)?;
    let m: Manifest = cairn_events::codec::from_msgpack(&plain)
        .map_err(|e| RepoError::Format(format!("{what}: {e}")))?;
    if !format::readable(m.format) {
        return Err(RepoError::Format(format!(
            "{what}: format {} unsupported",
            m.format
        )));
    }
    if &m.backup_id != backup_id {
        return Err(RepoError::Format(format!(
            "{what}: names backup {}",
            m.backup_id
        )));
    }
    Ok(m)
}

pub fn encode_page(p: &ChunkListPage) -> Vec<u8> {
    rmp_serde::to_vec_named(p).expect("page serializes")
}

pub fn decode_page(
    backup_id: &BackupId,
    page: u32,
    bytes: &[u8],
) -> Result<ChunkListPage, RepoError> {
    let p: ChunkListPage = cairn_events::codec::from_msgpack(bytes).map_err(|e| {
        RepoError::Format(format!("chunk list page {page} of backup {backup_id}: {e}"))
    })?;
    if !format::readable(p.format) {
        return Err(RepoError::Format(format!(
            "chunk list page {page} of backup {backup_id}: format {} unsupported (this build reads {} to {FORMAT})",
            p.format,
            format::OLDEST_FORMAT
        )));
    }
    if &p.backup_id != backup_id || p.page != page {
        return Err(RepoError::Format(format!(
            "chunk list page {page} of backup {backup_id}: header names page {} of backup {}",
            p.page, p.backup_id
        )));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_round_trips_with_a_kept_context_and_leaves_noise_raw() {
        let text = b"the same words again and again, ".repeat(2000);
        for level in [3, 1, 3] {
            let (z, c) = compress(text.clone(), level);
            assert!(z && c.len() < text.len() / 10, "level {level}");
            assert_eq!(decompress("t", z, c, text.len()).unwrap(), text);
        }
        let noise: Vec<u8> = (0..65536u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let (z, c) = compress(noise.clone(), 3);
        if !z {
            assert_eq!(c, noise);
        }
        assert_eq!(decompress("n", z, c, noise.len()).unwrap(), noise);
        // a length smaller than the content is refused, not overrun
        let (z, c) = compress(text.clone(), 3);
        assert!(decompress("short", z, c, 10).is_err());
    }
}
