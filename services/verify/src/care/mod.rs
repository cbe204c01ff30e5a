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
pub use repair::{auto_repair, repair_backup, Repaired};

use crate::{sealed_leaves, BackupObjects};
use cairn_crypto::merkle::{leaf_hash, Rfc6962};
use cairn_events::{BackupId, Outcome, ShardOf};
use cairn_repo::check::Expected;
use cairn_repo::{layout, RepoError, Repository};

/// Why a backup's copies could not be looked at.
#[derive(Debug, thiserror::Error)]
pub enum CareError {
    #[error("backup {0} not found in the ledger")]
    NotInLedger(BackupId),
    #[error("backup {0} was forgotten")]
    Forgotten(BackupId),
    #[error("backup {id} was stored on network {network:?}, which is not configured here")]
    NotConfigured { id: BackupId, network: String },
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
    let row = cairn_ledger::query::backup(pg, id.as_str())
        .await?
        .ok_or_else(|| CareError::NotInLedger(id.clone()))?;
    if row.status == "forgotten" {
        return Err(CareError::Forgotten(id.clone()));
    }
    let targets = if row.networks.is_empty() {
        repo.clone()
    } else {
        if let Some(n) = row.networks.iter().find(|n| repo.network(n).is_none()) {
            return Err(CareError::NotConfigured {
                id: id.clone(),
                network: n.clone(),
            });
        }
        repo.subset(&row.networks)
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
        order: row.networks.clone(),
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
