//! The catalogue: one sealed entry per backup on every network
//! (`backups/<id>/catalogue`), so that a repository lists its backups with
//! the key and one network alone — no ledger, no broker. It is the day
//! everything else is gone that reads it.
//!
//! Ingest writes the entry beside the manifest, sealed under the backup's
//! own data key (format 3), so a write-only worker can write it and only a
//! key holder can read it; forgetting a backup deletes it with the rest of
//! `backups/<id>/`. A backup written before the catalogue existed is listed
//! from its manifest instead, which says the same and costs more to read.

use crate::format::{self, Manifest, FORMAT};
use crate::{decompress, layout, RepoError, Repository};
use cairn_crypto::{ObjectKind, Sealer};
use cairn_events::{BackupId, ObjectKey, Source, Stats};
use cairn_networks::DynNetwork;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What the catalogue says of one backup: what `cairn list` shows, and what
/// `cairn recover rebuild` needs to record it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub format: u32,
    pub backup_id: BackupId,
    pub dataset: String,
    pub tags: Vec<String>,
    /// What was backed up (paths, stdin, a database URL without password).
    pub source: Source,
    pub requested_at: String,
    pub requested_by: String,
    /// When ingest finished reading the source (RFC 3339).
    pub ingested_at: String,
    /// Ingest's figures: `bytes_stored` is 0, not known until everything
    /// is stored (`cairn recover rebuild` sums what the backup added).
    pub stats: Stats,
    pub networks: Vec<String>,
    pub chunk_pages: u32,
    /// Hex, as in the manifest.
    pub merkle_root: String,
    /// The backup's data key (format 3), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<String>,
    /// For a PostgreSQL base backup: the WAL it needs (so that retention
    /// after a rebuild still knows which WAL to keep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<cairn_events::WalRange>,
}

impl Entry {
    /// The entry for a backup whose manifest is `m`, ingested at `at`.
    pub fn of(m: &Manifest, at: &str, data_key: Option<String>) -> Entry {
        Entry {
            format: FORMAT,
            backup_id: m.backup_id.clone(),
            dataset: m.dataset.clone(),
            tags: m.tags.clone(),
            source: m.source.clone(),
            requested_at: m.requested_at.clone(),
            requested_by: m.requested_by.clone(),
            ingested_at: at.to_string(),
            stats: m.stats.clone(),
            networks: m.networks.clone(),
            chunk_pages: m.chunk_pages,
            merkle_root: hex::encode(&m.merkle_root),
            data_key,
            wal: m.wal.clone(),
        }
    }

    /// The entry as encrypt receives it: (compressed?, payload, plaintext length).
    pub fn encode(&self) -> (bool, Vec<u8>, u32) {
        let plain = rmp_serde::to_vec_named(self).expect("catalogue entry serializes");
        let len = plain.len() as u32;
        let (compressed, payload) = crate::compress(plain, 3);
        (compressed, payload, len)
    }

    /// Opens a sealed entry of `backup_id`.
    pub fn open(sealer: &Sealer, backup_id: &BackupId, sealed: &[u8]) -> Result<Entry, RepoError> {
        let what = format!("catalogue entry of backup {backup_id}");
        let o = sealer.open(&what, backup_id.as_str().as_bytes(), sealed)?;
        if o.kind != ObjectKind::Catalogue {
            return Err(RepoError::Format(format!("{what}: sealed as {:?}", o.kind)));
        }
        let plain = decompress(&what, o.compressed, o.payload, ENTRY_MAX)?;
        let e: Entry = cairn_events::codec::from_msgpack(&plain)
            .map_err(|e| RepoError::Format(format!("{what}: {e}")))?;
        if !format::readable(e.format) {
            return Err(RepoError::Format(format!(
                "{what}: format {} unsupported",
                e.format
            )));
        }
        if &e.backup_id != backup_id {
            return Err(RepoError::Format(format!(
                "{what}: names backup {}",
                e.backup_id
            )));
        }
        Ok(e)
    }
}

/// Largest entry accepted when decompressing (an entry is a few hundred
/// bytes; tags are the only thing that grows).
const ENTRY_MAX: usize = 1 << 20;

pub fn source_kind(s: &Source) -> &'static str {
    s.kind()
}

/// How much of a backup one network holds, from its listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Manifest, catalogue entry, data key and every chunk-list page are
    /// there (the chunks themselves are read by restore and `cairn health`).
    Whole,
    /// Something the backup needs is not: named.
    Partial { missing: Vec<String> },
}

/// One backup as one network lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub backup_id: BackupId,
    /// The entry, or why it cannot be read (a wrong key, a destroyed data
    /// key, a damaged object): the backup is still listed.
    #[serde(flatten)]
    pub entry: Option<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// Where the entry came from: "catalogue", or "manifest" for a backup
    /// written before the catalogue existed.
    pub from: &'static str,
    pub presence: Presence,
}

impl Repository {
    /// Every backup `network` holds anything of, oldest first, read from its
    /// catalogue (or manifest) with `sealer`; nothing but that network is
    /// read.
    pub async fn catalogue(
        &self,
        network: &DynNetwork,
        sealer: &Sealer,
    ) -> Result<Vec<Listed>, RepoError> {
        let one = Repository::new(vec![network.clone()]);
        let mut files: BTreeMap<BackupId, BTreeSet<String>> = BTreeMap::new();
        for p in network.list(layout::BACKUPS_DIR).await? {
            if let Some(id) = layout::backup_of(&p) {
                files.entry(id).or_default().insert(p);
            }
        }
        let keys: BTreeSet<String> = network
            .list(layout::DATA_KEYS_DIR)
            .await?
            .into_iter()
            .collect();
        let mut out = Vec::with_capacity(files.len());
        for (id, present) in files {
            let catalogue = layout::object(&ObjectKey::Catalogue {
                backup_id: id.clone(),
            });
            let manifest = layout::object(&ObjectKey::Manifest {
                backup_id: id.clone(),
            });
            let (read, from) = if present.contains(&catalogue) {
                let r = one
                    .fetch_learning(sealer, &catalogue, None, "catalogue entry", |b| {
                        Entry::open(sealer, &id, &b)
                    })
                    .await
                    .map(|(e, _)| e);
                (r, "catalogue")
            } else if present.contains(&manifest) {
                let r = one
                    .manifest(sealer, &id)
                    .await
                    .map(|m| Entry::of(&m, "", None));
                (r, "manifest")
            } else {
                (
                    Err(RepoError::Format(
                        "neither catalogue entry nor manifest: the backup never finished, or was half forgotten".into(),
                    )),
                    "listing",
                )
            };
            let data_key = match &read {
                Ok(e) => e.data_key.clone(),
                Err(_) => None,
            };
            // A backup listed from its manifest was written before the
            // catalogue: no entry is missing.
            let mut missing = Vec::new();
            let expected = if from == "manifest" {
                vec![&manifest]
            } else {
                vec![&manifest, &catalogue]
            };
            for p in expected {
                if !present.contains(p) {
                    missing.push(p.clone());
                }
            }
            if let Ok(e) = &read {
                for page in 0..e.chunk_pages {
                    let p = layout::object(&ObjectKey::ChunkList {
                        backup_id: id.clone(),
                        page,
                    });
                    if !present.contains(&p) {
                        missing.push(p);
                    }
                }
            }
            if let Some(k) = &data_key {
                let p = format!("{}{k}", layout::DATA_KEYS_DIR);
                if !keys.contains(&p) {
                    missing.push(p);
                }
            }
            let presence = if missing.is_empty() {
                Presence::Whole
            } else {
                Presence::Partial { missing }
            };
            let (entry, unreadable) = match read {
                Ok(e) => (Some(e), None),
                Err(e) => (None, Some(e.to_string())),
            };
            out.push(Listed {
                backup_id: id,
                entry,
                unreadable,
                from,
                presence,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_crypto::{DataKeyId, Key32};

    fn entry(id: &BackupId) -> Entry {
        Entry {
            format: FORMAT,
            backup_id: id.clone(),
            dataset: "docs".into(),
            tags: vec!["daily".into()],
            source: Source::Stdin { name: "-".into() },
            requested_at: "2026-12-06T10:00:00Z".into(),
            requested_by: "alice".into(),
            ingested_at: "2026-12-06T10:00:01Z".into(),
            stats: Stats::default(),
            networks: vec!["local".into()],
            chunk_pages: 1,
            merkle_root: "00".repeat(32),
            data_key: None,
            wal: None,
        }
    }

    fn sealed(s: &Sealer, kind: ObjectKind, id: &BackupId, e: &Entry) -> Vec<u8> {
        let (z, payload, _) = e.encode();
        s.seal(kind, z, id.as_str().as_bytes(), &payload)
    }

    #[test]
    fn an_entry_opens_only_as_itself() {
        let s = Sealer::for_data_key(DataKeyId::random(), &Key32::random());
        let id = BackupId::generate();
        let e = entry(&id);
        let bytes = sealed(&s, ObjectKind::Catalogue, &id, &e);
        assert_eq!(Entry::open(&s, &id, &bytes).unwrap(), e);
        assert!(!String::from_utf8_lossy(&bytes).contains("docs"));
        // Under another backup's name: the seal binds the id.
        let other = BackupId::generate();
        assert!(Entry::open(&s, &other, &bytes).is_err());
        // The manifest's kind, under the same id: refused by name.
        let as_manifest = sealed(&s, ObjectKind::Manifest, &id, &e);
        let err = Entry::open(&s, &id, &as_manifest).unwrap_err().to_string();
        assert!(err.contains("sealed as Manifest"), "{err}");
        // An entry naming another backup inside: refused.
        let inside = sealed(&s, ObjectKind::Catalogue, &id, &entry(&other));
        let err = Entry::open(&s, &id, &inside).unwrap_err().to_string();
        assert!(err.contains("names backup"), "{err}");
        // Without the key: nothing.
        let stranger = Sealer::for_data_key(DataKeyId::random(), &Key32::random());
        assert!(Entry::open(&stranger, &id, &bytes).is_err());
    }
}
