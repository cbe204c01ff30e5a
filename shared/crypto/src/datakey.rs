//! Write-only backups: per-backup data keys wrapped to the repository's
//! public key.
//!
//! The repository has an X25519 key pair. Its private half (the *read key*)
//! is in the keyring, so only a passphrase or a quorum of shares opens it;
//! its public half is pinned in the writers' own configuration
//! ([`Writer`]). Each backup gets a fresh random data key; the writer stores
//! it only wrapped to the public key (HPKE, RFC 9180: DHKEM(X25519,
//! HKDF-SHA256), HKDF-SHA256, AES-256-GCM) in `datakeys/<id>`, and forgets
//! it when the backup ends. A writer therefore holds nothing that opens a
//! backup written before it was started, or after.
//!
//! Anyone can encrypt to a public key, so a wrapped data key also carries a
//! tag under a key derived from the chunk-id key: a network that knows the
//! public key cannot plant a data key of its own and pass off objects
//! sealed under it.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "CRNK"
//! 4       1     format version (1)
//! 5       3     reserved (0)
//! 8       16    data key id
//! 24      16    recipient: fingerprint of the public key it is wrapped to
//! 40      32    HPKE encapsulated key
//! 72      48    HPKE ciphertext of the 32-byte data key (with its tag)
//! 120     32    keyed BLAKE3 of bytes 0..120 (the writers' tag)
//! ```

use crate::{CryptoError, DataKeyId, IdKey, Key32};
use hpke::{
    aead::AesGcm256, kdf::HkdfSha256, kem::X25519HkdfSha256, Deserializable, Kem, OpModeR, OpModeS,
    Serializable,
};
use rand::RngCore;

const MAGIC: &[u8; 4] = b"CRNK";
const VERSION: u8 = 1;
const INFO: &[u8] = b"cairn data key v1";
const BODY_LEN: usize = 120;
/// Length of a wrapped data key as stored.
pub const WRAPPED_LEN: usize = BODY_LEN + 32;

/// The repository's public key (X25519), as pinned by writers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub(crate) [u8; 32]);

impl PublicKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        let bytes: [u8; 32] = hex::decode(s)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| CryptoError::PublicKey(format!("{s:?} is not 32 hex bytes")))?;
        <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|e| CryptoError::PublicKey(format!("not an X25519 public key: {e}")))?;
        Ok(PublicKey(bytes))
    }

    /// Names the key in wrapped data keys and in errors (16 bytes of
    /// BLAKE3).
    pub fn fingerprint(&self) -> [u8; 16] {
        let h = blake3::derive_key("cairn public key fingerprint v1", &self.0);
        h[..16].try_into().expect("16 bytes")
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

/// The private half: opens wrapped data keys. Kept as the 32-byte seed the
/// key pair is derived from (RFC 9180 DeriveKeyPair).
#[derive(Clone)]
pub struct ReadKey(pub(crate) Key32);

impl ReadKey {
    pub fn generate() -> Self {
        ReadKey(Key32::random())
    }

    /// The read key a 32-byte seed makes (for tests that try what a worker
    /// holds as read keys, and for tools handling exported keys).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        ReadKey(Key32(seed))
    }

    fn pair(
        &self,
    ) -> (
        <X25519HkdfSha256 as Kem>::PrivateKey,
        <X25519HkdfSha256 as Kem>::PublicKey,
    ) {
        X25519HkdfSha256::derive_keypair(self.0.as_bytes())
    }

    pub fn public(&self) -> PublicKey {
        let bytes = self.pair().1.to_bytes();
        PublicKey(bytes.as_slice().try_into().expect("32 bytes"))
    }
}

impl std::fmt::Debug for ReadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadKey(<redacted>)")
    }
}

/// The tag key that writers and readers share (derived from the chunk-id
/// key, which both hold).
pub(crate) fn auth_key(id_key: &IdKey) -> Key32 {
    Key32(blake3::derive_key(
        "cairn data key auth v1",
        id_key.0.as_bytes(),
    ))
}

/// A backup's data key, fresh from [`Writer::data_key`]: the key itself
/// (handed to encrypt with each seal request, never stored) and its
/// wrapped form (stored at `datakeys/<id>`).
pub struct NewDataKey {
    pub id: DataKeyId,
    pub key: Key32,
    pub wrapped: Vec<u8>,
}

/// What a write-only worker holds: the chunk-id key (deduplication) and
/// the repository's public key. Nothing here opens a stored object.
#[derive(Clone)]
pub struct Writer {
    public: PublicKey,
    id_key: IdKey,
}

impl Writer {
    pub fn new(public: PublicKey, id_key: IdKey) -> Self {
        Writer { public, id_key }
    }

    pub fn public(&self) -> PublicKey {
        self.public
    }

    pub fn id_key(&self) -> &IdKey {
        &self.id_key
    }

    /// A fresh random data key, wrapped to the repository's public key.
    pub fn data_key(&self) -> NewDataKey {
        self.data_key_to(&self.public)
    }

    /// A fresh random data key, wrapped to `to` (a dataset's public key,
    /// format 4).
    pub fn data_key_to(&self, to: &PublicKey) -> NewDataKey {
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let id = DataKeyId(id);
        let key = Key32::random();
        let wrapped = wrap(to, &auth_key(&self.id_key), id, &key);
        NewDataKey { id, key, wrapped }
    }
}

pub(crate) fn wrap(public: &PublicKey, auth: &Key32, id: DataKeyId, key: &Key32) -> Vec<u8> {
    let pk = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(&public.0)
        .expect("checked when the public key was read");
    let mut out = Vec::with_capacity(WRAPPED_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[VERSION, 0, 0, 0]);
    out.extend_from_slice(&id.0);
    out.extend_from_slice(&public.fingerprint());
    let aad = out.clone();
    let (enc, ct) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, X25519HkdfSha256, _>(
        &OpModeS::Base,
        &pk,
        INFO,
        key.as_bytes(),
        &aad,
        &mut rand::rngs::OsRng,
    )
    .expect("HPKE seal of 32 bytes");
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&ct);
    debug_assert_eq!(out.len(), BODY_LEN);
    let tag = blake3::keyed_hash(auth.as_bytes(), &out);
    out.extend_from_slice(tag.as_bytes());
    out
}

/// Opens wrapped data key `id` (named `what` in errors).
pub(crate) fn unwrap(
    read: &ReadKey,
    auth: &Key32,
    id: DataKeyId,
    wrapped: &[u8],
) -> Result<Key32, CryptoError> {
    let bad = |problem: String| CryptoError::DataKey {
        id: id.to_hex(),
        problem,
    };
    if wrapped.len() != WRAPPED_LEN {
        return Err(bad(format!(
            "{} bytes, a wrapped data key has {WRAPPED_LEN}",
            wrapped.len()
        )));
    }
    if &wrapped[..4] != MAGIC {
        return Err(bad("bad magic".into()));
    }
    if wrapped[4] != VERSION {
        return Err(bad(format!(
            "format version {}, this build reads {VERSION}",
            wrapped[4]
        )));
    }
    if wrapped[8..24] != id.0 {
        return Err(bad(format!(
            "holds data key {} instead",
            hex::encode(&wrapped[8..24])
        )));
    }
    let tag = blake3::keyed_hash(auth.as_bytes(), &wrapped[..BODY_LEN]);
    if tag != blake3::Hash::from_bytes(wrapped[BODY_LEN..].try_into().expect("32 bytes")) {
        return Err(bad(
            "its tag does not verify: not written by a writer of this repository".into(),
        ));
    }
    let public = read.public();
    if wrapped[24..40] != public.fingerprint() {
        return Err(bad(format!(
            "wrapped to public key {}, this keyring's is {}",
            hex::encode(&wrapped[24..40]),
            hex::encode(public.fingerprint())
        )));
    }
    let (sk, _) = read.pair();
    let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&wrapped[40..72])
        .map_err(|e| bad(format!("encapsulated key: {e}")))?;
    let mut plain = hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &sk,
        &enc,
        INFO,
        &wrapped[72..BODY_LEN],
        &wrapped[..40],
    )
    .map_err(|_| bad("does not open with this repository's read key".into()))?;
    let key = <[u8; 32]>::try_from(plain.as_slice()).map(Key32);
    zeroize::Zeroize::zeroize(&mut plain);
    key.map_err(|_| bad("not 32 bytes".into()))
}

/// Opens wrapped data key `id` with `read`, checking its tag with the
/// writers' key derived from `id_key`: what a reader does, for callers
/// outside this crate (a test trying a worker's material).
pub fn open_wrapped(
    read: &ReadKey,
    id_key: &IdKey,
    id: DataKeyId,
    wrapped: &[u8],
) -> Result<Key32, CryptoError> {
    unwrap(read, &auth_key(id_key), id, wrapped)
}

/// The fingerprint of the public key `wrapped` is wrapped to.
pub fn recipient(wrapped: &[u8]) -> Option<[u8; 16]> {
    (wrapped.len() == WRAPPED_LEN && &wrapped[..4] == MAGIC)
        .then(|| wrapped[24..40].try_into().expect("16 bytes"))
}

/// Opens wrapped data key `id` with whichever of `reads` it was wrapped to.
pub(crate) fn unwrap_any(
    reads: &[ReadKey],
    auth: &Key32,
    id: DataKeyId,
    wrapped: &[u8],
) -> Result<Key32, CryptoError> {
    let to = recipient(wrapped);
    let read = reads
        .iter()
        .find(|r| Some(r.public().fingerprint()) == to)
        .or(reads.first())
        .ok_or_else(|| CryptoError::DataKey {
            id: id.to_hex(),
            problem: "no read key to open it with".into(),
        })?;
    unwrap(read, auth, id, wrapped)
}

/// The data key id a wrapped data key names (for checks by callers that
/// only have the bytes).
pub fn wrapped_id(wrapped: &[u8]) -> Option<DataKeyId> {
    (wrapped.len() == WRAPPED_LEN && &wrapped[..4] == MAGIC)
        .then(|| DataKeyId(wrapped[8..24].try_into().expect("16 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer_for(read: &ReadKey) -> Writer {
        Writer::new(read.public(), IdKey(Key32([7; 32])))
    }

    #[test]
    fn a_wrapped_data_key_opens_with_the_read_key_only() {
        let read = ReadKey::generate();
        let w = writer_for(&read);
        let dk = w.data_key();
        assert_eq!(dk.wrapped.len(), WRAPPED_LEN);
        assert_eq!(wrapped_id(&dk.wrapped), Some(dk.id));
        let auth = auth_key(w.id_key());
        let back = unwrap(&read, &auth, dk.id, &dk.wrapped).unwrap();
        assert_eq!(back.as_bytes(), dk.key.as_bytes());
        // The key is in no readable form in what is stored.
        assert!(!dk.wrapped.windows(32).any(|win| win == dk.key.as_bytes()));
        // Another repository's read key.
        let err = unwrap(&ReadKey::generate(), &auth, dk.id, &dk.wrapped).unwrap_err();
        assert!(err.to_string().contains("wrapped to public key"), "{err}");
    }

    #[test]
    fn every_damage_and_forgery_is_named() {
        let read = ReadKey::generate();
        let w = writer_for(&read);
        let dk = w.data_key();
        let auth = auth_key(w.id_key());
        for i in [0, 4, 8, 30, 50, 100, WRAPPED_LEN - 1] {
            let mut bad = dk.wrapped.clone();
            bad[i] ^= 1;
            let err = unwrap(&read, &auth, dk.id, &bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("data key {}", dk.id.to_hex())),
                "byte {i}: {err}"
            );
        }
        let err = unwrap(&read, &auth, dk.id, &dk.wrapped[..100])
            .unwrap_err()
            .to_string();
        assert!(err.contains("100 bytes"), "{err}");
        let err = unwrap(&read, &auth, DataKeyId([1; 16]), &dk.wrapped)
            .unwrap_err()
            .to_string();
        assert!(err.contains("instead"), "{err}");
        // Someone who knows the public key but not the writers' tag key
        // cannot plant a data key of their own.
        let forger = Writer::new(read.public(), IdKey(Key32([8; 32])));
        let planted = forger.data_key();
        let err = unwrap(&read, &auth, planted.id, &planted.wrapped)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tag does not verify"), "{err}");
    }

    #[test]
    fn public_keys_are_checked_when_read() {
        let read = ReadKey::generate();
        let hex = read.public().to_hex();
        assert_eq!(PublicKey::from_hex(&hex).unwrap(), read.public());
        assert!(PublicKey::from_hex("abcd").is_err());
        assert_ne!(read.public(), ReadKey::generate().public());
    }
}
