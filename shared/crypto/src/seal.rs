//! The sealed-object format and its opening.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "CRNS"
//! 4       1     format version (1)
//! 5       1     kind (1 = chunk, 2 = manifest)
//! 6       1     flags (bit 0: payload is zstd-compressed)
//! 7       1     reserved (0)
//! 8       16    data key id
//! 24      12    nonce
//! 36      n     AES-256-GCM ciphertext
//! 36+n    16    GCM tag
//! ```
//! Associated data: the 36 header bytes followed by the object id (chunk id or
//! backup id), so a sealed object cannot be passed off as another one.
//!
//! The nonce is synthetic (as in SIV): a keyed BLAKE3 hash, under a key derived
//! from the data key, of the header and the plaintext. Two different plaintexts
//! never share a nonce (short of a hash collision), and sealing the same
//! plaintext twice gives the same bytes, so a redelivered chunk is sealed
//! identically and every network holds identical ciphertext.

use crate::datakey::{self, ReadKey};
use crate::{CryptoError, DataKeyId, Key32};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use std::sync::{Arc, RwLock};

const MAGIC: &[u8; 4] = b"CRNS";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 36;
const TAG_LEN: usize = 16;
/// Bytes a sealed object adds to its payload.
pub const SEAL_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// What a sealed object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Chunk = 1,
    Manifest = 2,
    /// A backup's catalogue entry: kept apart from its manifest, which is
    /// sealed under the same object id.
    Catalogue = 3,
}

/// A decrypted object.
pub struct OpenedObject {
    pub kind: ObjectKind,
    pub compressed: bool,
    pub payload: Vec<u8>,
}

/// The data key a sealed object (or a pack, by its first chunk) names in
/// its header; `None` when the bytes are no sealed object.
pub fn key_id_of(sealed: &[u8]) -> Option<DataKeyId> {
    (sealed.len() >= HEADER_LEN && &sealed[..4] == MAGIC)
        .then(|| DataKeyId(sealed[8..24].try_into().expect("16 bytes")))
}

/// As [`key_id_of`], from the first 24 bytes alone (a ranged read).
pub fn key_id_of_header(head: &[u8]) -> Option<DataKeyId> {
    (head.len() >= 24 && &head[..4] == MAGIC)
        .then(|| DataKeyId(head[8..24].try_into().expect("16 bytes")))
}

/// One data key, ready to seal and open.
struct SealKey {
    id: DataKeyId,
    cipher: Aes256Gcm,
    nonce_key: Key32,
}

impl SealKey {
    fn new(id: DataKeyId, k: &Key32) -> Arc<Self> {
        Arc::new(SealKey {
            id,
            cipher: Aes256Gcm::new_from_slice(k.as_bytes()).expect("32-byte key"),
            nonce_key: Key32(blake3::derive_key(
                "cairn sealed-object nonce v1",
                k.as_bytes(),
            )),
        })
    }
}

/// Seals with one data key and opens with any it knows. A reader's sealer
/// (from the keyring) also learns data keys from their wrapped copies
/// ([`learn`](Self::learn)); clones share what was learnt.
#[derive(Clone)]
pub struct Sealer {
    /// The key new objects are sealed with.
    current: Option<Arc<SealKey>>,
    known: Arc<RwLock<Vec<Arc<SealKey>>>>,
    /// The read keys (current first, then retired ones) and the writers'
    /// tag key, to open wrapped data keys.
    reader: Option<Arc<(Vec<ReadKey>, Key32)>>,
    /// Dataset keys learnt (format 4): data keys are wrapped to them.
    datasets: Arc<RwLock<Vec<ReadKey>>>,
}

impl Sealer {
    pub(crate) fn new(
        keys: Vec<(DataKeyId, Key32)>,
        reader: Option<(Vec<ReadKey>, Key32)>,
    ) -> Self {
        let known: Vec<_> = keys.iter().map(|(id, k)| SealKey::new(*id, k)).collect();
        Sealer {
            current: known.last().cloned(),
            known: Arc::new(RwLock::new(known)),
            reader: reader.map(Arc::new),
            datasets: Arc::default(),
        }
    }

    /// A sealer for one backup's data key, as encrypt gets it with each seal
    /// request: it opens nothing sealed under any other key.
    pub fn for_data_key(id: DataKeyId, key: &Key32) -> Self {
        Sealer::new(vec![(id, key.clone())], None)
    }

    /// The data key `sealed` names, when this sealer does not know it yet
    /// (`None` also when the bytes are no sealed object: opening says why).
    pub fn missing_key(&self, sealed: &[u8]) -> Option<DataKeyId> {
        let id = key_id_of(sealed)?;
        let known = self.known.read().expect("key list lock");
        (!known.iter().any(|k| k.id == id)).then_some(id)
    }

    /// Opens a stored dataset key (the bytes of `datasets/<fingerprint>`)
    /// and opens data keys wrapped to it from now on; returns the dataset's
    /// tag and public key.
    pub fn learn_dataset_key(
        &self,
        stored: &[u8],
    ) -> Result<(DataKeyId, crate::PublicKey), CryptoError> {
        let tag = crate::datasetkey::tag_of(stored).ok_or_else(|| CryptoError::DataKey {
            id: "of a dataset".into(),
            problem: format!("{} bytes, not a dataset key", stored.len()),
        })?;
        let Some(reader) = &self.reader else {
            return Err(CryptoError::DataKey {
                id: format!("of dataset {}", tag.to_hex()),
                problem: "this key holds no read key".into(),
            });
        };
        let (reads, auth) = reader.as_ref();
        let key = crate::datasetkey::open(reads, auth, tag, stored)?;
        let public = key.public();
        let mut known = self.datasets.write().expect("dataset key lock");
        if !known.iter().any(|k| k.public() == public) {
            known.push(key);
        }
        Ok((tag, public))
    }

    /// Whether this sealer holds the private key `wrapped` (a wrapped data
    /// key) is wrapped to: a read key, or a dataset key learnt.
    pub fn opens_recipient(&self, wrapped: &[u8]) -> bool {
        let Some(to) = datakey::recipient(wrapped) else {
            return false;
        };
        let reads = self
            .reader
            .as_ref()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let datasets = self.datasets.read().expect("dataset key lock");
        reads
            .iter()
            .chain(datasets.iter())
            .any(|k| k.public().fingerprint() == to)
    }

    /// Whether this sealer can learn data keys (it holds the read key).
    pub fn can_learn(&self) -> bool {
        self.reader.is_some()
    }

    /// Opens wrapped data key `id` (the bytes of `datakeys/<id>`) and knows
    /// it from now on.
    pub fn learn(&self, id: DataKeyId, wrapped: &[u8]) -> Result<(), CryptoError> {
        let Some(reader) = &self.reader else {
            return Err(CryptoError::DataKey {
                id: id.to_hex(),
                problem: "this key holds no read key (a writer's key, or a repository of format 2)"
                    .into(),
            });
        };
        let (reads, auth) = reader.as_ref();
        let mut all = reads.clone();
        all.extend(
            self.datasets
                .read()
                .expect("dataset key lock")
                .iter()
                .cloned(),
        );
        let key = datakey::unwrap_any(&all, auth, id, wrapped)?;
        let mut known = self.known.write().expect("key list lock");
        if !known.iter().any(|k| k.id == id) {
            known.push(SealKey::new(id, &key));
        }
        Ok(())
    }

    /// Seals `payload` as object `object_id`.
    pub fn seal(
        &self,
        kind: ObjectKind,
        compressed: bool,
        object_id: &[u8],
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + SEAL_OVERHEAD);
        self.seal_into(&mut out, kind, compressed, object_id, payload);
        out
    }

    /// As [`seal`](Self::seal), appending the sealed object to `out` (a
    /// pack's chunks are sealed one after the other in place, never copied).
    pub fn seal_into(
        &self,
        out: &mut Vec<u8>,
        kind: ObjectKind,
        compressed: bool,
        object_id: &[u8],
        payload: &[u8],
    ) {
        let SealKey {
            id: key_id,
            cipher,
            nonce_key,
        } = self
            .current
            .as_deref()
            .expect("sealing needs a data key: Sealer::for_data_key");
        let start = out.len();
        out.reserve(payload.len() + SEAL_OVERHEAD);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, kind as u8, compressed as u8, 0]);
        out.extend_from_slice(&key_id.0);
        let mut h = blake3::Hasher::new_keyed(nonce_key.as_bytes());
        h.update(&out[start..]);
        h.update(&(object_id.len() as u64).to_le_bytes());
        h.update(object_id);
        h.update(payload);
        let nonce: [u8; 12] = h.finalize().as_bytes()[..12].try_into().expect("12 bytes");
        out.extend_from_slice(&nonce);
        let aad = [&out[start..start + HEADER_LEN], object_id].concat();
        out.extend_from_slice(payload);
        let tag = cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &aad,
                &mut out[start + HEADER_LEN..],
            )
            .expect("payload within AES-GCM limits");
        out.extend_from_slice(&tag);
    }

    /// Opens a sealed object, checking that it is `object_id` (named `what`
    /// in errors, e.g. "chunk 3fa2…").
    pub fn open(
        &self,
        what: &str,
        object_id: &[u8],
        sealed: &[u8],
    ) -> Result<OpenedObject, CryptoError> {
        let fmt = |problem: &str| CryptoError::Format {
            object: what.to_string(),
            problem: problem.to_string(),
        };
        if sealed.len() < SEAL_OVERHEAD {
            return Err(fmt(&format!(
                "{} bytes is shorter than any sealed object",
                sealed.len()
            )));
        }
        if &sealed[..4] != MAGIC {
            return Err(fmt("bad magic"));
        }
        if sealed[4] != VERSION {
            return Err(fmt(&format!("unsupported format version {}", sealed[4])));
        }
        let kind = match sealed[5] {
            1 => ObjectKind::Chunk,
            2 => ObjectKind::Manifest,
            3 => ObjectKind::Catalogue,
            k => return Err(fmt(&format!("unknown object kind {k}"))),
        };
        let compressed = sealed[6] & 1 == 1;
        let key_id: [u8; 16] = sealed[8..24].try_into().expect("16 bytes");
        let key = self
            .known
            .read()
            .expect("key list lock")
            .iter()
            .find(|k| k.id.0 == key_id)
            .cloned()
            .ok_or_else(|| CryptoError::UnknownDataKey {
                object: what.to_string(),
                key_id: hex::encode(key_id),
            })?;
        let cipher = &key.cipher;
        let nonce = Nonce::from_slice(&sealed[24..HEADER_LEN]);
        let aad = [&sealed[..HEADER_LEN], object_id].concat();
        let body_end = sealed.len() - TAG_LEN;
        let mut payload = sealed[HEADER_LEN..body_end].to_vec();
        cipher
            .decrypt_in_place_detached(
                nonce,
                &aad,
                &mut payload,
                Tag::from_slice(&sealed[body_end..]),
            )
            .map_err(|_| CryptoError::Tampered {
                object: what.to_string(),
            })?;
        Ok(OpenedObject {
            kind,
            compressed,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::for_data_key(DataKeyId::random(), &Key32::random())
    }

    #[test]
    fn seal_is_deterministic_and_opens() {
        let s = sealer();
        let a = s.seal(ObjectKind::Chunk, true, b"id-1", b"hello world");
        assert_eq!(a, s.seal(ObjectKind::Chunk, true, b"id-1", b"hello world"));
        assert!(!a.windows(11).any(|w| w == b"hello world"));
        let o = s.open("chunk id-1", b"id-1", &a).unwrap();
        assert_eq!(o.payload, b"hello world");
        assert!(o.compressed);
        assert_eq!(o.kind, ObjectKind::Chunk);
        // Appended after other bytes, the same object.
        let mut packed = b"earlier".to_vec();
        s.seal_into(
            &mut packed,
            ObjectKind::Chunk,
            true,
            b"id-1",
            b"hello world",
        );
        assert_eq!(&packed[7..], a.as_slice());
        // Different plaintext under the same id: a different nonce.
        let b = s.seal(ObjectKind::Chunk, true, b"id-1", b"hello worle");
        assert_ne!(a[24..36], b[24..36]);
    }

    #[test]
    fn every_tampering_is_detected_and_named() {
        let s = sealer();
        let sealed = s.seal(ObjectKind::Chunk, false, b"id-1", &[7u8; 1000]);
        let refused = |by: &Sealer, name: &str, id: &[u8], bytes: &[u8]| {
            by.open(name, id, bytes)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        for i in [0, 5, 8, 30, 36, 500, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            let err = refused(&s, "chunk id-1", b"id-1", &bad);
            assert!(err.starts_with("chunk id-1:"), "byte {i}: {err}");
        }
        let err = refused(&s, "chunk id-2", b"id-2", &sealed);
        assert!(err.contains("authentication failed"), "{err}");
        let err = refused(&s, "chunk id-1", b"id-1", &sealed[..20]);
        assert!(err.contains("shorter than any sealed object"), "{err}");
        let other = sealer();
        let err = refused(&other, "chunk id-1", b"id-1", &sealed);
        assert!(err.contains("does not hold"), "{err}");
    }

    #[test]
    fn a_reader_learns_a_backups_data_key_from_its_wrapped_copy() {
        let ring = crate::Keyring::generate();
        let dk = ring.writer().unwrap().data_key();
        let sealed = Sealer::for_data_key(dk.id, &dk.key).seal(
            ObjectKind::Manifest,
            false,
            b"b1",
            b"manifest",
        );
        let reader = ring.sealer();
        assert_eq!(reader.missing_key(&sealed), Some(dk.id));
        let err = reader
            .open("manifest", b"b1", &sealed)
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("does not hold"), "{err}");
        reader.learn(dk.id, &dk.wrapped).unwrap();
        assert_eq!(reader.missing_key(&sealed), None);
        let clone = reader.clone();
        assert_eq!(
            clone.open("m", b"b1", &sealed).unwrap().payload,
            b"manifest"
        );
        // A sealer without the read key learns nothing.
        let err = Sealer::for_data_key(DataKeyId::random(), &Key32::random())
            .learn(dk.id, &dk.wrapped)
            .unwrap_err();
        assert!(err.to_string().contains("holds no read key"), "{err}");
    }

    #[test]
    fn a_rotated_keyring_rewraps_and_still_opens_what_the_old_key_wrapped() {
        let old = crate::Keyring::generate();
        let dk = old.writer().unwrap().data_key();
        let sealed =
            Sealer::for_data_key(dk.id, &dk.key).seal(ObjectKind::Chunk, false, b"c", b"x");
        let new = old.rotated();
        assert_ne!(new.public_key(), old.public_key());
        // A straggler wrapped to the old key opens through the retired key.
        let reader = new.sealer();
        reader.learn(dk.id, &dk.wrapped).unwrap();
        assert_eq!(reader.open("c", b"c", &sealed).unwrap().payload, b"x");
        // Re-wrapped to the new key: the old keyring opens it no more.
        let rewrapped = new.rewrap(dk.id, &dk.wrapped).unwrap().unwrap();
        assert!(new.rewrap(dk.id, &rewrapped).unwrap().is_none(), "already");
        assert_eq!(
            crate::datakey::recipient(&rewrapped),
            Some(new.public_key().unwrap().fingerprint())
        );
        let err = old
            .sealer()
            .learn(dk.id, &rewrapped)
            .unwrap_err()
            .to_string();
        assert!(err.contains("wrapped to public key"), "{err}");
        let fresh = new.sealer();
        fresh.learn(dk.id, &rewrapped).unwrap();
        assert_eq!(fresh.open("c", b"c", &sealed).unwrap().payload, b"x");
        // The retired key survives a key file.
        let kf = crate::KeyFile::create(
            &crate::Secret::new("pw"),
            crate::KdfParams {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            &new,
            "now",
        )
        .unwrap();
        let back = crate::KeyFile::from_json("k", &kf.to_json())
            .unwrap()
            .open(&crate::Secret::new("pw"))
            .unwrap();
        let again = back.sealer();
        again.learn(dk.id, &dk.wrapped).unwrap();
    }
}
