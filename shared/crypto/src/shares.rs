//! Threshold shares of the master key: Shamir's scheme over GF(256)
//! (vsss-rs), so that any `threshold` of `count` holders open the repository
//! together and fewer learn nothing about the key.
//!
//! A share file names what it belongs to, so that mistakes are named rather
//! than mis-combined: Shamir's combination of the wrong shares yields a
//! different key without complaint. Each share carries the repository id,
//! the split it came from (`set`), its index, the threshold and count, a
//! check value of the master key (to tell a wrong combination from a right
//! one before any key file is tried) and a checksum over all of it (to name
//! a corrupted or edited file).

use crate::{CryptoError, Key32, MasterKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use vsss_rs::Gf256;

/// One holder's share, as written to its file (JSON). Its `Debug` leaves
/// the share value out.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Share {
    pub format: u32,
    pub repo_id: String,
    /// Random id of the split this share came from; shares of different
    /// splits of the same key do not combine.
    pub set: String,
    pub index: u8,
    pub threshold: u8,
    pub count: u8,
    /// The share itself: vsss-rs's identifier byte then one byte per key byte.
    value: String,
    /// First 16 bytes of a key derived from the master key.
    check: String,
    /// BLAKE3 of every field above, so an edited or damaged file is named.
    checksum: String,
}

const SHARE_FORMAT: u32 = 1;

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("repo_id", &self.repo_id)
            .field("set", &self.set)
            .field("index", &self.index)
            .field("threshold", &self.threshold)
            .field("count", &self.count)
            .field("value", &"<redacted>")
            .finish()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

/// What [`split`] is asked for, checked before anything is made.
pub fn check_split(threshold: u8, count: u8) -> Result<(), CryptoError> {
    if threshold < 2 {
        return Err(CryptoError::Shares(format!(
            "a threshold of {threshold} is no threshold: it must be at least 2"
        )));
    }
    if count < threshold {
        return Err(CryptoError::Shares(format!(
            "{count} shares cannot meet a threshold of {threshold}"
        )));
    }
    Ok(())
}

/// Splits `master` into `count` shares, any `threshold` of which open it.
pub fn split(
    master: &MasterKey,
    repo_id: &str,
    threshold: u8,
    count: u8,
) -> Result<Vec<Share>, CryptoError> {
    check_split(threshold, count)?;
    let mut set = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut set);
    let set = hex::encode(set);
    let raw = Gf256::split_array(
        threshold as usize,
        count as usize,
        master.0.as_bytes(),
        rand::rngs::OsRng,
    )
    .map_err(|e| CryptoError::Shares(format!("splitting failed: {e:?}")))?;
    let check = master_check(master);
    Ok(raw
        .into_iter()
        .enumerate()
        .map(|(i, mut bytes)| {
            let mut s = Share {
                format: SHARE_FORMAT,
                repo_id: repo_id.to_string(),
                set: set.clone(),
                index: (i + 1) as u8,
                threshold,
                count,
                value: hex::encode(&bytes),
                check: check.clone(),
                checksum: String::new(),
            };
            zeroize::Zeroize::zeroize(&mut bytes);
            s.checksum = s.compute_checksum();
            s
        })
        .collect())
}

/// Opens the master key from `shares` (each with the name to report it by,
/// usually its file), which must all belong to `repo_id` and to one split.
pub fn combine(shares: &[(String, Share)], repo_id: &str) -> Result<MasterKey, CryptoError> {
    let Some((first_name, first)) = shares.first() else {
        return Err(CryptoError::Shares("no share given".into()));
    };
    for (name, s) in shares {
        if s.format != SHARE_FORMAT {
            return Err(CryptoError::Share {
                name: name.clone(),
                problem: format!("share format {}, this build reads {SHARE_FORMAT}", s.format),
            });
        }
        if s.checksum != s.compute_checksum() {
            return Err(CryptoError::Share {
                name: name.clone(),
                problem: "damaged or edited: its checksum does not match its contents".into(),
            });
        }
        if s.repo_id != repo_id {
            return Err(CryptoError::Share {
                name: name.clone(),
                problem: format!(
                    "belongs to repository {}, not to this one ({repo_id})",
                    s.repo_id
                ),
            });
        }
        if s.set != first.set {
            return Err(CryptoError::Share {
                name: name.clone(),
                problem: format!(
                    "comes from another split of the key than {first_name} (split {} against {})",
                    s.set, first.set
                ),
            });
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for (name, s) in shares {
        if let Some(other) = seen.insert(s.index, name) {
            return Err(CryptoError::Share {
                name: name.clone(),
                problem: format!("is share {} again, as {other} is", s.index),
            });
        }
    }
    if seen.len() < first.threshold as usize {
        return Err(CryptoError::TooFewShares {
            have: seen.len(),
            need: first.threshold as usize,
            count: first.count as usize,
        });
    }
    let mut raw = Vec::with_capacity(shares.len());
    for (name, s) in shares {
        let bytes = hex::decode(&s.value)
            .ok()
            .filter(|b| b.len() == 33 && b[0] == s.index)
            .ok_or_else(|| CryptoError::Share {
                name: name.clone(),
                problem: "its value is not a share of a 32-byte key".into(),
            })?;
        raw.push(bytes);
    }
    let mut secret = Gf256::combine_array(&raw)
        .map_err(|e| CryptoError::Shares(format!("combining failed: {e:?}")))?;
    for r in &mut raw {
        zeroize::Zeroize::zeroize(r);
    }
    let key = <[u8; 32]>::try_from(secret.as_slice())
        .map_err(|_| CryptoError::Shares("combined key is not 32 bytes".into()))?;
    zeroize::Zeroize::zeroize(&mut secret);
    let master = MasterKey(Key32(key));
    if master_check(&master) != first.check {
        return Err(CryptoError::Shares(
            "the shares do not combine to the key they were split from".into(),
        ));
    }
    Ok(master)
}

fn master_check(master: &MasterKey) -> String {
    let k = blake3::derive_key("cairn master key check v1", master.0.as_bytes());
    hex::encode(&k[..16])
}

impl Share {
    fn compute_checksum(&self) -> String {
        let mut h = blake3::Hasher::new();
        for field in [
            &self.format.to_string(),
            &self.repo_id,
            &self.set,
            &self.index.to_string(),
            &self.threshold.to_string(),
            &self.count.to_string(),
            &self.value,
            &self.check,
        ] {
            h.update(&(field.len() as u64).to_le_bytes());
            h.update(field.as_bytes());
        }
        hex::encode(&h.finalize().as_bytes()[..16])
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("share serializes")
    }

    pub fn from_json(name: &str, bytes: &[u8]) -> Result<Self, CryptoError> {
        serde_json::from_slice(bytes).map_err(|e| CryptoError::Share {
            name: name.to_string(),
            problem: format!("not a Cairn key share ({e})"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(shares: &[Share], idx: &[usize]) -> Vec<(String, Share)> {
        idx.iter()
            .map(|&i| (format!("share-{}", i + 1), shares[i].clone()))
            .collect()
    }

    #[test]
    fn any_threshold_of_the_shares_open_the_key_and_fewer_are_refused() {
        let master = MasterKey::random();
        let shares = split(&master, "repo1", 3, 5).unwrap();
        assert_eq!(shares.len(), 5);
        for pick in [[0, 1, 2], [0, 2, 4], [4, 3, 1], [1, 2, 3]] {
            let got = combine(&named(&shares, &pick), "repo1").unwrap();
            assert!(got == master, "shares {pick:?}");
        }
        let all = combine(&named(&shares, &[0, 1, 2, 3, 4]), "repo1").unwrap();
        assert!(all == master);
        match combine(&named(&shares, &[0, 3]), "repo1") {
            Err(CryptoError::TooFewShares {
                have: 2,
                need: 3,
                count: 5,
            }) => {}
            other => panic!("two of three: {other:?}"),
        }
    }

    #[test]
    fn foreign_damaged_mixed_and_repeated_shares_are_named() {
        let master = MasterKey::random();
        let a = split(&master, "repo1", 2, 3).unwrap();
        let b = split(&master, "repo1", 2, 3).unwrap();
        let other = split(&MasterKey::random(), "repo2", 2, 3).unwrap();

        let err = combine(
            &[
                ("a1".into(), a[0].clone()),
                ("other".into(), other[1].clone()),
            ],
            "repo1",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("other") && err.contains("repo2"), "{err}");

        let mut damaged = a[1].clone();
        damaged.value.replace_range(4..6, "00");
        if damaged.value == a[1].value {
            damaged.value.replace_range(4..6, "ff");
        }
        let err = combine(
            &[("a1".into(), a[0].clone()), ("bad".into(), damaged)],
            "repo1",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bad") && err.contains("checksum"), "{err}");

        let err = combine(
            &[("a1".into(), a[0].clone()), ("b2".into(), b[1].clone())],
            "repo1",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("b2") && err.contains("another split"), "{err}");

        let err = combine(
            &[("a1".into(), a[0].clone()), ("again".into(), a[0].clone())],
            "repo1",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("again") && err.contains("share 1"), "{err}");

        let err = Share::from_json("cut", &a[0].to_json()[..40])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cut") && err.contains("not a Cairn key share"),
            "{err}"
        );
    }

    #[test]
    fn a_split_must_have_a_real_threshold() {
        let m = MasterKey::random();
        assert!(split(&m, "r", 1, 3).is_err());
        assert!(split(&m, "r", 4, 3).is_err());
        assert!(split(&m, "r", 2, 2).is_ok());
    }

    #[test]
    fn a_share_holds_no_key_in_clear_and_debug_prints_no_share() {
        let master = MasterKey::random();
        let shares = split(&master, "repo1", 2, 3).unwrap();
        let text = String::from_utf8(shares[0].to_json()).unwrap();
        assert!(!text.contains(&hex::encode(master.0.as_bytes())));
        // Shares differ from one another and from the key byte for byte.
        assert_ne!(shares[0].value, shares[1].value);
        assert_ne!(&shares[0].value[2..], hex::encode(master.0.as_bytes()));
        let debug = format!("{:?}", shares[0]);
        assert!(!debug.contains(&shares[0].value), "{debug}");
    }
}
