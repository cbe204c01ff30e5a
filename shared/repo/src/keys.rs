//! The repository's keys on every network: several passphrases (key files
//! wrapping one master key), adding and removing them, and opening the
//! repository with a passphrase or with threshold shares of the master key.
//!
//! A removed key file leaves a tombstone (`keys-removed/<key_id>`) on every
//! network it reached, so that a network that was away during the removal
//! neither spreads the key file again (`complete_on` would copy it back) nor
//! opens with it: a key with a tombstone on any reachable network is gone.
//! A network that cannot delete (Arweave) keeps the key file; the removal
//! says so, and only a new master key makes that passphrase useless there.

use crate::{layout, RepoError, Repository};
use bytes::Bytes;
use cairn_crypto::{shares, KdfParams, KeyFile, Keyring, MasterKey, Secret, Share};
use cairn_events::{KeyChange, Pending};
use cairn_networks::PutMode;
use std::collections::{BTreeMap, BTreeSet};

/// What opens the repository.
#[derive(Clone)]
pub enum Credentials {
    Passphrase(Secret),
    /// Share files' contents, each with the name to report it by.
    Shares(Vec<(String, Share)>),
}

/// The repository opened for key management.
pub struct Opened {
    pub master: MasterKey,
    pub keyring: Keyring,
    /// The key file the passphrase opened (none for shares).
    pub key_id: Option<String>,
    pub repo_id: String,
}

/// One key file as `cairn key list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub key_id: String,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub kdf: KdfParams,
    /// Networks holding this key file.
    pub networks: Vec<String>,
    /// Whether the credentials given opened this one.
    pub current: bool,
}

impl Repository {
    /// Every live key file (no tombstone on any reachable network) with the
    /// networks holding it, and the networks that could not be read.
    pub async fn key_files_everywhere(
        &self,
    ) -> Result<(BTreeMap<String, (KeyFile, Vec<String>)>, Vec<Pending>), RepoError> {
        let mut files: BTreeMap<String, (KeyFile, Vec<String>)> = BTreeMap::new();
        let mut removed = BTreeSet::new();
        let mut unreachable = Vec::new();
        for n in self.networks() {
            let listed = match n.list(layout::KEYS_DIR).await {
                Ok(l) => l,
                Err(e) => {
                    unreachable.push(Pending {
                        network: n.name().to_string(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            for path in n.list(layout::KEYS_REMOVED_DIR).await? {
                if let Some(id) = path.strip_prefix(layout::KEYS_REMOVED_DIR) {
                    removed.insert(id.to_string());
                }
            }
            for path in listed {
                let Some(id) = path.strip_prefix(layout::KEYS_DIR) else {
                    continue;
                };
                match files.get_mut(id) {
                    Some((_, holders)) => holders.push(n.name().to_string()),
                    None => {
                        let bytes = n.get(&path).await?;
                        let kf = KeyFile::from_json(&path, &bytes)?;
                        files.insert(id.to_string(), (kf, vec![n.name().to_string()]));
                    }
                }
            }
        }
        files.retain(|id, _| !removed.contains(id));
        if files.is_empty() && unreachable.len() == self.networks().len() {
            return Err(RepoError::Unavailable {
                what: "the key files".into(),
                errors: unreachable
                    .iter()
                    .map(|p| format!("{}: {}", p.network, p.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        Ok((files, unreachable))
    }

    /// Opens the repository with `creds`: the master key and keyring.
    pub async fn open_keys(&self, creds: &Credentials) -> Result<Opened, RepoError> {
        let repo_id = self.config().await?.repo_id;
        let files: Vec<KeyFile> = self
            .key_files_everywhere()
            .await?
            .0
            .into_values()
            .map(|(f, _)| f)
            .collect();
        if files.is_empty() {
            return Err(RepoError::NotInitialised(
                self.networks()
                    .iter()
                    .map(|n| n.name().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        let creds = creds.clone();
        let rid = repo_id.clone();
        // Argon2id is deliberately slow: keep it off the async threads.
        tokio::task::spawn_blocking(move || -> Result<Opened, RepoError> {
            Ok(match creds {
                Credentials::Passphrase(p) => {
                    let (master, keyring, key_id) =
                        cairn_crypto::keyfile::open_any_master(&files, &p)?;
                    Opened {
                        master,
                        keyring,
                        key_id: Some(key_id),
                        repo_id: rid,
                    }
                }
                Credentials::Shares(s) => {
                    let master = shares::combine(&s, &rid)?;
                    let keyring = cairn_crypto::keyfile::open_any_with(&files, &master)?;
                    Opened {
                        master,
                        keyring,
                        key_id: None,
                        repo_id: rid,
                    }
                }
            })
        })
        .await
        .map_err(|e| RepoError::Format(e.to_string()))?
    }

    /// The keyring, opened with `creds`.
    pub async fn unlock_with(&self, creds: &Credentials) -> Result<Keyring, RepoError> {
        Ok(self.open_keys(creds).await?.keyring)
    }

    /// The live key files, for `cairn key list`; `current` marks the one
    /// `opened` came from.
    pub async fn list_keys(
        &self,
        opened: Option<&Opened>,
    ) -> Result<(Vec<KeyInfo>, Vec<Pending>), RepoError> {
        let (files, unreachable) = self.key_files_everywhere().await?;
        let current = opened.and_then(|o| o.key_id.clone());
        let mut keys: Vec<KeyInfo> = files
            .into_iter()
            .map(|(id, (kf, networks))| KeyInfo {
                current: current.as_deref() == Some(id.as_str()),
                key_id: id,
                created: kf.created.clone(),
                label: kf.label.clone(),
                kdf: kf.kdf_params(),
                networks,
            })
            .collect();
        keys.sort_by(|a, b| a.created.cmp(&b.created).then(a.key_id.cmp(&b.key_id)));
        Ok((keys, unreachable))
    }

    /// Adds `passphrase` as another key of the opened repository: a key file
    /// wrapping the same master key, written to every network it can reach.
    /// The networks it could not reach get it from `cairn init` or a store
    /// worker's start later (`complete_on`), and are named in `pending`.
    pub async fn add_key(
        &self,
        opened: &Opened,
        passphrase: &Secret,
        kdf: KdfParams,
        label: Option<String>,
        created: &str,
    ) -> Result<KeyChange, RepoError> {
        let (master, keyring, pass, created) = (
            opened.master.clone(),
            opened.keyring.clone(),
            passphrase.clone(),
            created.to_string(),
        );
        let lbl = label.clone();
        let kf = tokio::task::spawn_blocking(move || {
            KeyFile::create_for(&master, &pass, kdf, &keyring, &created, lbl)
        })
        .await
        .map_err(|e| RepoError::Format(e.to_string()))??;
        let path = layout::key_file(&kf.key_id);
        let bytes = Bytes::from(kf.to_json());
        let mut change = KeyChange {
            repo_id: opened.repo_id.clone(),
            key_id: kf.key_id.clone(),
            label,
            networks: Vec::new(),
            pending: Vec::new(),
        };
        for n in self.networks() {
            match n.put(&path, bytes.clone(), PutMode::IfAbsent).await {
                Ok(_) => change.networks.push(n.name().to_string()),
                Err(e) => change.pending.push(Pending {
                    network: n.name().to_string(),
                    reason: e.to_string(),
                }),
            }
        }
        if change.networks.is_empty() {
            return Err(RepoError::Unavailable {
                what: format!("a network to write key file {}", kf.key_id),
                errors: pending_text(&change.pending),
            });
        }
        Ok(change)
    }

    /// Removes the key file `key_id`. Refuses to remove the last key (then
    /// nothing could open the repository) and a key no network holds. Writes
    /// the tombstone first, then deletes the key file where the network can.
    pub async fn remove_key(&self, key_id: &str) -> Result<KeyChange, RepoError> {
        let (files, _) = self.key_files_everywhere().await?;
        let Some((kf, holders)) = files.get(key_id) else {
            return Err(RepoError::Key(format!(
                "no key {key_id} in this repository (`cairn key list` shows them)"
            )));
        };
        if files.len() == 1 {
            return Err(RepoError::Key(format!(
                "key {key_id} is the repository's last key: add another (`cairn key add`) before removing it"
            )));
        }
        let repo_id = self.config().await?.repo_id;
        let tombstone = Bytes::from(
            serde_json::to_vec(&serde_json::json!({ "key_id": key_id, "removed": true }))
                .expect("json"),
        );
        let mut change = KeyChange {
            repo_id,
            key_id: key_id.to_string(),
            label: kf.label.clone(),
            networks: Vec::new(),
            pending: Vec::new(),
        };
        for n in self.networks() {
            let step = async {
                n.put(
                    &layout::key_removed(key_id),
                    tombstone.clone(),
                    PutMode::IfAbsent,
                )
                .await?;
                if holders.iter().any(|h| h == n.name()) {
                    if !n.capabilities().can_delete {
                        return Ok(Some(
                            "this network cannot delete: the key file stays there, marked removed (only a new master key makes its passphrase useless there)"
                                .to_string(),
                        ));
                    }
                    n.delete(&layout::key_file(key_id)).await?;
                }
                Ok::<_, cairn_networks::NetworkError>(None)
            };
            match step.await {
                Ok(None) => change.networks.push(n.name().to_string()),
                Ok(Some(reason)) => change.pending.push(Pending {
                    network: n.name().to_string(),
                    reason,
                }),
                Err(e) => change.pending.push(Pending {
                    network: n.name().to_string(),
                    reason: format!("{e} (the removal finishes when `cairn init` or a store worker next completes the repository there)"),
                }),
            }
        }
        Ok(change)
    }
}

fn pending_text(p: &[Pending]) -> String {
    p.iter()
        .map(|p| format!("{}: {}", p.network, p.reason))
        .collect::<Vec<_>>()
        .join("; ")
}
