//! What the repository still references, read from the networks: every
//! backup that has anything under `backups/` on any network (a manifest, or
//! only a chunk list: a backup being written or cut short), and the data
//! objects (packs, and chunks stored alone) its chunk-list pages name. Any listing or page that cannot be read is
//! an error naming the network and the backup: never an empty answer, since
//! an empty answer would make live chunks look unused.

use cairn_events::{BackupId, ChunkId, ObjectKey};
use cairn_repo::{layout, Repository};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// The collector's name for a data object: its 32-byte id, a chunk's or a
/// pack's (hashes in separate domains, which the ledger keeps side by side
/// in `chunk_marks` and `chunk_copies`).
pub fn object_id(key: &ObjectKey) -> Option<ChunkId> {
    match key {
        ObjectKey::Chunk { id } => Some(*id),
        ObjectKey::Pack { id } => Some(ChunkId(id.0)),
        _ => None,
    }
}

/// What every backup's chunk lists name, per network: a backup that left
/// networks for an archive (`backup.left`, recorded) no longer keeps its
/// chunks there; everywhere else, and every other backup, keeps them.
#[derive(Debug, Default, Clone)]
pub struct References {
    /// Named by backups that left no network.
    pub everywhere: HashSet<ChunkId>,
    /// Named by a backup that left some networks: those networks, and what
    /// it names.
    pub partial: Vec<(Vec<String>, HashSet<ChunkId>)>,
}

impl References {
    /// What is referenced on network `network`.
    pub fn on(&self, network: &str) -> HashSet<ChunkId> {
        let mut refs = self.everywhere.clone();
        for (left, ids) in &self.partial {
            if !left.iter().any(|n| n == network) {
                refs.extend(ids);
            }
        }
        refs
    }
}

/// Why the references could not be established.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("network {network}: cannot list {prefix}: {detail}")]
    Listing {
        network: String,
        prefix: String,
        detail: String,
    },
    #[error("backup {backup}: {detail}")]
    Pages { backup: BackupId, detail: String },
    #[error("the ledger (PostgreSQL): {0}")]
    Ledger(String),
}

/// The chunk-list pages of every backup, as the networks list them.
pub struct Listing {
    pages: BTreeMap<BackupId, BTreeSet<(u32, String)>>,
}

impl Listing {
    /// Lists `backups/` on every network of `repo`.
    pub async fn read(repo: &Repository) -> Result<Listing, ReferenceError> {
        let mut pages: BTreeMap<BackupId, BTreeSet<(u32, String)>> = BTreeMap::new();
        for n in repo.networks() {
            let paths = n
                .list(layout::BACKUPS_DIR)
                .await
                .map_err(|e| ReferenceError::Listing {
                    network: n.name().to_string(),
                    prefix: layout::BACKUPS_DIR.into(),
                    detail: e.to_string(),
                })?;
            for p in paths {
                let Some(backup) = layout::backup_of(&p) else {
                    continue;
                };
                let entry = pages.entry(backup).or_default();
                if let Some(page) = layout::chunk_list_page(&p) {
                    entry.insert((page, p));
                }
            }
        }
        Ok(Listing { pages })
    }

    /// Every backup with anything on any network.
    pub fn backups(&self) -> impl Iterator<Item = &BackupId> {
        self.pages.keys()
    }

    pub fn contains(&self, backup: &BackupId) -> bool {
        self.pages.contains_key(backup)
    }

    /// The data objects backup `backup`'s pages name (by [`object_id`]),
    /// each page read from any network with an intact copy.
    pub async fn objects_of(
        &self,
        repo: &Repository,
        backup: &BackupId,
    ) -> Result<HashSet<ChunkId>, ReferenceError> {
        let pages = self.pages.get(backup).cloned().unwrap_or_default();
        if pages.is_empty() {
            return Err(ReferenceError::Pages {
                backup: backup.clone(),
                detail: "no network lists a chunk list for it, so its chunks cannot be known (a backup whose chunk list was lost, or one that has written only its manifest)".into(),
            });
        }
        let mut ids = HashSet::new();
        for (page, path) in pages {
            let (p, _) = repo
                .fetch(&path, &path, |b| cairn_repo::decode_page(backup, page, &b))
                .await
                .map_err(|e| ReferenceError::Pages {
                    backup: backup.clone(),
                    detail: format!("chunk list page {page}: {e}"),
                })?;
            let locations = p.locations().map_err(|detail| ReferenceError::Pages {
                backup: backup.clone(),
                detail,
            })?;
            ids.extend(locations.iter().filter_map(|l| object_id(&l.object())));
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_that_left_a_network_keeps_its_chunks_only_elsewhere() {
        let (a, b, c) = (ChunkId([1; 32]), ChunkId([2; 32]), ChunkId([3; 32]));
        let refs = References {
            everywhere: [a].into(),
            partial: vec![
                (vec!["local".into()], [a, b].into()),
                (vec!["local".into(), "nas".into()], [c].into()),
            ],
        };
        assert_eq!(refs.on("local"), [a].into());
        assert_eq!(refs.on("nas"), [a, b].into());
        assert_eq!(refs.on("vault"), [a, b, c].into());
    }
    use async_trait::async_trait;
    use bytes::Bytes;
    use cairn_networks::fs::FsNetwork;
    use cairn_networks::{Capabilities, Network, NetworkError, Put, PutMode, Usage};
    use cairn_repo::format::ChunkListPage;
    use std::sync::Arc;

    /// A real directory network whose listings under one prefix fail, as a
    /// network that answers one `list` with an error.
    struct FailingList {
        inner: FsNetwork,
        prefix: String,
    }

    #[async_trait]
    impl Network for FailingList {
        fn name(&self) -> &str {
            self.inner.name()
        }
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        async fn put(&self, p: &str, b: Bytes, m: PutMode) -> Result<Put, NetworkError> {
            self.inner.put(p, b, m).await
        }
        async fn get(&self, p: &str) -> Result<Bytes, NetworkError> {
            self.inner.get(p).await
        }
        async fn exists(&self, p: &str) -> Result<bool, NetworkError> {
            self.inner.exists(p).await
        }
        async fn delete(&self, p: &str) -> Result<(), NetworkError> {
            self.inner.delete(p).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, NetworkError> {
            if prefix.starts_with(&self.prefix) {
                return Err(NetworkError::io(
                    self.name(),
                    "list",
                    prefix,
                    "503 Slow Down",
                ));
            }
            self.inner.list(prefix).await
        }
        async fn health(&self) -> Result<(), NetworkError> {
            self.inner.health().await
        }
        async fn get_range(&self, p: &str, o: u64, l: u64) -> Result<Bytes, NetworkError> {
            self.inner.get_range(p, o, l).await
        }
        async fn usage(&self) -> Result<Usage, NetworkError> {
            self.inner.usage().await
        }
    }

    async fn page(net: &FsNetwork, backup: &BackupId, ids: &[ChunkId]) {
        let p = ChunkListPage {
            format: 1,
            backup_id: backup.clone(),
            page: 0,
            ids: ids.to_vec(),
            new: vec![],
            packs: vec![],
            pack_of: vec![],
            offsets: vec![],
            lens: vec![],
        };
        let path = layout::object(&cairn_events::ObjectKey::ChunkList {
            backup_id: backup.clone(),
            page: 0,
        });
        net.put(
            &path,
            cairn_repo::encode_page(&p).into(),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_listing_that_fails_is_an_error_naming_the_network_never_an_empty_answer() {
        let dir = tempfile::tempdir().unwrap();
        let a = FsNetwork::new("a", dir.path());
        let (kept, shared) = (BackupId::parse("kept").unwrap(), ChunkId([7; 32]));
        page(&a, &kept, &[shared]).await;
        let repo = Repository::new(vec![Arc::new(FsNetwork::new("a", dir.path()))]);
        let listing = Listing::read(&repo).await.unwrap();
        assert!(listing
            .objects_of(&repo, &kept)
            .await
            .unwrap()
            .contains(&shared));

        let flaky = Repository::new(vec![Arc::new(FailingList {
            inner: FsNetwork::new("a", dir.path()),
            prefix: layout::BACKUPS_DIR.into(),
        })]);
        let err = Listing::read(&flaky)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("network a") && err.contains("503"), "{err}");

        // A backup whose chunk list no network lists cannot be vouched for.
        let m = layout::object(&cairn_events::ObjectKey::Manifest {
            backup_id: BackupId::parse("bare").unwrap(),
        });
        a.put(&m, Bytes::from_static(b"sealed"), PutMode::Overwrite)
            .await
            .unwrap();
        let listing = Listing::read(&repo).await.unwrap();
        let err = listing
            .objects_of(&repo, &BackupId::parse("bare").unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("backup bare") && err.contains("cannot be known"),
            "{err}"
        );
    }
}
