//! The repository's keys on every network: several passphrases (key files
//! wrapping one master key), adding and removing them, and opening the
//! repository with a passphrase or with threshold shares of the master key.
//!
//! Removing a key writes a tombstone (`keys-removed/<key_id>`) carrying a
//! tag only the master key can make, then deletes the key file where the
//! network can. Opening refuses a key whose tombstone verifies, wherever the
//! key file lingers; a tombstone that does not verify (planted by whoever
//! can write to one network) is ignored. `complete_on`, which runs without a
//! key, never deletes a key file and never copies one that has a tombstone.
//!
//! Removal is not revocation: the master key stays the same, so whoever kept
//! a copy of the key file (a network that cannot delete, object versioning,
//! a snapshot) and knows the old passphrase still opens the repository
//! outside Cairn. Only a new master key (rotation) revokes.

use crate::{layout, RepoError, Repository};
use bytes::Bytes;
use cairn_crypto::{shares, KdfParams, KeyFile, Keyring, MasterKey, Secret, Share};
use cairn_events::{KeyChange, Pending};
use cairn_networks::PutMode;
use std::collections::BTreeMap;

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
    /// Removed, but still held by the networks named (they cannot delete,
    /// or were away).
    pub removed: bool,
}

/// The tombstone of a removed key, as stored.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Tombstone {
    key_id: String,
    removed_at: String,
    /// [`MasterKey::removal_tag`] of `key_id`.
    tag: String,
}

/// What one network holds of the repository's keys.
struct NetworkKeys {
    network: String,
    files: Vec<(String, KeyFile)>,
    tombstones: Vec<(String, Bytes)>,
    /// Key files there that could not be read or parsed.
    bad: Vec<Pending>,
}

/// Reads one network's key files and tombstones, if it holds repository
/// `repo_id`.
async fn list_one(n: &cairn_networks::DynNetwork, repo_id: &str) -> Result<NetworkKeys, Pending> {
    let name = n.name();
    match n.get(layout::CONFIG).await {
        Ok(b) => match serde_json::from_slice::<crate::format::RepoConfig>(&b) {
            Ok(c) if c.repo_id == repo_id => {}
            Ok(c) => {
                return Err(pending(
                    name,
                    format!(
                        "holds another repository ({}): its keys are not used",
                        c.repo_id
                    ),
                ))
            }
            Err(e) => return Err(pending(name, format!("its config does not parse: {e}"))),
        },
        Err(e) if e.is_not_found() => return Err(pending(name, "holds no repository yet")),
        Err(e) => return Err(pending(name, e.to_string())),
    }
    let keys = n
        .list(layout::KEYS_DIR)
        .await
        .map_err(|e| pending(name, e.to_string()))?;
    let removed = n
        .list(layout::KEYS_REMOVED_DIR)
        .await
        .map_err(|e| pending(name, e.to_string()))?;
    let mut out = NetworkKeys {
        network: name.to_string(),
        files: Vec::new(),
        tombstones: Vec::new(),
        bad: Vec::new(),
    };
    for path in removed {
        if let (Some(id), Ok(b)) = (
            path.strip_prefix(layout::KEYS_REMOVED_DIR),
            n.get(&path).await,
        ) {
            out.tombstones.push((id.to_string(), b));
        }
    }
    for path in keys {
        let Some(id) = path.strip_prefix(layout::KEYS_DIR) else {
            continue;
        };
        match n
            .get(&path)
            .await
            .map_err(RepoError::from)
            .and_then(|b| KeyFile::from_json(&path, &b).map_err(RepoError::from))
        {
            Ok(kf) => out.files.push((id.to_string(), kf)),
            Err(e) => out.bad.push(pending(name, e.to_string())),
        }
    }
    Ok(out)
}

/// How long opening waits for the other networks once one has answered.
const OPEN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Every key file and tombstone the networks of this repository hold.
struct Listing {
    files: BTreeMap<String, (KeyFile, Vec<String>)>,
    /// Key id → the tombstones' contents found (one per network holding one).
    tombstones: BTreeMap<String, Vec<Bytes>>,
    /// Networks that could not be read, hold another repository, or hold a
    /// key file that does not parse.
    problems: Vec<Pending>,
    /// Networks whose key files were listed.
    read: Vec<String>,
}

impl Listing {
    /// Whether `key_id` was removed by someone holding `master`.
    fn removed(&self, master: &MasterKey, key_id: &str) -> bool {
        let tag = master.removal_tag(key_id);
        self.tombstones.get(key_id).is_some_and(|all| {
            all.iter().any(|b| {
                serde_json::from_slice::<Tombstone>(b)
                    .is_ok_and(|t| t.key_id == key_id && t.tag == tag)
            })
        })
    }

    /// Whether network `name` answered the listing.
    fn was_read(&self, name: &str) -> bool {
        self.read.iter().any(|r| r == name)
    }

    /// The networks that could not be read at all, and why.
    fn unread(&self) -> Vec<Pending> {
        self.problems
            .iter()
            .filter(|p| !self.was_read(&p.network))
            .cloned()
            .collect()
    }

    /// Key files that wrap `master` and were not removed.
    fn live(&self, master: &MasterKey) -> Vec<&str> {
        self.files
            .iter()
            .filter(|(id, (kf, _))| {
                matches!(kf.open_with(master), Ok(Some(_))) && !self.removed(master, id)
            })
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

fn pending(network: &str, reason: impl Into<String>) -> Pending {
    Pending {
        network: network.to_string(),
        reason: reason.into(),
    }
}

fn join_err(e: tokio::task::JoinError) -> RepoError {
    RepoError::Format(format!("key task failed: {e}"))
}

impl Repository {
    /// Reads every network's key files and tombstones, from the networks
    /// that hold repository `repo_id` (others are named in `problems`), all
    /// at once. With `grace`, stops waiting that long after the first
    /// network answered (opening must not wait on a frozen network; the
    /// networks not waited for are named); without, waits for each up to
    /// [`crate::FETCH_TIMEOUT`].
    async fn key_listing(&self, repo_id: &str, grace: Option<std::time::Duration>) -> Listing {
        use futures::StreamExt;
        let mut l = Listing {
            files: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            problems: Vec::new(),
            read: Vec::new(),
        };
        let mut asked: futures::stream::FuturesUnordered<_> = self
            .networks()
            .iter()
            .map(|n| async move {
                match tokio::time::timeout(crate::FETCH_TIMEOUT, list_one(n, repo_id)).await {
                    Ok(r) => r,
                    Err(_) => Err(pending(
                        n.name(),
                        format!("did not answer within {} s", crate::FETCH_TIMEOUT.as_secs()),
                    )),
                }
            })
            .collect();
        let mut answered = Vec::new();
        let mut deadline = None;
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, asked.next()).await {
                    Ok(n) => n,
                    Err(_) => break,
                },
                None => asked.next().await,
            };
            let Some(result) = next else { break };
            match result {
                Ok(keys) => {
                    if let (Some(g), None) = (grace, deadline) {
                        deadline = Some(tokio::time::Instant::now() + g);
                    }
                    answered.push(keys);
                }
                Err(p) => l.problems.push(p),
            }
        }
        // Merge in the configured order, so holders are listed that way.
        for n in self.networks() {
            if let Some(keys) = answered.iter().find(|k| k.network == n.name()) {
                l.read.push(keys.network.clone());
                l.problems.extend(keys.bad.iter().cloned());
                for (id, b) in &keys.tombstones {
                    l.tombstones.entry(id.clone()).or_default().push(b.clone());
                }
                for (id, kf) in &keys.files {
                    l.files
                        .entry(id.clone())
                        .or_insert_with(|| (kf.clone(), Vec::new()))
                        .1
                        .push(keys.network.clone());
                }
            } else if !l.problems.iter().any(|p| p.network == n.name()) {
                l.problems
                    .push(pending(n.name(), "not waited for (slower than the others)"));
            }
        }
        l
    }

    /// Opens the repository with `creds`: the master key and keyring. When
    /// nothing opens and some key file could not be read, the error names it.
    pub async fn open_keys(&self, creds: &Credentials) -> Result<Opened, RepoError> {
        let repo_id = self.config().await?.repo_id;
        let listing = self.key_listing(&repo_id, Some(OPEN_GRACE)).await;
        if listing.files.is_empty() {
            return Err(if listing.problems.is_empty() {
                RepoError::NotInitialised(crate::names(self.networks()))
            } else {
                RepoError::Unavailable {
                    what: "a key file".into(),
                    errors: pending_text(&listing.problems),
                }
            });
        }
        let creds = creds.clone();
        tokio::task::spawn_blocking(move || open_from(&listing, &creds, repo_id))
            .await
            .map_err(join_err)?
    }

    /// The keyring, opened with `creds`.
    pub async fn unlock_with(&self, creds: &Credentials) -> Result<Keyring, RepoError> {
        Ok(self.open_keys(creds).await?.keyring)
    }

    /// The key files of the opened repository, for `cairn key list`, and
    /// the networks (or files) that could not be read.
    pub async fn list_keys(
        &self,
        opened: &Opened,
    ) -> Result<(Vec<KeyInfo>, Vec<Pending>), RepoError> {
        let listing = self.key_listing(&opened.repo_id, None).await;
        let mut problems = listing.problems.clone();
        let mut keys = Vec::new();
        for (id, (kf, networks)) in &listing.files {
            if !matches!(kf.open_with(&opened.master), Ok(Some(_))) {
                problems.push(pending(
                    &networks.join(","),
                    format!("key file {id} does not wrap this repository's master key"),
                ));
                continue;
            }
            keys.push(KeyInfo {
                current: opened.key_id.as_deref() == Some(id.as_str()),
                removed: listing.removed(&opened.master, id),
                key_id: id.clone(),
                created: kf.created.clone(),
                label: kf.label.clone(),
                kdf: kf.kdf_params(),
                networks: networks.clone(),
            });
        }
        keys.sort_by(|a, b| a.created.cmp(&b.created).then(a.key_id.cmp(&b.key_id)));
        Ok((keys, problems))
    }

    /// Adds `passphrase` as another key of the opened repository: a key file
    /// wrapping the same master key, written to every network it can reach.
    /// A network it could not reach gets it from `cairn init` or a store
    /// worker's start later (`complete_on`), and is named in `pending`.
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
        .map_err(join_err)??;
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
                Err(e) => change.pending.push(pending(n.name(), e.to_string())),
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

    /// Removes key `key_id` from the opened repository, or finishes its
    /// removal where an earlier one did not reach. Never removes the last
    /// key that opens the repository, and never leaves a network without
    /// one: the remaining keys are copied to every network first, and a
    /// network that could not take them keeps `key_id` (pending).
    pub async fn remove_key(&self, opened: &Opened, key_id: &str) -> Result<KeyChange, RepoError> {
        let listing = self.key_listing(&opened.repo_id, None).await;
        let master = &opened.master;
        let known = listing
            .files
            .get(key_id)
            .is_some_and(|(kf, _)| matches!(kf.open_with(master), Ok(Some(_))))
            || listing.removed(master, key_id);
        if !known {
            return Err(RepoError::NoSuchKey(key_id.to_string()));
        }
        let others: Vec<&str> = listing
            .live(master)
            .into_iter()
            .filter(|id| *id != key_id)
            .collect();
        if others.is_empty() {
            return Err(RepoError::LastKey(key_id.to_string()));
        }
        let label = listing
            .files
            .get(key_id)
            .and_then(|(kf, _)| kf.label.clone());
        let tombstone = Bytes::from(
            serde_json::to_vec(&Tombstone {
                key_id: key_id.to_string(),
                removed_at: cairn_events::now_rfc3339(),
                tag: master.removal_tag(key_id),
            })
            .map_err(|e| RepoError::Format(e.to_string()))?,
        );
        let mut change = KeyChange {
            repo_id: opened.repo_id.clone(),
            key_id: key_id.to_string(),
            label,
            networks: Vec::new(),
            pending: listing.unread(),
        };
        for n in self.networks() {
            if !listing.was_read(n.name()) {
                continue;
            }
            let step = async {
                // Every other live key on this network first, so that it
                // keeps one that opens.
                for id in &others {
                    let (kf, _) = &listing.files[*id];
                    n.put(
                        &layout::key_file(id),
                        Bytes::from(kf.to_json()),
                        PutMode::IfAbsent,
                    )
                    .await?;
                }
                n.put(
                    &layout::key_removed(key_id),
                    tombstone.clone(),
                    PutMode::IfAbsent,
                )
                .await?;
                if !n.capabilities().can_delete {
                    if n.exists(&layout::key_file(key_id)).await? {
                        return Ok(Some(
                            "this network cannot delete: the key file stays there, marked removed; removal is not revocation there (only a new master key is)",
                        ));
                    }
                    return Ok(None);
                }
                match n.delete(&layout::key_file(key_id)).await {
                    Err(e) if !e.is_not_found() => Err(e),
                    _ => Ok(None),
                }
            };
            match step.await {
                Ok(None) => change.networks.push(n.name().to_string()),
                Ok(Some(reason)) => change.pending.push(pending(n.name(), reason)),
                Err(e) => change.pending.push(pending(
                    n.name(),
                    format!("{e} (run `cairn key remove {key_id}` again to finish)"),
                )),
            }
        }
        if change.networks.is_empty()
            && change
                .pending
                .iter()
                .all(|p| !p.reason.contains("cannot delete"))
        {
            return Err(RepoError::Unavailable {
                what: format!("a network to remove key {key_id} from"),
                errors: pending_text(&change.pending),
            });
        }
        Ok(change)
    }
}

/// What `cairn key upgrade` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Upgraded {
    pub repo_id: String,
    /// The repository's public key (hex), for writers to pin.
    pub public_key: String,
    /// Whether the repository already had a key pair everywhere.
    pub already: bool,
    /// Networks now holding the upgraded key files and config.
    pub networks: Vec<String>,
    pub pending: Vec<Pending>,
}

impl Repository {
    /// Gives a repository of format 2 a key pair (format 3), so that it
    /// takes write-only backups: every live key file is rewritten in place
    /// with the same passphrase wrapping the same master key, its keyring
    /// now holding a read key, then the config names the public key.
    /// Nothing sealed is touched: every format-2 object stays readable with
    /// the data key the keyring keeps. Run again to finish on networks that
    /// were away; a key pair written by an earlier run is kept.
    pub async fn upgrade(&self, opened: &Opened) -> Result<Upgraded, RepoError> {
        let mut config = self.config().await?;
        let listing = self.key_listing(&opened.repo_id, None).await;
        let master = &opened.master;
        // A key pair an earlier, unfinished run wrote is the one to keep.
        let keyring = listing
            .files
            .values()
            .filter_map(|(kf, _)| kf.open_with(master).ok().flatten())
            .find(|k| k.public_key().is_some())
            .unwrap_or_else(|| opened.keyring.clone().with_read_key());
        let public = keyring.public_key().expect("a key pair").to_hex();
        let already = config.format == crate::format::FORMAT
            && config.public_key.as_deref() == Some(public.as_str())
            && listing.files.values().all(
                |(kf, _)| !matches!(kf.open_with(master), Ok(Some(k)) if k.public_key().is_none()),
            );
        if let Some(other) = config.public_key.as_deref().filter(|k| **k != public) {
            return Err(RepoError::Format(format!(
                "the config names public key {other}, but no key file holds its read key: not upgrading over it"
            )));
        }
        if already && listing.problems.is_empty() {
            return Ok(Upgraded {
                repo_id: opened.repo_id.clone(),
                public_key: public,
                already,
                networks: listing.read.clone(),
                pending: Vec::new(),
            });
        }
        config.format = crate::format::FORMAT;
        config.public_key = Some(public.clone());
        let config_bytes = config.to_bytes();
        let mut rewritten = Vec::new();
        for id in listing.live(master) {
            let (kf, _) = &listing.files[id];
            rewritten.push((
                id.to_string(),
                Bytes::from(kf.rewrapped(master, &keyring)?.to_json()),
            ));
        }
        let mut done = Upgraded {
            repo_id: opened.repo_id.clone(),
            public_key: public,
            already,
            networks: Vec::new(),
            pending: listing.unread(),
        };
        for n in self.networks() {
            if !listing.was_read(n.name()) {
                continue;
            }
            let step = async {
                // Key files first: a config naming the public key on a
                // network whose key files hold no read key would promise
                // what that network cannot open.
                for (id, bytes) in &rewritten {
                    n.put(&layout::key_file(id), bytes.clone(), PutMode::Overwrite)
                        .await?;
                }
                n.put(layout::CONFIG, config_bytes.clone(), PutMode::Overwrite)
                    .await
            };
            match step.await {
                Ok(_) => done.networks.push(n.name().to_string()),
                Err(e) => done.pending.push(pending(
                    n.name(),
                    format!("{e} (run `cairn key upgrade` again to finish)"),
                )),
            }
        }
        if done.networks.is_empty() {
            return Err(RepoError::Unavailable {
                what: "a network to upgrade".into(),
                errors: pending_text(&done.pending),
            });
        }
        Ok(done)
    }
}

/// A rotation in progress, as stored at `rotation` on every network until it
/// is finished. Tagged with the new master key: a run finishing it acts only
/// on a record whose tag verifies, never on one a network planted.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct RotationRecord {
    /// The key pair rotated to.
    public_key: String,
    /// The key file wrapping the new master key.
    key_id: String,
    started: String,
    /// The old key files' tombstones, tagged with the old master key when
    /// the rotation began (so that a run with the new key can write them).
    tombstones: Vec<Tombstone>,
    /// Set once every network holds the rotated state; the record is then
    /// overwritten (a network that cannot delete keeps it, finished).
    #[serde(default)]
    finished: bool,
    tag: String,
}

impl RotationRecord {
    fn text(&self) -> String {
        let ids: Vec<String> = self
            .tombstones
            .iter()
            .map(|t| format!("{}:{}", t.key_id, t.tag))
            .collect();
        format!(
            "{} {} {} {} {}",
            self.public_key,
            self.key_id,
            self.started,
            self.finished,
            ids.join(",")
        )
    }
}

/// What `cairn key rotate` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rotated {
    pub repo_id: String,
    /// The new public key (writers need a new writer file).
    pub public_key: String,
    /// The key file wrapping the new master key.
    pub key_id: String,
    /// Key files of the old master key, removed once every network holds
    /// the new one (other passphrases must be added again).
    pub dropped: Vec<String>,
    /// Wrapped data keys re-wrapped to the new public key, on all networks.
    pub rewrapped: u64,
    /// Wrapped data keys no key of this repository opens (damaged, or
    /// written by someone else), left as they were, with why.
    pub not_rewrapped: Vec<String>,
    /// Whether every network holds the new state and the old keys are gone.
    pub finished: bool,
    pub networks: Vec<String>,
    pub pending: Vec<Pending>,
}

impl Repository {
    /// Rotates the repository's keys: a new master key (in a new key file
    /// for `passphrase`) and a new key pair; every wrapped data key on every
    /// network re-wrapped to the new public key (no chunk, pack or manifest
    /// is written again); the config names the new public key. Only once
    /// every network holds all of that are the old key files tombstoned and
    /// deleted: until then the old passphrases still open the repository,
    /// and the rotation is finished by running this again with the new
    /// passphrase, from the record it leaves at `rotation`.
    pub async fn rotate(
        &self,
        opened: &Opened,
        passphrase: &Secret,
        kdf: KdfParams,
        created: &str,
    ) -> Result<Rotated, RepoError> {
        if opened.keyring.public_key().is_none() {
            return Err(RepoError::Format(format!(
                "repository {} has no key pair yet (format 2): run `cairn key upgrade` first",
                opened.repo_id
            )));
        }
        if let Some(record) = self.rotation_record(&opened.master).await? {
            return self.finish_rotation(opened, record).await;
        }
        if let Some(public) = self.foreign_rotation().await? {
            return Err(RepoError::Format(format!(
                "a rotation to public key {public} is unfinished and these credentials do not hold its new key: run `cairn key rotate` with the new passphrase to finish it"
            )));
        }
        let listing = self.key_listing(&opened.repo_id, None).await;
        let old_master = opened.master.clone();
        let old: Vec<String> = listing
            .live(&old_master)
            .into_iter()
            .map(String::from)
            .collect();
        let master = MasterKey::random();
        let keyring = opened.keyring.rotated();
        let (m, k, p, c) = (
            master.clone(),
            keyring.clone(),
            passphrase.clone(),
            created.to_string(),
        );
        let kf = tokio::task::spawn_blocking(move || {
            KeyFile::create_for(&m, &p, kdf, &k, &c, Some("rotated".into()))
        })
        .await
        .map_err(join_err)??;
        let mut record = RotationRecord {
            public_key: keyring.public_key().expect("a key pair").to_hex(),
            key_id: kf.key_id.clone(),
            started: created.to_string(),
            tombstones: old
                .iter()
                .map(|id| Tombstone {
                    key_id: id.clone(),
                    removed_at: created.to_string(),
                    tag: old_master.removal_tag(id),
                })
                .collect(),
            finished: false,
            tag: String::new(),
        };
        record.tag = master.rotation_tag(&record.text());
        let record_bytes = Bytes::from(
            serde_json::to_vec_pretty(&record).map_err(|e| RepoError::Format(e.to_string()))?,
        );
        // The new key file and the record everywhere first: from here on a
        // run with the new passphrase can finish what this one leaves.
        let key_bytes = Bytes::from(kf.to_json());
        for n in self.networks() {
            let _ = n
                .put(
                    &layout::key_file(&kf.key_id),
                    key_bytes.clone(),
                    PutMode::IfAbsent,
                )
                .await;
            let _ = n
                .put(layout::ROTATION, record_bytes.clone(), PutMode::Overwrite)
                .await;
        }
        let opened_new = Opened {
            master,
            keyring,
            key_id: Some(kf.key_id.clone()),
            repo_id: opened.repo_id.clone(),
        };
        self.finish_rotation(&opened_new, record).await
    }

    /// An unfinished rotation record on any network that `master` tagged.
    async fn rotation_record(
        &self,
        master: &MasterKey,
    ) -> Result<Option<RotationRecord>, RepoError> {
        for n in self.networks() {
            if let Ok(b) = n.get(layout::ROTATION).await {
                if let Ok(r) = serde_json::from_slice::<RotationRecord>(&b) {
                    if !r.finished && r.tag == master.rotation_tag(&r.text()) {
                        return Ok(Some(r));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The public key an unfinished rotation record names, whoever made it.
    async fn foreign_rotation(&self) -> Result<Option<String>, RepoError> {
        for n in self.networks() {
            if let Ok(b) = n.get(layout::ROTATION).await {
                if let Ok(r) = serde_json::from_slice::<RotationRecord>(&b) {
                    if !r.finished {
                        return Ok(Some(r.public_key));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Brings every network to the rotated state `record` names, with the
    /// new keys `opened`; drops the old key files once all are there.
    async fn finish_rotation(
        &self,
        opened: &Opened,
        record: RotationRecord,
    ) -> Result<Rotated, RepoError> {
        let keyring = &opened.keyring;
        let public = keyring.public_key().expect("a key pair").to_hex();
        let mut config = self.config().await?;
        config.format = crate::format::FORMAT;
        config.public_key = Some(public.clone());
        let config_bytes = config.to_bytes();
        let key_path = layout::key_file(&record.key_id);
        let mut key_bytes = None;
        for n in self.networks() {
            if let Ok(b) = n.get(&key_path).await {
                key_bytes = Some(b);
                break;
            }
        }
        let key_bytes = key_bytes.ok_or_else(|| RepoError::Unavailable {
            what: format!("the rotated key file {}", record.key_id),
            errors: "no network holds it".into(),
        })?;
        let mut done = Rotated {
            repo_id: opened.repo_id.clone(),
            public_key: public.clone(),
            key_id: record.key_id.clone(),
            dropped: record.tombstones.iter().map(|t| t.key_id.clone()).collect(),
            rewrapped: 0,
            not_rewrapped: Vec::new(),
            finished: false,
            networks: Vec::new(),
            pending: Vec::new(),
        };
        for n in self.networks() {
            let step = async {
                n.put(&key_path, key_bytes.clone(), PutMode::IfAbsent)
                    .await?;
                let mut rewrapped = 0u64;
                let mut skipped = Vec::new();
                // Format 4: each dataset's key is wrapped to the repository's
                // key, and data keys to the datasets' (left as they are).
                let mut datasets = std::collections::BTreeSet::new();
                for path in n.list(layout::DATASETS_DIR).await? {
                    let stored = n.get(&path).await?;
                    let Some(tag) = cairn_crypto::datasetkey::tag_of(&stored) else {
                        skipped.push(format!("{} on {}: not a dataset key", path, n.name()));
                        continue;
                    };
                    match keyring.rewrap_dataset_key(tag, &stored) {
                        Ok(Some(new)) => {
                            n.put(&path, Bytes::from(new), PutMode::Overwrite).await?;
                            rewrapped += 1;
                        }
                        Ok(None) => {}
                        Err(e) => skipped.push(format!("{} on {}: {e}", path, n.name())),
                    }
                    if let Some(fp) = path.strip_prefix(layout::DATASETS_DIR) {
                        datasets.insert(fp.to_string());
                    }
                }
                for path in n.list(layout::DATA_KEYS_DIR).await? {
                    let Some(id) = path
                        .strip_prefix(layout::DATA_KEYS_DIR)
                        .and_then(cairn_crypto::DataKeyId::from_hex)
                    else {
                        continue;
                    };
                    let wrapped = n.get(&path).await?;
                    if cairn_crypto::datakey::recipient(&wrapped)
                        .is_some_and(|to| datasets.contains(&hex::encode(to)))
                    {
                        continue;
                    }
                    match keyring.rewrap(id, &wrapped) {
                        Ok(Some(new)) => {
                            n.put(&path, Bytes::from(new), PutMode::Overwrite).await?;
                            rewrapped += 1;
                        }
                        Ok(None) => {}
                        // Not ours to open (damaged, or planted): left as
                        // it is and named; restore names it too.
                        Err(e) => skipped.push(format!("{} on {}: {e}", path, n.name())),
                    }
                }
                n.put(layout::CONFIG, config_bytes.clone(), PutMode::Overwrite)
                    .await?;
                Ok::<_, cairn_networks::NetworkError>((rewrapped, skipped))
            };
            match step.await {
                Ok((r, skipped)) => {
                    done.rewrapped += r;
                    done.not_rewrapped.extend(skipped);
                    done.networks.push(n.name().to_string());
                }
                Err(e) => done.pending.push(pending(
                    n.name(),
                    format!(
                        "{e} (run `cairn key rotate` again, with the new passphrase, to finish)"
                    ),
                )),
            }
        }
        if !done.pending.is_empty() {
            return Ok(done);
        }
        // Every network holds the new key file, the re-wrapped keys and the
        // config: only now do the old key files go.
        let mut closed = record.clone();
        closed.finished = true;
        closed.tag = opened.master.rotation_tag(&closed.text());
        let closed = Bytes::from(serde_json::to_vec_pretty(&closed).expect("record serializes"));
        for n in self.networks() {
            let step = async {
                for t in &record.tombstones {
                    let b = serde_json::to_vec(t).expect("tombstone serializes");
                    n.put(
                        &layout::key_removed(&t.key_id),
                        Bytes::from(b),
                        PutMode::IfAbsent,
                    )
                    .await?;
                    if n.capabilities().can_delete {
                        match n.delete(&layout::key_file(&t.key_id)).await {
                            Err(e) if !e.is_not_found() => return Err(e),
                            _ => {}
                        }
                    }
                }
                n.put(layout::ROTATION, closed.clone(), PutMode::Overwrite)
                    .await?;
                Ok(())
            };
            if let Err(e) = step.await {
                done.pending.push(pending(
                    n.name(),
                    format!(
                        "{e} (run `cairn key rotate` again, with the new passphrase, to finish)"
                    ),
                ));
            }
        }
        done.finished = done.pending.is_empty();
        Ok(done)
    }
}

/// Opens with `creds` from the key files listed (blocking: Argon2id).
fn open_from(listing: &Listing, creds: &Credentials, repo_id: String) -> Result<Opened, RepoError> {
    match creds {
        Credentials::Shares(s) => {
            let master = shares::combine(s, &repo_id)?;
            let files: Vec<KeyFile> = listing.files.values().map(|(f, _)| f.clone()).collect();
            let keyring = cairn_crypto::keyfile::open_any_with(&files, &master)?;
            Ok(Opened {
                master,
                keyring,
                key_id: None,
                repo_id,
            })
        }
        Credentials::Passphrase(p) => {
            if p.is_empty() {
                return Err(cairn_crypto::CryptoError::NoPassphrase.into());
            }
            let mut removed = None;
            let mut last: Option<RepoError> = None;
            for (id, (kf, _)) in &listing.files {
                match kf.open_all(p) {
                    Ok((m, _)) if listing.removed(&m, id) => removed = Some(id.clone()),
                    Ok((master, keyring)) => {
                        return Ok(Opened {
                            master,
                            keyring,
                            key_id: Some(id.clone()),
                            repo_id,
                        })
                    }
                    Err(cairn_crypto::CryptoError::WrongPassphrase) => {}
                    Err(e) => last = Some(e.into()),
                }
            }
            if let Some(id) = removed {
                return Err(RepoError::KeyRemoved(id));
            }
            if let Some(e) = last {
                return Err(e);
            }
            // A key file that could not be read may be the one this
            // passphrase opens: name it rather than only "wrong passphrase".
            if let Some(p) = listing
                .problems
                .iter()
                .find(|p| p.reason.contains("key file"))
            {
                return Err(RepoError::Unavailable {
                    what: "the repository with this passphrase (wrong passphrase, or its key file is damaged)".into(),
                    errors: format!("{}: {}", p.network, p.reason),
                });
            }
            Err(cairn_crypto::CryptoError::WrongPassphrase.into())
        }
    }
}

fn pending_text(p: &[Pending]) -> String {
    p.iter()
        .map(|p| format!("{}: {}", p.network, p.reason))
        .collect::<Vec<_>>()
        .join("; ")
}
