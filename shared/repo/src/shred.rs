//! Crypto-shredding one dataset (format 4): its key pairs destroyed on every
//! network that can delete, and its backups' metadata and wrapped data keys
//! with them, so that every byte of the dataset left anywhere — packs the
//! collector has not freed yet, copies on networks that cannot delete — is
//! ciphertext no key opens. Other datasets share no chunk and no key with
//! it (chunk ids and keys are per dataset) and are untouched.
//!
//! The caller decides whether shredding is allowed (legal holds, backups
//! still running: the ledger knows); this module only destroys and reports.

use crate::{catalogue::Entry, layout, RepoError, Repository};
use cairn_crypto::{DataKeyId, Sealer};
use cairn_events::{BackupId, KeyId, ObjectKey};
use std::collections::BTreeSet;

/// What a shred did, network by network.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ShredReport {
    /// The dataset's keys found (fingerprints).
    pub keys: Vec<KeyId>,
    /// Backups of the dataset whose metadata was deleted.
    pub backups: Vec<BackupId>,
    pub deleted_from: Vec<String>,
    /// Networks keeping the dataset's ciphertext: those that cannot delete
    /// (for good) and, until the collector frees its packs, the others.
    pub ciphertext_kept_on: Vec<String>,
    /// Networks that may still hold a key of the dataset, each with why.
    pub keys_kept_on: Vec<String>,
    /// Objects deleted, all networks together.
    pub objects_deleted: u64,
}

impl Repository {
    /// Destroys dataset `tag`'s keys (those the networks hold, and `known`
    /// fingerprints from the ledger) and deletes `backups`' metadata and
    /// data keys, plus any backup the networks' catalogues name for this
    /// dataset. `sealer` (the keyring's) tells which stored keys are the
    /// dataset's.
    pub async fn shred(
        &self,
        sealer: &Sealer,
        tag: DataKeyId,
        dataset: &str,
        known: &[KeyId],
        backups: &[BackupId],
    ) -> Result<ShredReport, RepoError> {
        let mut report = ShredReport::default();
        let mut keys: BTreeSet<KeyId> = known.iter().copied().collect();
        for (fingerprint, (t, _)) in self.dataset_keys(sealer).await {
            if t == tag {
                keys.insert(KeyId(fingerprint));
            }
        }
        report.keys = keys.iter().copied().collect();
        // Every backup of the dataset: the ledger's, and those a network's
        // catalogue names (a ledger rebuilt, or a backup it missed).
        let mut all: BTreeSet<BackupId> = backups.iter().cloned().collect();
        for n in &self.networks {
            if let Ok(listed) = self.catalogue(n, sealer).await {
                all.extend(
                    listed
                        .into_iter()
                        .filter(|l| l.entry.as_ref().is_some_and(|e| e.dataset == dataset))
                        .map(|l| l.backup_id),
                );
            }
        }
        report.backups = all.iter().cloned().collect();
        // The data key of each backup, from its catalogue entry or its
        // manifest's header, before either is gone; each must be wrapped to
        // one of the dataset's keys. One that is not was written before
        // per-dataset keys (format 3 or older): other datasets may have
        // deduplicated against its chunks, and shredding it could break
        // them, so nothing is done.
        let mut data_keys = BTreeSet::new();
        for id in &all {
            let mut key = None;
            let entry = ObjectKey::Catalogue {
                backup_id: id.clone(),
            };
            if let Ok((e, _)) = self
                .fetch_learning(
                    sealer,
                    &layout::object(&entry),
                    None,
                    "catalogue entry",
                    |b| Entry::open(sealer, id, &b),
                )
                .await
            {
                key = e.data_key.as_deref().and_then(|k| KeyId::parse(k).ok());
            }
            if key.is_none() {
                let manifest = layout::object(&ObjectKey::Manifest {
                    backup_id: id.clone(),
                });
                if let Ok((Some(k), _)) = self
                    .fetch_range(&manifest, 0, 24, "the manifest's header", |b| {
                        Ok(cairn_crypto::seal::key_id_of_header(&b))
                    })
                    .await
                {
                    key = Some(KeyId(k.0));
                }
            }
            let Some(key) = key else {
                // Neither entry nor manifest on any network: nothing of it
                // left to read.
                continue;
            };
            // A data key that cannot be read cannot be shown to be the
            // dataset's own: in doubt, nothing is deleted.
            let path = layout::object(&ObjectKey::DataKey { id: key });
            let (wrapped_to, _) = self
                .fetch(&path, &layout::describe(&ObjectKey::DataKey { id: key }), |b| {
                    cairn_crypto::datakey::recipient(&b).ok_or_else(|| {
                        RepoError::Format(format!("{path} is not a wrapped data key"))
                    })
                })
                .await
                .map_err(|e| {
                    RepoError::Format(format!(
                        "backup {id} of dataset {dataset}: its data key cannot be read ({e}), so it cannot be shown to be this dataset's alone. Nothing was shredded"
                    ))
                })?;
            if !keys.contains(&KeyId(wrapped_to)) {
                return Err(RepoError::Format(format!(
                    "backup {id} of dataset {dataset} was written before per-dataset keys (repository format 3 or older): other datasets may share its chunks, so shredding it could break them. Nothing was shredded; `cairn forget` it first"
                )));
            }
            data_keys.insert(key);
        }
        for n in &self.networks {
            let name = n.name().to_string();
            if !n.capabilities().can_delete {
                for k in &keys {
                    let path = layout::object(&ObjectKey::DatasetKey { id: *k });
                    if n.exists(&path).await.unwrap_or(true) {
                        report
                            .keys_kept_on
                            .push(format!("{name}: holds {path} and cannot delete"));
                    }
                }
                report.ciphertext_kept_on.push(name);
                continue;
            }
            // A network that locks what it holds (S3 Object Lock) deletes by
            // hiding: the locked version stays until its lock ends. Ingest
            // gives it a shreddable dataset's key only when no other target
            // could take it (and gave it one before it knew better), so a
            // key found there is hidden and named as not destroyed.
            let mut locked_keys = Vec::new();
            let step = async {
                let mut deleted = 0u64;
                // Keys first: from here on nothing of the dataset opens.
                for k in &keys {
                    let path = layout::object(&ObjectKey::DatasetKey { id: *k });
                    if n.exists(&path).await? {
                        n.delete(&path).await?;
                        deleted += 1;
                        if n.locks() {
                            locked_keys.push(format!(
                                "{name}: {path} is hidden, but its locked version stays until the lock ends (S3 Object Lock)"
                            ));
                        }
                    }
                    if n.exists(&path).await? {
                        return Err(cairn_networks::NetworkError::io(
                            n.name(),
                            "delete",
                            &path,
                            "still there after deleting it",
                        ));
                    }
                }
                for k in &data_keys {
                    let path = layout::object(&ObjectKey::DataKey { id: *k });
                    if n.exists(&path).await? {
                        n.delete(&path).await?;
                        deleted += 1;
                    }
                }
                for id in &all {
                    for p in n.list(&layout::backup_dir(id)).await? {
                        n.delete(&p).await?;
                        deleted += 1;
                    }
                }
                Ok::<_, cairn_networks::NetworkError>(deleted)
            };
            let done = step.await;
            report.keys_kept_on.append(&mut locked_keys);
            match done {
                Ok(d) => {
                    report.objects_deleted += d;
                    report.deleted_from.push(name.clone());
                    // Its packs stay until the collector finds them
                    // unreferenced (`cairn gc`).
                    report.ciphertext_kept_on.push(name);
                }
                Err(e) => report
                    .keys_kept_on
                    .push(format!("{name}: {e} (run `cairn shred` again)")),
            }
        }
        Ok(report)
    }
}
