//! Per-dataset keys (format 4): each dataset has its own X25519 key pair,
//! so that destroying one dataset's private key (`cairn shred`) makes every
//! backup of that dataset unreadable and leaves every other dataset whole.
//!
//! A writer makes a dataset's key pair the first time it backs the dataset
//! up, stores the private half only wrapped to the repository's public key
//! (the same HPKE wrapping as a data key, [`crate::datakey`]) and wraps
//! each backup's data key to the dataset's public half. A reader opens the
//! dataset key with the repository's read key, then the data key with the
//! dataset key. Chunk ids are keyed per dataset too
//! ([`IdKey::for_dataset`]), so no backup deduplicates against another
//! dataset's chunks and shredding one cannot break another.
//!
//! Stored at `datasets/<tag>`, where the tag is a keyed hash of the
//! dataset's name (networks do not learn names):
//!
//! ```text
//! offset  size  field
//! 0       32    the dataset's public key
//! 32      152   its private key's seed, wrapped to the repository's public
//!               key (a wrapped data key whose id is the dataset's tag)
//! 184     32    keyed BLAKE3 of bytes 0..184 under the writers' tag key
//! ```

use crate::datakey::{self, auth_key, PublicKey, ReadKey, Writer, WRAPPED_LEN};
use crate::{CryptoError, DataKeyId, IdKey, Key32};

/// Length of a stored dataset key.
pub const STORED_LEN: usize = 32 + WRAPPED_LEN + 32;
const TAG_CONTEXT: &str = "cairn dataset key v1";

/// Names a dataset on the networks: 16 bytes of a hash keyed with the
/// chunk-id key, so only key holders (writers included) can tell which
/// dataset it is.
pub fn dataset_tag(id_key: &IdKey, dataset: &str) -> DataKeyId {
    let mut h = blake3::Hasher::new_keyed(id_key.0.as_bytes());
    h.update(b"cairn dataset tag\0");
    h.update(dataset.as_bytes());
    DataKeyId(h.finalize().as_bytes()[..16].try_into().expect("16 bytes"))
}

impl IdKey {
    /// The chunk-id key of one dataset under one of its keys (`key`: its
    /// fingerprint; format 4): the same content gets another id in another
    /// dataset, so datasets share no chunk, and another id again once the
    /// dataset was shredded and got a new key, so no backup ever
    /// deduplicates against chunks no key opens any more.
    pub fn for_dataset(&self, dataset: &str, key: &[u8; 16]) -> IdKey {
        let mut h = blake3::Hasher::new_keyed(self.0.as_bytes());
        h.update(b"cairn dataset chunk ids\0");
        h.update(key);
        h.update(dataset.as_bytes());
        IdKey(Key32(*h.finalize().as_bytes()))
    }
}

fn outer_tag(auth: &Key32, body: &[u8]) -> [u8; 32] {
    let k = blake3::derive_key(TAG_CONTEXT, auth.as_bytes());
    *blake3::keyed_hash(&k, body).as_bytes()
}

fn stored(public: &PublicKey, wrapped: &[u8], auth: &Key32) -> Vec<u8> {
    let mut out = Vec::with_capacity(STORED_LEN);
    out.extend_from_slice(&public.0);
    out.extend_from_slice(wrapped);
    let tag = outer_tag(auth, &out);
    out.extend_from_slice(&tag);
    out
}

/// Checks a stored dataset key's length, its tag (written by a writer of
/// this repository) and that it is `tag`'s; returns its public key.
fn check(auth: &Key32, tag: DataKeyId, bytes: &[u8]) -> Result<PublicKey, CryptoError> {
    let bad = |problem: String| CryptoError::DataKey {
        id: format!("of dataset {}", tag.to_hex()),
        problem,
    };
    if bytes.len() != STORED_LEN {
        return Err(bad(format!(
            "{} bytes, a dataset key has {STORED_LEN}",
            bytes.len()
        )));
    }
    if outer_tag(auth, &bytes[..32 + WRAPPED_LEN]) != bytes[32 + WRAPPED_LEN..] {
        return Err(bad(
            "its tag does not verify: not written by a writer of this repository".into(),
        ));
    }
    if datakey::wrapped_id(&bytes[32..32 + WRAPPED_LEN]) != Some(tag) {
        return Err(bad("it is another dataset's key".into()));
    }
    PublicKey::from_hex(&hex::encode(&bytes[..32]))
}

impl Writer {
    /// The tag `dataset` is stored under.
    pub fn dataset_tag(&self, dataset: &str) -> DataKeyId {
        dataset_tag(self.id_key(), dataset)
    }

    /// A new key pair for `dataset`: its public key, and the stored form
    /// (the private key wrapped to the repository's public key). The
    /// private key is forgotten here.
    pub fn new_dataset_key(&self, dataset: &str) -> (PublicKey, Vec<u8>) {
        let private = ReadKey::generate();
        let public = private.public();
        let auth = auth_key(self.id_key());
        let wrapped = datakey::wrap(&self.public(), &auth, self.dataset_tag(dataset), &private.0);
        (public, stored(&public, &wrapped, &auth))
    }

    /// The writers' tag over (`dataset`'s tag, `public`): recorded with the
    /// public key in the ledger, so that a database owner cannot slip in a
    /// key of their own for writers to wrap to.
    pub fn public_mac(&self, dataset: &str, public: &PublicKey) -> [u8; 32] {
        let k = blake3::derive_key(
            "cairn dataset public key v1",
            auth_key(self.id_key()).as_bytes(),
        );
        let mut h = blake3::Hasher::new_keyed(&k);
        h.update(&self.dataset_tag(dataset).0);
        h.update(&public.0);
        *h.finalize().as_bytes()
    }

    /// The public key in a stored dataset key of `dataset`, once its tag
    /// shows a writer of this repository wrote it for that dataset.
    pub fn dataset_public(&self, dataset: &str, bytes: &[u8]) -> Result<PublicKey, CryptoError> {
        check(&auth_key(self.id_key()), self.dataset_tag(dataset), bytes)
    }
}

/// The dataset tag a stored dataset key names (checked when it is opened).
pub fn tag_of(stored: &[u8]) -> Option<DataKeyId> {
    (stored.len() == STORED_LEN)
        .then(|| datakey::wrapped_id(&stored[32..32 + WRAPPED_LEN]))
        .flatten()
}

/// Opens a stored dataset key (named by `tag`) with whichever of `reads`
/// it is wrapped to.
pub(crate) fn open(
    reads: &[ReadKey],
    auth: &Key32,
    tag: DataKeyId,
    bytes: &[u8],
) -> Result<ReadKey, CryptoError> {
    let public = check(auth, tag, bytes)?;
    let seed = datakey::unwrap_any(reads, auth, tag, &bytes[32..32 + WRAPPED_LEN])?;
    let key = ReadKey(seed);
    if key.public() != public {
        return Err(CryptoError::DataKey {
            id: format!("of dataset {}", tag.to_hex()),
            problem: "its private key does not match its public key".into(),
        });
    }
    Ok(key)
}

/// A stored dataset key wrapped to `to` instead (a key rotation), its
/// tags renewed; `None` when it already is.
pub(crate) fn rewrap(
    reads: &[ReadKey],
    auth: &Key32,
    to: &PublicKey,
    tag: DataKeyId,
    bytes: &[u8],
) -> Result<Option<Vec<u8>>, CryptoError> {
    let wrapped = bytes.get(32..32 + WRAPPED_LEN).unwrap_or_default();
    if datakey::recipient(wrapped) == Some(to.fingerprint()) {
        check(auth, tag, bytes)?;
        return Ok(None);
    }
    let key = open(reads, auth, tag, bytes)?;
    let rewrapped = datakey::wrap(to, auth, tag, &key.0);
    Ok(Some(stored(&key.public(), &rewrapped, auth)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dataset_key_opens_with_the_read_key_and_binds_its_dataset() {
        let read = ReadKey::generate();
        let id_key = IdKey(Key32([3; 32]));
        let w = Writer::new(read.public(), id_key.clone());
        let (public, bytes) = w.new_dataset_key("payroll");
        assert_eq!(bytes.len(), STORED_LEN);
        assert_eq!(w.dataset_public("payroll", &bytes).unwrap(), public);
        let auth = auth_key(&id_key);
        let tag = w.dataset_tag("payroll");
        let private = open(std::slice::from_ref(&read), &auth, tag, &bytes).unwrap();
        assert_eq!(private.public(), public);
        // Filed under another dataset: refused.
        let err = w.dataset_public("crm", &bytes).unwrap_err().to_string();
        assert!(err.contains("another dataset's key"), "{err}");
        // Damaged anywhere: refused by name.
        for i in [0, 40, 100, STORED_LEN - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(w.dataset_public("payroll", &bad).is_err(), "byte {i}");
            assert!(
                open(std::slice::from_ref(&read), &auth, tag, &bad).is_err(),
                "byte {i}"
            );
        }
        // Planted by someone who knows the public key but not the tag key.
        let forger = Writer::new(read.public(), IdKey(Key32([4; 32])));
        let (_, planted) = forger.new_dataset_key("payroll");
        let err = w
            .dataset_public("payroll", &planted)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tag does not verify"), "{err}");
        // Another repository's read key opens nothing.
        assert!(open(&[ReadKey::generate()], &auth, tag, &bytes).is_err());
        // The ledger's copy of the public key is tagged for its dataset.
        let mac = w.public_mac("payroll", &public);
        assert_ne!(mac, w.public_mac("crm", &public));
        assert_ne!(mac, forger.public_mac("payroll", &public));
        // Tags differ per dataset and per repository; chunk ids per dataset.
        assert_ne!(w.dataset_tag("payroll"), w.dataset_tag("crm"));
        assert_ne!(tag, forger.dataset_tag("payroll"));
        let fp = public.fingerprint();
        assert_ne!(
            id_key.for_dataset("payroll", &fp).chunk_id(b"same"),
            id_key.for_dataset("crm", &fp).chunk_id(b"same")
        );
        assert_ne!(
            id_key.for_dataset("payroll", &fp).chunk_id(b"same"),
            id_key.for_dataset("payroll", &[0; 16]).chunk_id(b"same")
        );
    }

    #[test]
    fn a_rotation_rewraps_a_dataset_key_to_the_new_public_key() {
        let old = ReadKey::generate();
        let new = ReadKey::generate();
        let id_key = IdKey(Key32([5; 32]));
        let auth = auth_key(&id_key);
        let w = Writer::new(old.public(), id_key);
        let (public, bytes) = w.new_dataset_key("d");
        let tag = w.dataset_tag("d");
        let moved = rewrap(
            std::slice::from_ref(&old),
            &auth,
            &new.public(),
            tag,
            &bytes,
        )
        .unwrap()
        .unwrap();
        assert_eq!(&moved[..32], &bytes[..32], "the dataset's public key stays");
        assert_eq!(
            open(std::slice::from_ref(&new), &auth, tag, &moved)
                .unwrap()
                .public(),
            public
        );
        assert!(open(&[old], &auth, tag, &moved).is_err());
        assert!(rewrap(
            std::slice::from_ref(&new),
            &auth,
            &new.public(),
            tag,
            &moved
        )
        .unwrap()
        .is_none());
    }
}
