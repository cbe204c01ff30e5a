//! The repository key file: a random master key wrapped by a key derived from
//! the passphrase with Argon2id, and the keyring wrapped by the master key.
//!
//! Stored as JSON at `keys/<key_id>` on every network, so that one surviving
//! network and the passphrase open the repository. Nothing in it is usable
//! without the passphrase. Adding a passphrase is another key file wrapping
//! the same master key; rotating re-wraps the keyring, never the chunks.

use crate::{CryptoError, DataKeyId, Key32, Keyring, MasterKey, ReadKey, Secret};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Argon2id cost parameters, recorded in the key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// OWASP's first Argon2id recommendation: 47 MiB, 1 pass is its floor;
    /// we take 64 MiB and 3 passes (about 0.2 s here).
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Kdf {
    algorithm: String,
    #[serde(flatten)]
    params: KdfParams,
    salt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wrapped {
    nonce: String,
    ciphertext: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WrappedDataKey {
    id: String,
    key: Wrapped,
}

/// The key file, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub format: u32,
    pub key_id: String,
    pub created: String,
    /// Who or what this passphrase is for (`cairn key add --label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    kdf: Kdf,
    /// The master key, wrapped by the passphrase key.
    master: Wrapped,
    /// The chunk-id key, wrapped by the master key.
    id_key: Wrapped,
    /// Format-2 data keys, wrapped by the master key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    data_keys: Vec<WrappedDataKey>,
    /// The read key (private half of the repository's key pair), wrapped by
    /// the master key; from format 3 on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    read_key: Option<Wrapped>,
    /// Read keys of earlier key pairs (rotation), wrapped by the master key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    retired_read_keys: Vec<Wrapped>,
}

const WRAP_AAD: &[u8] = b"cairn key wrap v1";
/// Upper bounds on a key file's Argon2id cost (4 GiB, 64 passes).
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_ITERATIONS: u32 = 64;

fn wrap(kek: &Key32, purpose: &str, secret: &[u8]) -> Wrapped {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = [WRAP_AAD, purpose.as_bytes()].concat();
    let ct = Aes256Gcm::new_from_slice(kek.as_bytes())
        .expect("32-byte key")
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption of a key");
    Wrapped {
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ct),
    }
}

fn unwrap(kek: &Key32, purpose: &str, w: &Wrapped) -> Option<Key32> {
    let nonce = hex::decode(&w.nonce).ok().filter(|n| n.len() == 12)?;
    let ct = hex::decode(&w.ciphertext).ok()?;
    let aad = [WRAP_AAD, purpose.as_bytes()].concat();
    let mut pt = Aes256Gcm::new_from_slice(kek.as_bytes())
        .ok()?
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &ct,
                aad: &aad,
            },
        )
        .ok()?;
    let key = <[u8; 32]>::try_from(pt.as_slice()).ok().map(Key32);
    zeroize::Zeroize::zeroize(&mut pt);
    key
}

fn wrap_retired(master: &Key32, keyring: &Keyring) -> Vec<Wrapped> {
    keyring
        .retired
        .iter()
        .enumerate()
        .map(|(i, r)| wrap(master, &format!("retired:{i}"), r.0.as_bytes()))
        .collect()
}

fn derive_kek(passphrase: &Secret, params: KdfParams, salt: &[u8]) -> Result<Key32, CryptoError> {
    let p = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = [0u8; 32];
    a.hash_password_into(passphrase.expose().as_bytes(), salt, &mut out)
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(Key32(out))
}

impl KeyFile {
    /// Creates a key file protecting `keyring` (and a fresh master key) with
    /// `passphrase`.
    pub fn create(
        passphrase: &Secret,
        params: KdfParams,
        keyring: &Keyring,
        created: &str,
    ) -> Result<Self, CryptoError> {
        Self::create_for(
            &MasterKey::random(),
            passphrase,
            params,
            keyring,
            created,
            None,
        )
    }

    /// Creates a key file for `passphrase` that wraps `master` (the
    /// repository's own, for another passphrase) and `keyring` under it.
    pub fn create_for(
        master: &MasterKey,
        passphrase: &Secret,
        params: KdfParams,
        keyring: &Keyring,
        created: &str,
        label: Option<String>,
    ) -> Result<Self, CryptoError> {
        if passphrase.is_empty() {
            return Err(CryptoError::NoPassphrase);
        }
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let mut kid = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut kid);
        let kek = derive_kek(passphrase, params, &salt)?;
        let master = &master.0;
        Ok(KeyFile {
            format: 1,
            key_id: hex::encode(kid),
            created: created.to_string(),
            label,
            kdf: Kdf {
                algorithm: "argon2id".into(),
                params,
                salt: hex::encode(salt),
            },
            master: wrap(&kek, "master", master.as_bytes()),
            id_key: wrap(master, "id", keyring.id_key.as_bytes()),
            data_keys: keyring
                .data_keys
                .iter()
                .map(|(id, k)| WrappedDataKey {
                    id: id.to_hex(),
                    key: wrap(master, &format!("data:{}", id.to_hex()), k.as_bytes()),
                })
                .collect(),
            read_key: keyring
                .read_key
                .as_ref()
                .map(|r| wrap(master, "read", r.0.as_bytes())),
            retired_read_keys: wrap_retired(master, keyring),
        })
    }

    /// The same key file (passphrase, id, label) wrapping `keyring` under
    /// `master` instead: how a repository gains a key pair without asking
    /// for every passphrase again. `master` must be the one this file wraps.
    pub fn rewrapped(&self, master: &MasterKey, keyring: &Keyring) -> Result<Self, CryptoError> {
        if self.open_with(master)?.is_none() {
            return Err(self.bad("wraps another master key"));
        }
        let m = &master.0;
        let mut out = self.clone();
        out.id_key = wrap(m, "id", keyring.id_key.as_bytes());
        out.data_keys = keyring
            .data_keys
            .iter()
            .map(|(id, k)| WrappedDataKey {
                id: id.to_hex(),
                key: wrap(m, &format!("data:{}", id.to_hex()), k.as_bytes()),
            })
            .collect();
        out.read_key = keyring
            .read_key
            .as_ref()
            .map(|r| wrap(m, "read", r.0.as_bytes()));
        out.retired_read_keys = wrap_retired(m, keyring);
        Ok(out)
    }

    /// The KDF's cost parameters, for `cairn key list`.
    pub fn kdf_params(&self) -> KdfParams {
        self.kdf.params
    }

    fn bad(&self, problem: &str) -> CryptoError {
        CryptoError::KeyFile {
            name: self.key_id.clone(),
            problem: problem.to_string(),
        }
    }

    /// Opens the master key with `passphrase`.
    pub fn open_master(&self, passphrase: &Secret) -> Result<MasterKey, CryptoError> {
        if self.format != 1 {
            return Err(self.bad(&format!(
                "format {}, this build reads format 1 (a newer Cairn wrote it?)",
                self.format
            )));
        }
        if self.kdf.algorithm != "argon2id" {
            return Err(self.bad(&format!("unsupported KDF {:?}", self.kdf.algorithm)));
        }
        // A key file comes from a network: a planted one must not make the
        // opener spend unbounded memory or time.
        let p = self.kdf.params;
        if p.memory_kib > MAX_MEMORY_KIB || p.iterations > MAX_ITERATIONS || p.parallelism > 64 {
            return Err(self.bad(&format!(
                "unreasonable Argon2id parameters ({} KiB, {} passes, {} lanes): not tried",
                p.memory_kib, p.iterations, p.parallelism
            )));
        }
        let salt = hex::decode(&self.kdf.salt).map_err(|_| self.bad("salt is not hex"))?;
        let kek = derive_kek(passphrase, self.kdf.params, &salt)?;
        unwrap(&kek, "master", &self.master)
            .map(MasterKey)
            .ok_or(CryptoError::WrongPassphrase)
    }

    /// Opens the keyring this file wraps under `master`; `None` when this
    /// file wraps another master key.
    pub fn open_with(&self, master: &MasterKey) -> Result<Option<Keyring>, CryptoError> {
        let master = &master.0;
        let Some(id_key) = unwrap(master, "id", &self.id_key) else {
            return Ok(None);
        };
        let mut data_keys = Vec::new();
        for dk in &self.data_keys {
            let id: [u8; 16] = hex::decode(&dk.id)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| self.bad("data key id is not 16 hex bytes"))?;
            let key = unwrap(master, &format!("data:{}", dk.id), &dk.key)
                .ok_or_else(|| self.bad(&format!("data key {} does not unwrap", dk.id)))?;
            data_keys.push((DataKeyId(id), key));
        }
        let read_key = match &self.read_key {
            None => None,
            Some(w) => Some(ReadKey(
                unwrap(master, "read", w).ok_or_else(|| self.bad("read key does not unwrap"))?,
            )),
        };
        let mut retired = Vec::new();
        for (i, w) in self.retired_read_keys.iter().enumerate() {
            retired.push(ReadKey(
                unwrap(master, &format!("retired:{i}"), w)
                    .ok_or_else(|| self.bad(&format!("retired read key {i} does not unwrap")))?,
            ));
        }
        if data_keys.is_empty() && read_key.is_none() {
            return Err(self.bad("holds neither a data key nor a read key"));
        }
        Ok(Some(Keyring {
            id_key,
            data_keys,
            read_key,
            retired,
        }))
    }

    /// Opens the master key and the keyring with `passphrase`.
    pub fn open_all(&self, passphrase: &Secret) -> Result<(MasterKey, Keyring), CryptoError> {
        let master = self.open_master(passphrase)?;
        let keyring = self
            .open_with(&master)?
            .ok_or_else(|| self.bad("id key does not unwrap"))?;
        Ok((master, keyring))
    }

    /// Opens the keyring with `passphrase`.
    pub fn open(&self, passphrase: &Secret) -> Result<Keyring, CryptoError> {
        self.open_all(passphrase).map(|(_, keyring)| keyring)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("key file serializes")
    }

    pub fn from_json(name: &str, bytes: &[u8]) -> Result<Self, CryptoError> {
        serde_json::from_slice(bytes).map_err(|e| CryptoError::KeyFile {
            name: name.to_string(),
            problem: format!("not a Cairn key file ({e})"),
        })
    }
}

/// Opens the first of `files` that `passphrase` unlocks.
pub fn open_any(files: &[KeyFile], passphrase: &Secret) -> Result<Keyring, CryptoError> {
    if passphrase.is_empty() {
        return Err(CryptoError::NoPassphrase);
    }
    let mut last = CryptoError::WrongPassphrase;
    for f in files {
        match f.open(passphrase) {
            Ok(k) => return Ok(k),
            Err(CryptoError::WrongPassphrase) => {}
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Opens the keyring with a master key (from shares): from the first of
/// `files` that wraps it.
pub fn open_any_with(files: &[KeyFile], master: &MasterKey) -> Result<Keyring, CryptoError> {
    for f in files {
        if let Some(k) = f.open_with(master)? {
            return Ok(k);
        }
    }
    Err(CryptoError::MasterNotUsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn opens_with_the_right_passphrase_only() {
        let ring = Keyring::generate();
        let kf = KeyFile::create(&Secret::new("right horse"), FAST, &ring, "now").unwrap();
        let back = KeyFile::from_json("k", &kf.to_json()).unwrap();
        let opened = back.open(&Secret::new("right horse")).unwrap();
        assert_eq!(opened.id_key.as_bytes(), ring.id_key.as_bytes());
        let err = back.open(&Secret::new("wrong horse")).unwrap_err();
        assert!(matches!(err, CryptoError::WrongPassphrase), "{err}");
        assert!(open_any(&[back], &Secret::new("")).is_err());
    }

    #[test]
    fn key_file_holds_no_key_in_clear() {
        let ring = Keyring::generate();
        let kf = KeyFile::create(&Secret::new("pw"), FAST, &ring, "now").unwrap();
        let json = String::from_utf8(kf.to_json()).unwrap();
        assert!(!json.contains(&hex::encode(ring.id_key.as_bytes())));
        let read = ring.read_key.as_ref().unwrap();
        assert!(!json.contains(&hex::encode(read.0.as_bytes())));
        let old = Keyring::generate_format2();
        let kf = KeyFile::create(&Secret::new("pw"), FAST, &old, "now").unwrap();
        let json = String::from_utf8(kf.to_json()).unwrap();
        assert!(!json.contains(&hex::encode(old.data_keys[0].1.as_bytes())));
    }

    #[test]
    fn tampered_key_file_is_named() {
        let ring = Keyring::generate();
        let mut kf = KeyFile::create(&Secret::new("pw"), FAST, &ring, "now").unwrap();
        let first = if kf.id_key.ciphertext.starts_with('0') {
            "1"
        } else {
            "0"
        };
        kf.id_key.ciphertext.replace_range(0..1, first);
        let err = kf
            .open(&Secret::new("pw"))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("id key does not unwrap"), "{err}");
    }

    #[test]
    fn a_second_passphrase_opens_the_same_master_and_keyring() {
        let ring = Keyring::generate();
        let first = KeyFile::create(&Secret::new("first"), FAST, &ring, "now").unwrap();
        let (master, _) = first.open_all(&Secret::new("first")).unwrap();
        let second = KeyFile::create_for(
            &master,
            &Secret::new("second"),
            FAST,
            &ring,
            "later",
            Some("bob".into()),
        )
        .unwrap();
        assert_ne!(second.key_id, first.key_id);
        let files = [first.clone(), second.clone()];
        let (m2, k2) = second.open_all(&Secret::new("second")).unwrap();
        assert!(m2 == master);
        assert!(matches!(
            first.open_all(&Secret::new("second")),
            Err(CryptoError::WrongPassphrase)
        ));
        assert_eq!(k2.public_key(), ring.public_key());
        let back = KeyFile::from_json("k", &second.to_json()).unwrap();
        assert_eq!(back.label.as_deref(), Some("bob"));
        assert!(open_any_with(&files, &master).is_ok());
        assert!(matches!(
            open_any_with(&files, &MasterKey::random()),
            Err(CryptoError::MasterNotUsed)
        ));
    }

    #[test]
    fn a_format2_key_file_gains_a_read_key_and_keeps_its_data_key() {
        let old = Keyring::generate_format2();
        let kf = KeyFile::create(&Secret::new("pw"), FAST, &old, "now").unwrap();
        let (master, opened) = kf.open_all(&Secret::new("pw")).unwrap();
        assert!(opened.public_key().is_none());
        let upgraded = opened.with_read_key();
        let kf2 = kf.rewrapped(&master, &upgraded).unwrap();
        assert_eq!(kf2.key_id, kf.key_id);
        let back = KeyFile::from_json("k", &kf2.to_json())
            .unwrap()
            .open(&Secret::new("pw"))
            .unwrap();
        assert_eq!(back.public_key(), upgraded.public_key());
        assert_eq!(
            back.data_keys[0].1.as_bytes(),
            old.data_keys[0].1.as_bytes()
        );
        assert!(kf.rewrapped(&MasterKey::random(), &upgraded).is_err());
    }

    #[test]
    fn a_key_file_of_a_newer_format_is_named() {
        let ring = Keyring::generate();
        let mut kf = KeyFile::create(&Secret::new("pw"), FAST, &ring, "now").unwrap();
        kf.format = 9;
        let err = kf
            .open(&Secret::new("pw"))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("format 9") && err.contains(&kf.key_id),
            "{err}"
        );
    }
}
