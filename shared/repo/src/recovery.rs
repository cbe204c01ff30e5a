//! What a repository holds, surveyed from its networks alone, so that a
//! new ledger can record it again (`cairn recover rebuild`) after the broker
//! and the database were lost.
//!
//! Each backup comes from its catalogue entry (or manifest); its objects
//! from its chunk list, each read once from a network that lists it and
//! hashed, so that the new ledger holds the digests verify and health check
//! against. A backup no network holds whole, or whose entry no key opens,
//! is named and skipped: nothing records what cannot be restored.

use crate::catalogue::{Entry, Presence};
use crate::{layout, RepoError, Repository};
use cairn_crypto::Sealer;
use cairn_events::{ObjectDigest, ObjectKey, PackedChunk};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// A chunk of a backup's sealed root: its id, the object holding it and
/// where in that object (a pack) it is.
type Leaf = (cairn_events::ChunkId, ObjectKey, Option<(u32, u32)>);

/// One backup to record again.
#[derive(Debug, Clone)]
pub struct Found {
    pub entry: Entry,
    /// Networks holding it whole.
    pub holders: Vec<String>,
    /// Networks it targeted that were read and do not hold it whole.
    pub missing_on: Vec<String>,
    /// Objects first seen with this backup (an object several backups share
    /// comes with the first), each with the networks that list it.
    pub objects: Vec<(ObjectDigest, Vec<String>)>,
    /// Of each erasure-coded pack first seen with this backup: which shard
    /// each network holds (path → (network, index)).
    pub shards: BTreeMap<String, Vec<(String, u32)>>,
    /// The backup's sealed root over the digests found
    /// ([`sealed_leaf`](crate::format::sealed_leaf)), hex: what verify
    /// records, so that health checks the new ledger's digests against it.
    pub sealed_root: String,
}

#[derive(Debug, Clone, Default)]
pub struct Survey {
    pub repo_id: String,
    pub networks: Vec<String>,
    /// Oldest first.
    pub backups: Vec<Found>,
    /// Backup id: why it was not recorded.
    pub skipped: Vec<String>,
    /// Sealed bytes read to hash the objects.
    pub bytes_read: u64,
}

impl Repository {
    /// Surveys every network of this repository with `sealer` (a keyring's:
    /// catalogue entries are sealed).
    pub async fn survey(&self, sealer: &Sealer) -> Result<Survey, RepoError> {
        let config = self.config().await?;
        let mut entries: BTreeMap<cairn_events::BackupId, (Option<Entry>, Vec<String>, String)> =
            BTreeMap::new();
        let mut listed: HashMap<String, HashSet<String>> = HashMap::new();
        for net in &self.networks {
            let name = net.name().to_string();
            for l in self.catalogue(net, sealer).await? {
                let slot =
                    entries
                        .entry(l.backup_id.clone())
                        .or_insert((None, Vec::new(), String::new()));
                if let (None, Some(e)) = (&slot.0, l.entry) {
                    slot.0 = Some(e);
                }
                match l.presence {
                    Presence::Whole => slot.1.push(name.clone()),
                    Presence::Partial { missing } => {
                        slot.2 = format!("partial on {name}: missing {}", missing.join(", "))
                    }
                }
                if let Some(why) = l.unreadable {
                    slot.2 = why;
                }
            }
            let mut here = HashSet::new();
            for prefix in [
                layout::PACKS_DIR,
                layout::CHUNKS_DIR,
                layout::DATA_KEYS_DIR,
                layout::BACKUPS_DIR,
            ] {
                here.extend(net.list(prefix).await?);
            }
            listed.insert(name, here);
        }
        let mut survey = Survey {
            repo_id: config.repo_id,
            networks: self.networks.iter().map(|n| n.name().to_string()).collect(),
            ..Survey::default()
        };
        // First every backup's objects, and every chunk each pack holds
        // that any backup references (the ledger's chunk index learns them
        // with the pack's digest); then each object read and hashed once.
        let mut packed: HashMap<ObjectKey, BTreeSet<(u32, u32, cairn_events::ChunkId)>> =
            HashMap::new();
        let mut wanted = Vec::new();
        for (id, (entry, holders, why)) in entries {
            let Some(entry) = entry else {
                survey.skipped.push(format!("{id}: {why}"));
                continue;
            };
            if holders.is_empty() {
                survey
                    .skipped
                    .push(format!("{id}: held whole by no network ({why})"));
                continue;
            }
            let pages = self
                .subset(&holders)
                .chunk_pages(&id, entry.chunk_pages)
                .await?;
            let mut keys: Vec<ObjectKey> = Vec::new();
            for p in &pages {
                let locations = p.locations().map_err(RepoError::Format)?;
                for (chunk, loc) in p.ids.iter().zip(locations) {
                    let key = loc.object();
                    if let crate::format::Location::Packed { offset, len, .. } = loc {
                        packed
                            .entry(key.clone())
                            .or_default()
                            .insert((offset, len, *chunk));
                    }
                    keys.push(key);
                }
            }
            for page in 0..entry.chunk_pages {
                keys.push(ObjectKey::ChunkList {
                    backup_id: id.clone(),
                    page,
                });
            }
            keys.push(ObjectKey::Manifest {
                backup_id: id.clone(),
            });
            if let Some(k) = entry
                .data_key
                .as_deref()
                .and_then(|k| cairn_events::KeyId::parse(k).ok())
            {
                keys.push(ObjectKey::DataKey { id: k });
            }
            let catalogue = ObjectKey::Catalogue {
                backup_id: id.clone(),
            };
            if holders.iter().any(|h| {
                listed
                    .get(h)
                    .is_some_and(|l| l.contains(&layout::object(&catalogue)))
            }) {
                keys.push(catalogue);
            }
            let leaves: Vec<Leaf> = pages
                .iter()
                .flat_map(|p| {
                    let locations = p.locations().unwrap_or_default();
                    p.ids.iter().copied().zip(locations).collect::<Vec<_>>()
                })
                .map(|(id, loc)| {
                    let range = match loc {
                        crate::format::Location::Alone(_) => None,
                        crate::format::Location::Packed { offset, len, .. } => Some((offset, len)),
                    };
                    (id, loc.object(), range)
                })
                .collect();
            wanted.push((entry, holders, keys, leaves));
        }
        // Path → hex digest of every object read so far.
        let mut seen: HashMap<String, String> = HashMap::new();
        for (entry, holders, keys, leaves) in wanted {
            let mut objects = Vec::new();
            let mut shards = BTreeMap::new();
            for key in keys {
                let path = layout::object(&key);
                if seen.contains_key(&path) {
                    continue;
                }
                let on: Vec<String> = survey
                    .networks
                    .iter()
                    .filter(|n| listed.get(*n).is_some_and(|l| l.contains(&path)))
                    .cloned()
                    .collect();
                if on.is_empty() {
                    return Err(RepoError::Unavailable {
                        what: layout::describe(&key),
                        errors: format!(
                            "listed by no network, yet backup {} needs it",
                            entry.backup_id
                        ),
                    });
                }
                let (mut bytes, _) = self
                    .subset(&on)
                    .fetch(&path, &layout::describe(&key), Ok)
                    .await?;
                survey.bytes_read += bytes.len() as u64;
                // An erasure-coded pack: every listing network's shard,
                // the pack rebuilt from them, and who holds which.
                let mut coded = None;
                if matches!(key, ObjectKey::Pack { .. }) && crate::erasure::is_shard(&bytes) {
                    let (whole, held, read) = self.gather_shards(&on, &path).await?;
                    survey.bytes_read += read;
                    let k = held.first().map(|(_, s)| s.k as u32).unwrap_or(1);
                    let n = held.first().map(|(_, s)| s.n as u32).unwrap_or(2);
                    let files = crate::erasure::digests(&whole, k, n)
                        .map_err(|e| RepoError::Format(format!("{path}: {e}")))?;
                    coded = Some(cairn_events::Shards {
                        k,
                        files: files
                            .into_iter()
                            .map(|(sha256, len)| cairn_events::ShardDigest { sha256, len })
                            .collect(),
                    });
                    shards.insert(
                        path.clone(),
                        held.iter()
                            .map(|(net, s)| (net.clone(), s.index as u32))
                            .collect::<Vec<_>>(),
                    );
                    bytes = bytes::Bytes::from(whole);
                }
                let sha256 = hex::encode(Sha256::digest(&bytes));
                seen.insert(path, sha256.clone());
                let digest = ObjectDigest {
                    packed: packed
                        .remove(&key)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(offset, len, id)| PackedChunk { id, offset, len })
                        .collect(),
                    object: key,
                    sha256,
                    len: bytes.len() as u64,
                    run: None,
                    shards: coded,
                };
                objects.push((digest, on));
            }
            let missing_on = entry
                .networks
                .iter()
                .filter(|n| survey.networks.contains(n) && !holders.contains(n))
                .cloned()
                .collect();
            let mut root = cairn_crypto::merkle::RootBuilder::new();
            for (id, object, range) in &leaves {
                let sha = &seen[&layout::object(object)];
                root.push(&crate::format::sealed_leaf(id, sha, *range));
            }
            survey.backups.push(Found {
                entry,
                holders,
                missing_on,
                objects,
                shards,
                sealed_root: hex::encode(root.root()),
            });
        }
        Ok(survey)
    }

    /// Each of `on`'s shard of pack `path` (those that pass their hashes),
    /// and the pack rebuilt from them; bytes read.
    async fn gather_shards(
        &self,
        on: &[String],
        path: &str,
    ) -> Result<(Vec<u8>, Vec<(String, crate::erasure::Shard)>, u64), RepoError> {
        let mut held = Vec::new();
        let mut errors = Vec::new();
        let mut read = 0u64;
        for n in self
            .networks
            .iter()
            .filter(|n| on.iter().any(|o| o == n.name()))
        {
            match n.get(path).await {
                Ok(b) => {
                    read += b.len() as u64;
                    match crate::erasure::Shard::parse(&b) {
                        Ok(s) => held.push((n.name().to_string(), s)),
                        Err(e) => errors.push(format!("network {}: {e}", n.name())),
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        let shards: Vec<crate::erasure::Shard> = held.iter().map(|(_, s)| s.clone()).collect();
        let whole = crate::erasure::decode(&shards).map_err(|e| RepoError::Unavailable {
            what: path.to_string(),
            errors: format!("{e}; {}", errors.join("; ")),
        })?;
        Ok((whole, held, read))
    }
}
