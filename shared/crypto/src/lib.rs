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
//! * [`merkle`]: RFC 6962 Merkle roots (streaming, and for `rs_merkle`).
//! * [`Secret`]: a wrapper whose `Debug` never prints the value.
//!
//! Later work (several passphrases, Shamir shares, rotation, write-only
//! pipelines) changes this crate and nothing else.

pub mod keyfile;
pub mod merkle;
pub mod seal;
pub mod shares;

use zeroize::{Zeroize, ZeroizeOnDrop};

pub use keyfile::{KdfParams, KeyFile};
pub use seal::{ObjectKind, OpenedObject, Sealer, SEAL_OVERHEAD};
pub use shares::Share;

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
    pub(crate) data_keys: Vec<(DataKeyId, Key32)>,
}

/// Identifies one data key (16 bytes, written in every sealed header).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DataKeyId(pub [u8; 16]);

impl DataKeyId {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Computes chunk ids; all that ingest holds.
#[derive(Clone)]
pub struct IdKey(Key32);

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
    /// A fresh keyring: random id key and one random data key.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        Keyring {
            id_key: Key32::random(),
            data_keys: vec![(DataKeyId(id), Key32::random())],
        }
    }

    pub fn id_key(&self) -> IdKey {
        IdKey(self.id_key.clone())
    }

    /// Seals with the current data key and opens with any known one.
    pub fn sealer(&self) -> Sealer {
        Sealer::new(self.data_keys.clone())
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
}
