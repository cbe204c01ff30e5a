//! A repository on every configured network: a network added to the
//! configuration after `cairn init` lacks the repository config and key
//! files, and could not restore anything on its own (invariant 4). These
//! copy them from a network that holds them to one that does not, and say
//! what each network holds. Both files are public or wrapped (a key file is
//! useless without a passphrase), so no key is needed to copy them.

use crate::format::RepoConfig;
use crate::{layout, RepoError, Repository};
use bytes::Bytes;
use cairn_networks::{DynNetwork, NetworkError, PutMode};
use std::collections::BTreeMap;

/// What a network holds of the repository itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Presence {
    /// The repository config (`config`).
    pub config: bool,
    /// Key files under `keys/`.
    pub key_files: usize,
}

impl Presence {
    /// Enough to open and restore from this network alone.
    pub fn complete(&self) -> bool {
        self.config && self.key_files > 0
    }
}

/// The files that make a network a repository, as some network holds them.
struct Origin {
    repo_id: String,
    config: Bytes,
    /// Key file path → bytes, gathered from every network holding the config
    /// (less those removed).
    keys: BTreeMap<String, Bytes>,
    /// Tombstones of removed key files (`keys-removed/<id>`) → bytes.
    removed: BTreeMap<String, Bytes>,
}

/// What a network holds of the repository.
pub async fn presence(net: &DynNetwork) -> Result<Presence, NetworkError> {
    Ok(Presence {
        config: net.exists(layout::CONFIG).await?,
        key_files: net.list(layout::KEYS_DIR).await?.len(),
    })
}

impl Repository {
    /// The repository's config and key files from the networks that hold
    /// them; networks that do not answer are passed over, networks that
    /// hold another repository are refused by name.
    async fn origin(&self) -> Result<Origin, RepoError> {
        let mut origin: Option<(String, Origin)> = None;
        let mut errors = Vec::new();
        for n in self.networks() {
            let config = match n.get(layout::CONFIG).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            let parsed: RepoConfig = serde_json::from_slice(&config)
                .map_err(|e| RepoError::Format(format!("config on {}: {e}", n.name())))?;
            let keys = match n.list(layout::KEYS_DIR).await {
                Ok(k) => k,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            let o = match &mut origin {
                Some((first, o)) if o.repo_id != parsed.repo_id => {
                    return Err(RepoError::Format(format!(
                        "networks {first} and {} hold different repositories ({} and {}): give each repository its own networks",
                        n.name(),
                        o.repo_id,
                        parsed.repo_id
                    )))
                }
                Some((_, o)) => o,
                None => {
                    &mut origin
                        .insert((
                            n.name().to_string(),
                            Origin {
                                repo_id: parsed.repo_id,
                                config,
                                keys: BTreeMap::new(),
                                removed: BTreeMap::new(),
                            },
                        ))
                        .1
                }
            };
            for k in keys {
                if let std::collections::btree_map::Entry::Vacant(slot) = o.keys.entry(k) {
                    let bytes = n.get(slot.key()).await?;
                    slot.insert(bytes);
                }
            }
            // Tombstones are copied as they are and stop a key file from
            // spreading; without a key they cannot be told from planted
            // ones, so nothing here deletes a key file on their word (only
            // `cairn key remove`, holding the master key, does).
            if let Ok(tombstones) = n.list(layout::KEYS_REMOVED_DIR).await {
                for t in tombstones {
                    if let std::collections::btree_map::Entry::Vacant(slot) = o.removed.entry(t) {
                        if let Ok(bytes) = n.get(slot.key()).await {
                            slot.insert(bytes);
                        }
                    }
                }
            }
        }
        if let Some((_, o)) = &mut origin {
            let gone: Vec<String> = o
                .removed
                .keys()
                .filter_map(|t| t.strip_prefix(layout::KEYS_REMOVED_DIR))
                .map(layout::key_file)
                .collect();
            o.keys.retain(|k, _| !gone.contains(k));
        }
        match origin {
            Some((_, o)) if !o.keys.is_empty() => Ok(o),
            _ if !errors.is_empty() => Err(RepoError::Unavailable {
                what: "the repository config".into(),
                errors: errors.join("; "),
            }),
            _ => Err(RepoError::NotInitialised(
                self.networks()
                    .iter()
                    .map(|n| n.name().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// Copies the repository config and key files to `target` where it
    /// lacks them (key files first: the config's presence means "a
    /// repository"), and the tombstones of removed keys (whose key files it
    /// never copies). Returns the paths written.
    pub async fn complete_on(&self, target: &DynNetwork) -> Result<Vec<String>, RepoError> {
        let origin = self.origin().await?;
        let listed = target.list(layout::KEYS_DIR).await?;
        let mut written = Vec::new();
        let tombstones = target.list(layout::KEYS_REMOVED_DIR).await?;
        for (path, bytes) in &origin.removed {
            if !tombstones.contains(path) {
                target.put(path, bytes.clone(), PutMode::IfAbsent).await?;
                written.push(path.clone());
            }
        }
        for (path, bytes) in &origin.keys {
            if !listed.contains(path) {
                target.put(path, bytes.clone(), PutMode::IfAbsent).await?;
                written.push(path.clone());
            }
        }
        if !target.exists(layout::CONFIG).await? {
            target
                .put(layout::CONFIG, origin.config.clone(), PutMode::IfAbsent)
                .await?;
            written.push(layout::CONFIG.to_string());
        }
        Ok(written)
    }

    /// [`Repository::complete_on`] for every network; per network, what
    /// was written (or why not).
    pub async fn complete(&self) -> Vec<(String, Result<Vec<String>, RepoError>)> {
        let mut out = Vec::new();
        for n in self.networks() {
            out.push((n.name().to_string(), self.complete_on(n).await));
        }
        out
    }
}

/// What `cairn init` did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Initialised {
    /// A new repository on every network.
    Created {
        repo_id: String,
        key_id: String,
        networks: Vec<String>,
    },
    /// The repository existed on some networks; its config and key files
    /// were copied to the others.
    Completed {
        repo_id: String,
        /// Network → files written there.
        copied: BTreeMap<String, Vec<String>>,
    },
}

impl Repository {
    /// Creates the repository on every network, or, where some networks
    /// hold it already, copies it to those that lack it (after the
    /// passphrase opened it: `init` never spreads a repository its caller
    /// cannot open). Refuses when every network holds it.
    pub async fn init_or_complete(
        &self,
        passphrase: &cairn_crypto::Secret,
        kdf: cairn_crypto::KdfParams,
    ) -> Result<Initialised, RepoError> {
        let mut holders = Vec::new();
        for n in self.networks() {
            if n.exists(layout::CONFIG).await? {
                holders.push(n.name().to_string());
            }
        }
        if holders.is_empty() {
            let (config, key) = self.init(passphrase, kdf).await?;
            return Ok(Initialised::Created {
                repo_id: config.repo_id,
                key_id: key.key_id,
                networks: self
                    .networks()
                    .iter()
                    .map(|n| n.name().to_string())
                    .collect(),
            });
        }
        if holders.len() == self.networks().len() {
            return Err(RepoError::AlreadyInitialised(holders.join(", ")));
        }
        self.unlock(passphrase).await?;
        let repo_id = self.config().await?.repo_id;
        let mut copied = BTreeMap::new();
        for n in self.networks() {
            let written = self.complete_on(n).await?;
            if !written.is_empty() {
                copied.insert(n.name().to_string(), written);
            }
        }
        Ok(Initialised::Completed { repo_id, copied })
    }
}
