//! Health and repair of stored backups, without the key: compare the
//! ciphertext on each network with the digests the ledger recorded at
//! sealing, those digests with the sealed Merkle root recorded when the
//! backup was verified (`rs_merkle` inclusion proofs for sampled chunks), and
//! put back what a network lost from any intact copy. `cairn health`,
//! `cairn repair` and the automatic repair loop (`auto_repair`, run by
//! `cairn serve repair`) all use this.
//!
//! * [`health`]: the typed report `cairn health` prints.
//! * [`repair`]: copying what is missing, once or on a timer.
//! * [`lock`]: legal holds on the objects, where networks lock them.
//! * [`migrate`]: a backup moved to its compliance archive, resumably.

pub mod health;
pub mod lock;
pub mod migrate;
pub mod repair;

pub use health::{health, Health, HealthReport};
pub use repair::{auto_repair, repair_backup, replace_network, Repaired, Replace};

use crate::{sealed_leaves, BackupObjects};
use cairn_bus::Bus;
use cairn_crypto::merkle::{leaf_hash, Rfc6962};
use cairn_events::{BackupId, Envelope, Event, ObjectDigest, ObjectKey, Outcome, ShardOf, Stored};
use cairn_networks::DynNetwork;
use cairn_repo::check::Expected;
use cairn_repo::{layout, RepoError, Repository};
use sha2::{Digest, Sha256};

/// Why a backup's copies could not be looked at.
#[derive(Debug, thiserror::Error)]
pub enum CareError {
    #[error("backup {0} not found in the ledger")]
    NotInLedger(BackupId),
    #[error("backup {0} was forgotten")]
    Forgotten(BackupId),
    #[error("backup {id} was stored on network {network:?}, which is not configured here")]
    NotConfigured { id: BackupId, network: String },
    #[error("backup {id} is not on network {network:?} (its networks: {networks:?}): nothing to replace")]
    NotOn {
        id: BackupId,
        network: String,
        networks: Vec<String>,
    },
    #[error("backup {id} is on network {network:?} already: a network cannot stand in for another of the same backup")]
    AlreadyOn { id: BackupId, network: String },
    #[error("no network holds the chunk list of backup {0}")]
    NoChunkList(BackupId),
    #[error("the ledger holds no digest for {missing} objects of backup {id}: was it verified?")]
    NoDigests { id: BackupId, missing: usize },
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Network(#[from] cairn_networks::NetworkError),
    #[error(transparent)]
    Bus(#[from] cairn_bus::BusError),
}

/// What the ledger and the networks say a backup consists of.
pub struct Backup {
    pub id: BackupId,
    pub targets: Repository,
    pub objects: BackupObjects,
    pub expected: Vec<Expected>,
    pub lens: Vec<u64>,
    pub sealed_root: String,
    pub outcome: Option<Outcome>,
    /// Until when a compliance rule keeps it (RFC 3339, from its
    /// `backup.ingested`): networks that lock objects lock its objects that
    /// long.
    pub retain_until: Option<String>,
    /// Its dataset, as the ledger records it.
    pub dataset: String,
    /// The dataset key its data key is wrapped to (format 4), by
    /// fingerprint, from its `backup.ingested`.
    pub dataset_key: Option<cairn_events::KeyId>,
    /// Its target networks in order: for an erasure-coded backup, network
    /// `i` holds shard `i` of each of its packs.
    pub order: Vec<String>,
    /// Each erasure-coded pack among its objects: path → its shard files.
    pub shards: std::collections::HashMap<String, cairn_ledger::query::ShardFiles>,
}

impl Backup {
    /// What `network` must hold of each object: of an erasure-coded pack,
    /// its own shard; of anything else, the object.
    pub fn expected_on(&self, network: &str) -> Vec<Expected> {
        self.expected
            .iter()
            .map(|e| match self.shard_on(&e.path, network) {
                Some((_, sha, _)) => Expected {
                    path: e.path.clone(),
                    sha256: sha,
                },
                None => e.clone(),
            })
            .collect()
    }

    /// The shard of pack `path` that `network` holds, if the pack is
    /// erasure-coded: which it is, its digest and length.
    pub fn shard_on(&self, path: &str, network: &str) -> Option<(ShardOf, String, u64)> {
        let files = self.shards.get(path)?;
        let index = self.order.iter().position(|n| n == network)?;
        let (sha, len) = files.files.get(index)?.clone();
        Some((
            ShardOf {
                index: index as u32,
                k: files.k,
                n: files.files.len() as u32,
            },
            sha,
            len,
        ))
    }
}

/// Backup `id` as the ledger recorded it, on its target networks among
/// `repo` (every configured network).
pub async fn load(
    repo: &Repository,
    pg: &tokio_postgres::Client,
    id: &BackupId,
) -> Result<Backup, CareError> {
    load_as(repo, pg, id, None).await
}

/// [`load`], with `replace.to` in the place of `replace.from` among its
/// networks (which then need not be configured any more): what the
/// backup is to look like once moved.
pub(crate) async fn load_as(
    repo: &Repository,
    pg: &tokio_postgres::Client,
    id: &BackupId,
    replace: Option<&Replace>,
) -> Result<Backup, CareError> {
    let row = cairn_ledger::query::backup(pg, id.as_str())
        .await?
        .ok_or_else(|| CareError::NotInLedger(id.clone()))?;
    if row.status == "forgotten" {
        return Err(CareError::Forgotten(id.clone()));
    }
    let mut networks = row.networks.clone();
    if let Some(r) = replace {
        let Some(at) = networks.iter().position(|n| *n == r.from) else {
            return Err(CareError::NotOn {
                id: id.clone(),
                network: r.from.clone(),
                networks,
            });
        };
        if networks.contains(&r.to) {
            return Err(CareError::AlreadyOn {
                id: id.clone(),
                network: r.to.clone(),
            });
        }
        networks[at] = r.to.clone();
    }
    let targets = if networks.is_empty() {
        repo.clone()
    } else {
        if let Some(n) = networks.iter().find(|n| repo.network(n).is_none()) {
            return Err(CareError::NotConfigured {
                id: id.clone(),
                network: n.clone(),
            });
        }
        repo.subset(&networks)
    };
    // Page count: the highest page any network holds.
    let mut pages = 0u32;
    for n in targets.networks() {
        if let Ok(list) = n.list(&layout::backup_dir(id)).await {
            for p in list {
                if let Some(k) = layout::chunk_list_page(&p) {
                    pages = pages.max(k + 1);
                }
            }
        }
    }
    if pages == 0 {
        return Err(CareError::NoChunkList(id.clone()));
    }
    let page_data = targets.chunk_pages(id, pages).await?;
    // The backup's data key (format 3), named in its sealed manifest's
    // header: its wrapped copy is one of the backup's objects. A manifest
    // that cannot be read is reported as such below.
    let manifest = layout::object(&cairn_events::ObjectKey::Manifest {
        backup_id: id.clone(),
    });
    let data_key = targets
        .fetch_range(&manifest, 0, 24, "the manifest's header", |b| {
            Ok(cairn_crypto::seal::key_id_of_header(&b))
        })
        .await
        .ok()
        .and_then(|(k, _)| k)
        .map(|k| cairn_events::KeyId(k.0));
    // Format 2 sealed with the keyring's own data key, which has no wrapped
    // copy: only a key whose copy the ledger recorded is one of the objects.
    let data_key = match data_key {
        Some(id) => {
            let path = layout::object(&cairn_events::ObjectKey::DataKey { id });
            let known = cairn_ledger::query::digests(pg, std::slice::from_ref(&path)).await?;
            known.contains_key(&path).then_some(id)
        }
        None => None,
    };
    // Likewise a catalogue entry (backups written before it had none).
    let catalogue = layout::object(&cairn_events::ObjectKey::Catalogue {
        backup_id: id.clone(),
    });
    let has_catalogue = cairn_ledger::query::digests(pg, std::slice::from_ref(&catalogue))
        .await?
        .contains_key(&catalogue);
    let objects = BackupObjects::of(id, &page_data, data_key, has_catalogue)
        .map_err(|e| CareError::Repo(RepoError::Format(e)))?;
    let paths = objects.paths();
    let digests = cairn_ledger::query::digests(pg, &paths).await?;
    let missing = paths.iter().filter(|p| !digests.contains_key(*p)).count();
    if missing > 0 {
        return Err(CareError::NoDigests {
            id: id.clone(),
            missing,
        });
    }
    let mut expected = Vec::with_capacity(paths.len());
    let mut lens = Vec::with_capacity(paths.len());
    for p in &paths {
        if let Some((sha256, len)) = digests.get(p) {
            expected.push(Expected {
                path: p.clone(),
                sha256: sha256.clone(),
            });
            lens.push(*len);
        }
    }
    let data_paths: Vec<String> = paths[..objects.chunk_count].to_vec();
    let shards = cairn_ledger::query::shard_digests(pg, &data_paths).await?;
    let outcome = row.outcome.clone();
    let mut retain_until = None;
    let mut dataset_key = None;
    if let Some(r) = pg
        .query_opt(
            "SELECT entry FROM ledger_entries WHERE backup_id = $1 AND kind = 'backup.ingested' ORDER BY seq DESC LIMIT 1",
            &[&id.as_str()],
        )
        .await?
    {
        if let Ok(env) = cairn_events::decode::<cairn_events::Envelope>(&r.get::<_, Vec<u8>>(0), "entry") {
            if let cairn_events::Event::BackupIngested(i) = env.event {
                retain_until = i.retain_until;
                dataset_key = i.dataset_key;
            }
        }
    }
    Ok(Backup {
        retain_until,
        dataset_key,
        dataset: row.dataset.clone(),
        order: networks,
        shards,
        id: id.clone(),
        targets,
        expected,
        lens,
        sealed_root: outcome
            .as_ref()
            .map(|o| o.sealed_root.clone())
            .unwrap_or_default(),
        outcome,
        objects,
    })
}

/// Checks the digests against the recorded sealed root; returns whether
/// they match it and how many inclusion proofs hold, of the first chunk of
/// each sampled data object.
pub fn merkle_check(b: &Backup, sample: &[usize]) -> (bool, usize) {
    let sample = b.objects.first_chunks(sample);
    let leaves: Vec<[u8; 32]> = sealed_leaves(&b.objects, |i| b.expected[i].sha256.clone())
        .iter()
        .map(|l| leaf_hash(l))
        .collect();
    let tree = rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&leaves);
    let Some(root) = tree.root() else {
        return (
            b.sealed_root.is_empty()
                || b.sealed_root == hex::encode(cairn_crypto::merkle::empty_root()),
            0,
        );
    };
    let matches = hex::encode(root) == b.sealed_root;
    let proven = sample
        .iter()
        .filter(|&&i| i < leaves.len())
        .filter(|&&i| {
            tree.proof(&[i])
                .verify(root, &[i], &[leaves[i]], leaves.len())
        })
        .count();
    (matches, proven)
}

/// `object.stored` of `object` on network `to`, copied there by `by` (for
/// `why`: migrate, replace), a whole object, never a shard: the same id
/// however often it is recorded (the ledger keeps the first).
#[allow(clippy::too_many_arguments)]
pub(crate) fn stored(
    why: &[u8],
    by: &str,
    id: &BackupId,
    to: &str,
    object: &ObjectKey,
    sha256: &str,
    len: u64,
    existed: bool,
) -> Envelope {
    let path = layout::object(object);
    Envelope::new(
        by.to_string(),
        id.clone(),
        Event::ObjectStored(Stored {
            network: to.to_string(),
            digest: ObjectDigest {
                object: object.clone(),
                sha256: sha256.to_string(),
                len,
                packed: Vec::new(),
                run: None,
                shards: None,
            },
            existed,
            shard: None,
        }),
        &[why, to.as_bytes(), path.as_bytes()],
    )
}

/// What became of a backup's dataset key on a network it was copied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyCopy {
    /// Not copied: the network cannot delete and the dataset is
    /// shreddable, so a shred could not destroy it there.
    Kept,
    There,
    Copied,
    /// No source holds it as the ledger recorded it (its path).
    NoSource(String),
}

/// Copies dataset key `key` onto `target`, where it may go, from the first
/// of `sources` whose copy hashes as the ledger recorded it, and records it
/// there. A network that locks what it holds gets the key all the same:
/// the backup is to be restorable from it, and a shred finds and names a
/// key kept past its lock.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn copy_dataset_key(
    why: &[u8],
    pg: &tokio_postgres::Client,
    bus: &Bus,
    id: &BackupId,
    by: &str,
    key: cairn_events::KeyId,
    sources: &[DynNetwork],
    target: &DynNetwork,
    shreddable: bool,
) -> Result<KeyCopy, CareError> {
    let object = ObjectKey::DatasetKey { id: key };
    let path = layout::object(&object);
    if !target.capabilities().can_delete && shreddable {
        return Ok(KeyCopy::Kept);
    }
    if target.exists(&path).await? {
        return Ok(KeyCopy::There);
    }
    let digest = cairn_ledger::query::digests(pg, std::slice::from_ref(&path)).await?;
    let Some((sha, _)) = digest.get(&path) else {
        return Ok(KeyCopy::NoSource(path));
    };
    for src in sources {
        let Ok(bytes) = src.get(&path).await else {
            continue;
        };
        if &hex::encode(Sha256::digest(&bytes)) != sha {
            continue;
        }
        let len = bytes.len() as u64;
        target.put(&path, bytes, layout::put_mode(&object)).await?;
        let env = stored(why, by, id, target.name(), &object, sha, len, false);
        bus.publish_event(&env).await?;
        return Ok(KeyCopy::Copied);
    }
    Ok(KeyCopy::NoSource(path))
}
