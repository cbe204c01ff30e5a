//! All of Cairn's key handling and cryptography, in one place.
//!
//! * [`keyfile`]: the repository key. A random master key, stored only wrapped
//!   by a passphrase-derived key (Argon2id) in `keys/<key_id>` on the networks,
//!   together with the keyring it protects. Several key files (passphrases)
//!   wrap the same master key.
//! * [`shares`]: the master key split into threshold shares (Shamir, vsss-rs).
//! * [`Keyring`]: what the master key unwraps: the chunk-id key (keyed BLAKE3,
//!   held by ingest) and the data keys (AES-256-GCM, held by encrypt and by
//!   restore). Services ask for the narrowest view they need
//!   ([`Keyring::id_key`], [`Keyring::sealer`]).
//! * [`seal`]: the sealed-object format (header, synthetic nonce, AES-256-GCM
//!   with the object id as associated data) and its opening.
//! * [`datakey`]: write-only backups. A fresh data key per backup, wrapped
//!   to the repository's X25519 public key; the private half (the read key)
//!   is in the keyring. Writers hold a [`Writer`] ([`writerfile`]), which
//!   opens nothing already stored.
//! * [`merkle`]: RFC 6962 Merkle roots (streaming, and for `rs_merkle`).
//! * [`Secret`]: a wrapper whose `Debug` never prints the value.
//!
pub mod datakey;
pub mod datasetkey;
pub mod keyfile;
pub mod merkle;
pub mod seal;
pub mod shares;
pub mod writerfile;

use zeroize::{Zeroize, ZeroizeOnDrop};

pub use datakey::{NewDataKey, PublicKey, ReadKey, Writer};
pub use keyfile::{KdfParams, KeyFile};
pub use seal::{ObjectKind, OpenedObject, Sealer, SEAL_OVERHEAD};
pub use shares::Share;
pub use writerfile::WriterFile;

/// 32 bytes of key material, zeroed on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Key32(pub(crate) [u8; 32]);

impl Key32 {
    pub fn random() -> Self {
        use rand::RngCore;
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Key32(k)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 32 bytes of key material given whole (a data key in a seal request).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Key32)
    }
}

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(<redacted>)")
    }
}

/// The repository's master key: what a key file's passphrase or a quorum of
/// shares opens, and what wraps the keyring. Held only by commands that
/// manage keys; never printed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MasterKey(pub(crate) Key32);

impl MasterKey {
    pub fn random() -> Self {
        MasterKey(Key32::random())
    }

    /// Authenticates the removal of key file `key_id` (its tombstone), so
    /// that only someone holding the master key can remove a key: a
    /// tombstone planted by whoever can write to one network is ignored.
    /// Authenticates a rotation's record (what it rotates to), so that a
    /// run finishing it never acts on a record planted on a network.
    pub fn rotation_tag(&self, record: &str) -> String {
        let k = blake3::derive_key("cairn key rotation v1", self.0.as_bytes());
        hex::encode(blake3::keyed_hash(&k, record.as_bytes()).as_bytes())
    }

    pub fn removal_tag(&self, key_id: &str) -> String {
        let k = blake3::derive_key("cairn key removal v1", self.0.as_bytes());
        hex::encode(blake3::keyed_hash(&k, key_id.as_bytes()).as_bytes())
    }
}

/// A secret string (passphrase) whose `Debug`/`Display` are redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The keys a repository's master key protects.
#[derive(Clone, Debug)]
pub struct Keyring {
    pub(crate) id_key: Key32,
    /// Symmetric data keys of repositories of format 2 and older, which
    /// sealed every object with one repository-wide key.
    pub(crate) data_keys: Vec<(DataKeyId, Key32)>,
    /// The private half of the repository's key pair (format 3 on): opens
    /// each backup's wrapped data key.
    pub(crate) read_key: Option<ReadKey>,
    /// Read keys of earlier key pairs (rotation): a backup that was running
    /// while the key was rotated wrapped its data key to the old public key.
    pub(crate) retired: Vec<ReadKey>,
}

/// Identifies one data key (16 bytes, written in every sealed header).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DataKeyId(pub [u8; 16]);

impl DataKeyId {
    pub fn random() -> Self {
        use rand::RngCore;
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        DataKeyId(id)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        hex::decode(s).ok()?.try_into().ok().map(DataKeyId)
    }
}

/// Computes chunk ids; with the repository's public key, all that a
/// writer holds.
#[derive(Clone)]
pub struct IdKey(pub(crate) Key32);

impl IdKey {
    /// The chunk id of `plaintext`: keyed BLAKE3, so a network that sees ids
    /// cannot test them against known plaintext.
    pub fn chunk_id(&self, plaintext: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(self.0.as_bytes(), plaintext).as_bytes()
    }

    /// What ingest's files cache files a path under: keyed like a chunk id
    /// (domain-separated from them), so the cache on the source host holds
    /// no file names.
    pub fn path_key(&self, path: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(self.0.as_bytes());
        h.update(b"cairn files-cache path\0");
        h.update(path);
        *h.finalize().as_bytes()
    }
}

impl Keyring {
    /// A fresh keyring: a random id key and a random key pair.
    pub fn generate() -> Self {
        Keyring {
            id_key: Key32::random(),
            data_keys: Vec::new(),
            read_key: Some(ReadKey::generate()),
            retired: Vec::new(),
        }
    }

    /// A keyring as format 2 made them (one symmetric data key, no key
    /// pair), for tests of reading old repositories and of upgrading them.
    pub fn generate_format2() -> Self {
        Keyring {
            id_key: Key32::random(),
            data_keys: vec![(DataKeyId::random(), Key32::random())],
            read_key: None,
            retired: Vec::new(),
        }
    }

    /// Gives a keyring of format 2 a key pair; nothing else changes, so
    /// everything it opened it still opens.
    pub fn with_read_key(mut self) -> Self {
        self.read_key.get_or_insert_with(ReadKey::generate);
        self
    }

    pub fn id_key(&self) -> IdKey {
        IdKey(self.id_key.clone())
    }

    /// The same keyring with a new key pair, the current read key retired
    /// (kept to open what was wrapped to it): what a rotation makes.
    pub fn rotated(&self) -> Self {
        let mut k = self.clone();
        if let Some(old) = k.read_key.replace(ReadKey::generate()) {
            k.retired.insert(0, old);
        }
        k
    }

    /// `wrapped` (data key `id`, as stored) wrapped to this keyring's
    /// public key instead, or `None` when it already is.
    pub fn rewrap(&self, id: DataKeyId, wrapped: &[u8]) -> Result<Option<Vec<u8>>, CryptoError> {
        let public = self.public_key().ok_or_else(|| CryptoError::DataKey {
            id: id.to_hex(),
            problem: "this keyring has no key pair".into(),
        })?;
        if datakey::recipient(wrapped) == Some(public.fingerprint()) {
            return Ok(None);
        }
        let key = datakey::unwrap_any(
            &self.read_keys(),
            &datakey::auth_key(&self.id_key()),
            id,
            wrapped,
        )?;
        Ok(Some(datakey::wrap(
            &public,
            &datakey::auth_key(&self.id_key()),
            id,
            &key,
        )))
    }

    /// A stored dataset key (`datasets/<tag>`) wrapped to this keyring's
    /// public key instead, or `None` when it already is.
    pub fn rewrap_dataset_key(
        &self,
        tag: DataKeyId,
        stored: &[u8],
    ) -> Result<Option<Vec<u8>>, CryptoError> {
        let public = self.public_key().ok_or_else(|| CryptoError::DataKey {
            id: format!("of dataset {}", tag.to_hex()),
            problem: "this keyring has no key pair".into(),
        })?;
        datasetkey::rewrap(
            &self.read_keys(),
            &datakey::auth_key(&self.id_key()),
            &public,
            tag,
            stored,
        )
    }

    /// The current read key first, then the retired ones.
    fn read_keys(&self) -> Vec<ReadKey> {
        self.read_key.iter().chain(&self.retired).cloned().collect()
    }

    /// The repository's public key, when it has a key pair (format 3 on).
    pub fn public_key(&self) -> Option<PublicKey> {
        self.read_key.as_ref().map(ReadKey::public)
    }

    /// What a write-only worker needs, when the repository has a key pair.
    pub fn writer(&self) -> Option<Writer> {
        Some(Writer::new(self.public_key()?, self.id_key()))
    }

    /// Opens objects sealed under the format-2 data keys and, learning
    /// each backup's data key from its wrapped copy, under any other.
    pub fn sealer(&self) -> Sealer {
        let keys = self.read_keys();
        let reader = (!keys.is_empty()).then(|| (keys, datakey::auth_key(&self.id_key())));
        Sealer::new(self.data_keys.clone(), reader)
    }
}

/// Everything that can go wrong with keys and sealed objects.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("wrong passphrase: none of the repository's key files opens with it")]
    WrongPassphrase,
    #[error("no passphrase given: set CAIRN_PASSPHRASE or keys.passphrase_file")]
    NoPassphrase,
    #[error("key file {name}: {problem}")]
    KeyFile { name: String, problem: String },
    #[error("{object}: authentication failed: the stored bytes were altered, truncated or belong to another object")]
    Tampered { object: String },
    #[error("{object}: sealed with data key {key_id}, which this keyring does not hold")]
    UnknownDataKey { object: String, key_id: String },
    #[error("{object}: not a sealed Cairn object ({problem})")]
    Format { object: String, problem: String },
    #[error("invalid key-derivation parameters: {0}")]
    Kdf(String),
    #[error("key shares: {0}")]
    Shares(String),
    #[error("key share {name}: {problem}")]
    Share { name: String, problem: String },
    #[error("{have} key share(s) given, the key was split so that {need} of {count} are needed")]
    TooFewShares {
        have: usize,
        need: usize,
        count: usize,
    },
    #[error("the shares open a master key that none of the repository's key files uses (a split of another key of this repository?)")]
    MasterNotUsed,
    #[error("public key: {0}")]
    PublicKey(String),
    #[error("data key {id}: {problem}")]
    DataKey { id: String, problem: String },
    #[error("writer file {name}: {problem}")]
    WriterFile { name: String, problem: String },
}
