//! Erasure-coded packs: a sealed pack cut into `n` Reed-Solomon shards, one
//! per network, any `k` of which rebuild it (`erasure k/n`).
//!
//! A shard is stored where the whole pack would be (`packs/<id>`), so the
//! collector, usage counts and listings treat it as the pack's presence on
//! that network; its bytes say which it is. Each shard file describes
//! itself, so that any `k` networks restore with no ledger at hand:
//!
//! ```text
//! "CRNE" | version 1 | k | n | index        8 bytes
//! object length (u64, big-endian)          the sealed pack's length
//! shard length (u32, big-endian)           every shard's body length
//! SHA-256 of the sealed pack              32 bytes
//! SHA-256 of each shard's body, by index  32 × n bytes
//! SHA-256 of the header so far            32 bytes
//! body                                     shard length bytes
//! ```
//!
//! A shard whose header or body fails its hash is excluded before any
//! decoding; shards must agree on everything but their index; the rebuilt
//! pack must hash to what they name. The coding is systematic (shards
//! `0..k` are the pack itself, cut in `k` and zero-padded), so it costs
//! nothing when the first `k` networks answer. The arithmetic is
//! `reed-solomon-simd`'s.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const MAGIC: &[u8; 4] = b"CRNE";
const VERSION: u8 = 1;
/// Header bytes before the per-shard hashes.
const FIXED: usize = 4 + 4 + 8 + 4 + 32;

/// Why shards could not be made or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ErasureError {
    #[error("erasure {k}/{n}: needs 1 ≤ k < n ≤ 255")]
    Shape { k: u32, n: u32 },
    #[error("not a shard: {0}")]
    NotAShard(String),
    #[error("shard {index}: {why}")]
    Corrupt { index: u8, why: String },
    #[error("{have} intact shard(s) of the {k} needed ({detail})")]
    TooFew { k: u8, have: usize, detail: String },
    #[error("the shards do not rebuild the pack they name ({0})")]
    Rebuilt(String),
    #[error("Reed-Solomon coding: {0}")]
    Coding(String),
}

/// Checks an erasure shape before anything is coded with it.
pub fn check_shape(k: u32, n: u32) -> Result<(u8, u8), ErasureError> {
    if k == 0 || k >= n || n > 255 {
        return Err(ErasureError::Shape { k, n });
    }
    Ok((k as u8, n as u8))
}

/// Length of every shard's header for `n` shards.
pub fn header_len(n: u8) -> usize {
    FIXED + 32 * n as usize + 32
}

/// Whether stored bytes are a shard (rather than a whole pack, whose first
/// chunk starts with a sealed object's header).
pub fn is_shard(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && &bytes[..4] == MAGIC
}

/// The `n` shard files of `object` (a sealed pack), by index.
pub fn encode(object: &[u8], k: u32, n: u32) -> Result<Vec<Vec<u8>>, ErasureError> {
    let (k8, n8) = check_shape(k, n)?;
    let (k, n) = (k8 as usize, n8 as usize);
    // Every shard as long as the longest piece, and even (the coding works
    // on pairs of bytes); at least 2 bytes, so an empty pack still codes.
    let shard = object.len().div_ceil(k).max(2).next_multiple_of(2);
    let originals: Vec<Vec<u8>> = (0..k)
        .map(|i| {
            let from = (i * shard).min(object.len());
            let to = ((i + 1) * shard).min(object.len());
            let mut piece = object[from..to].to_vec();
            piece.resize(shard, 0);
            piece
        })
        .collect();
    let recovery = reed_solomon_simd::encode(k, n - k, &originals)
        .map_err(|e| ErasureError::Coding(e.to_string()))?;
    let bodies: Vec<Vec<u8>> = originals.into_iter().chain(recovery).collect();
    let mut head = Vec::with_capacity(header_len(n8));
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&[VERSION, k8, n8, 0]);
    head.extend_from_slice(&(object.len() as u64).to_be_bytes());
    head.extend_from_slice(&(shard as u32).to_be_bytes());
    head.extend_from_slice(&Sha256::digest(object));
    for b in &bodies {
        head.extend_from_slice(&Sha256::digest(b));
    }
    Ok(bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let mut file = head.clone();
            file[7] = i as u8;
            let sum = Sha256::digest(&file);
            file.extend_from_slice(&sum);
            file.extend_from_slice(&body);
            file
        })
        .collect())
}

/// One shard file, its hashes checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub k: u8,
    pub n: u8,
    pub index: u8,
    /// The sealed pack's length and SHA-256.
    pub object_len: u64,
    pub object_sha256: [u8; 32],
    /// Every shard's body hash, by index (what the others must hold).
    pub bodies: Vec<[u8; 32]>,
    pub body: Vec<u8>,
}

impl Shard {
    /// Reads a shard file, refusing one whose header or body does not match
    /// its own hashes.
    pub fn parse(bytes: &[u8]) -> Result<Shard, ErasureError> {
        if !is_shard(bytes) {
            return Err(ErasureError::NotAShard(
                "no CRNE header (a whole pack, or another object)".into(),
            ));
        }
        let index = bytes[7];
        let corrupt = |why: String| ErasureError::Corrupt { index, why };
        if bytes[4] != VERSION {
            return Err(corrupt(format!(
                "shard format {} (this build reads {VERSION})",
                bytes[4]
            )));
        }
        let (k, n) = (bytes[5], bytes[6]);
        if check_shape(k as u32, n as u32).is_err() || index >= n {
            return Err(corrupt(format!("header says shard {index} of {k}/{n}")));
        }
        let head = header_len(n);
        if bytes.len() < head {
            return Err(corrupt(format!(
                "{} bytes, shorter than its {head}-byte header",
                bytes.len()
            )));
        }
        if Sha256::digest(&bytes[..head - 32])[..] != bytes[head - 32..head] {
            return Err(corrupt("header does not match its hash".into()));
        }
        let object_len = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let shard_len = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes")) as usize;
        let object_sha256: [u8; 32] = bytes[20..52].try_into().expect("32 bytes");
        let bodies: Vec<[u8; 32]> = bytes[FIXED..head - 32]
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect();
        let body = &bytes[head..];
        if body.len() != shard_len {
            return Err(corrupt(format!(
                "body of {} bytes, the header says {shard_len}",
                body.len()
            )));
        }
        if Sha256::digest(body)[..] != bodies[index as usize] {
            return Err(corrupt("body does not match its hash".into()));
        }
        Ok(Shard {
            k,
            n,
            index,
            object_len,
            object_sha256,
            bodies,
            body: body.to_vec(),
        })
    }

    /// What shards of one coding share: everything but the index.
    fn coding(&self) -> (u8, u8, u64, [u8; 32], &[[u8; 32]]) {
        (
            self.k,
            self.n,
            self.object_len,
            self.object_sha256,
            &self.bodies,
        )
    }
}

/// Rebuilds the sealed pack from shards already parsed (any order, any
/// mix; duplicates and shards of another coding are passed over). Needs
/// `k` distinct shards that agree; the result must hash to what they name.
pub fn decode(shards: &[Shard]) -> Result<Vec<u8>, ErasureError> {
    // The coding most shards agree on, counted by distinct index.
    let mut codings: Vec<(&Shard, BTreeMap<u8, &Shard>)> = Vec::new();
    for s in shards {
        match codings.iter_mut().find(|(c, _)| c.coding() == s.coding()) {
            Some((_, by_index)) => {
                by_index.entry(s.index).or_insert(s);
            }
            None => codings.push((s, BTreeMap::from([(s.index, s)]))),
        }
    }
    let Some((first, by_index)) = codings.into_iter().max_by_key(|(_, m)| m.len()) else {
        return Err(ErasureError::TooFew {
            k: 0,
            have: 0,
            detail: "no shard read".into(),
        });
    };
    let (k, n) = (first.k as usize, first.n as usize);
    if by_index.len() < k {
        return Err(ErasureError::TooFew {
            k: first.k,
            have: by_index.len(),
            detail: format!(
                "shards {} of {}/{}",
                by_index
                    .keys()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                first.k,
                first.n
            ),
        });
    }
    let originals: Vec<(usize, &[u8])> = by_index
        .values()
        .filter(|s| (s.index as usize) < k)
        .map(|s| (s.index as usize, s.body.as_slice()))
        .collect();
    let mut pieces: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    if originals.len() < k {
        let recovery: Vec<(usize, &[u8])> = by_index
            .values()
            .filter(|s| (s.index as usize) >= k)
            .map(|s| (s.index as usize - k, s.body.as_slice()))
            .collect();
        pieces = reed_solomon_simd::decode(k, n - k, originals.iter().copied(), recovery)
            .map_err(|e| ErasureError::Coding(e.to_string()))?;
    }
    let mut object = Vec::with_capacity(first.object_len as usize);
    for i in 0..k {
        let piece = match originals.iter().find(|(j, _)| *j == i) {
            Some((_, b)) => *b,
            None => pieces
                .get(&i)
                .map(Vec::as_slice)
                .ok_or_else(|| ErasureError::Coding(format!("shard {i} not rebuilt")))?,
        };
        object.extend_from_slice(piece);
    }
    if (object.len() as u64) < first.object_len {
        return Err(ErasureError::Rebuilt(format!(
            "{} bytes, the shards name {}",
            object.len(),
            first.object_len
        )));
    }
    object.truncate(first.object_len as usize);
    if Sha256::digest(&object)[..] != first.object_sha256 {
        return Err(ErasureError::Rebuilt(
            "the rebuilt pack does not hash to the SHA-256 its shards name".into(),
        ));
    }
    Ok(object)
}

/// Reads shard files (each with where it came from) and rebuilds the pack,
/// naming every one that was excluded and why when too few remain.
pub fn rebuild(files: &[(String, bytes::Bytes)]) -> Result<Vec<u8>, ErasureError> {
    let mut shards = Vec::new();
    let mut excluded = Vec::new();
    for (from, bytes) in files {
        match Shard::parse(bytes) {
            Ok(s) => shards.push(s),
            Err(e) => excluded.push(format!("{from}: {e}")),
        }
    }
    decode(&shards).map_err(|e| match e {
        ErasureError::TooFew { k, have, detail } if !excluded.is_empty() => ErasureError::TooFew {
            k,
            have,
            detail: format!("{detail}; excluded: {}", excluded.join("; ")),
        },
        e => e,
    })
}

/// SHA-256 (hex) and length of each shard file of `object`, by index: what
/// each network of an erasure-coded pack must hold.
pub fn digests(object: &[u8], k: u32, n: u32) -> Result<Vec<(String, u64)>, ErasureError> {
    Ok(encode(object, k, n)?
        .iter()
        .map(|f| (hex::encode(Sha256::digest(f)), f.len() as u64))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn parsed(files: &[Vec<u8>], keep: &[usize]) -> Vec<Shard> {
        keep.iter()
            .map(|&i| Shard::parse(&files[i]).unwrap())
            .collect()
    }

    #[test]
    fn any_k_of_n_shards_rebuild_the_pack() {
        for len in [0, 1, 2, 3, 1000, 333_333] {
            let p = pack(len);
            let files = encode(&p, 3, 5).unwrap();
            assert_eq!(files.len(), 5);
            for keep in [[0, 1, 2], [2, 3, 4], [0, 3, 4], [4, 1, 3], [1, 2, 4]] {
                assert_eq!(decode(&parsed(&files, &keep)).unwrap(), p, "{len} {keep:?}");
            }
        }
    }

    #[test]
    fn shards_cost_n_over_k_of_the_pack_plus_headers() {
        let p = pack(960 << 10);
        let files = encode(&p, 3, 5).unwrap();
        let total: usize = files.iter().map(Vec::len).sum();
        let ideal = p.len() * 5 / 3;
        assert!(
            total >= ideal && total < ideal + 5 * (header_len(5) + 2),
            "{total}"
        );
        // Systematic: the first shard's body is the pack's first third.
        let s = Shard::parse(&files[0]).unwrap();
        assert_eq!(&s.body[..], &p[..s.body.len()]);
    }

    #[test]
    fn fewer_than_k_shards_are_refused_by_count_and_index() {
        let files = encode(&pack(5000), 3, 5).unwrap();
        let e = decode(&parsed(&files, &[1, 4])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 intact shard(s) of the 3 needed (shards 1, 4 of 3/5)"
        );
        // A shard twice counts once.
        let e = decode(&parsed(&files, &[1, 1, 4])).unwrap_err();
        assert!(matches!(e, ErasureError::TooFew { have: 2, .. }), "{e}");
    }

    #[test]
    fn a_corrupt_shard_is_excluded_before_decoding_and_named() {
        let p = pack(100_000);
        let mut files = encode(&p, 3, 5).unwrap();
        // A flipped body byte, then a flipped header byte.
        let last = files[1].len() - 1;
        files[1][last] ^= 1;
        files[3][9] ^= 0x10;
        assert!(matches!(
            Shard::parse(&files[1]),
            Err(ErasureError::Corrupt { index: 1, .. })
        ));
        assert!(Shard::parse(&files[3])
            .unwrap_err()
            .to_string()
            .contains("header does not match its hash"));
        let all: Vec<(String, bytes::Bytes)> = files
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("net{i}"), bytes::Bytes::from(f.clone())))
            .collect();
        // Three intact shards remain (0, 2, 4): enough.
        assert_eq!(rebuild(&all).unwrap(), p);
        // Without one of them, too few, and the bad ones are named.
        let e = rebuild(&all[1..]).unwrap_err().to_string();
        assert!(e.starts_with("2 intact shard(s) of the 3 needed"), "{e}");
        assert!(
            e.contains("net1: shard 1: body does not match its hash"),
            "{e}"
        );
        assert!(e.contains("net3: shard"), "{e}");
    }

    #[test]
    fn shards_that_agree_on_another_pack_are_not_mixed_in() {
        let (a, b) = (pack(9000), pack(9001));
        let fa = encode(&a, 2, 4).unwrap();
        let fb = encode(&b, 2, 4).unwrap();
        // One of a's shards among b's: b still rebuilds from its own two.
        let mix = vec![
            Shard::parse(&fa[0]).unwrap(),
            Shard::parse(&fb[1]).unwrap(),
            Shard::parse(&fb[3]).unwrap(),
        ];
        assert_eq!(decode(&mix).unwrap(), b);
    }

    #[test]
    fn a_whole_pack_is_not_a_shard_and_shapes_are_checked() {
        assert!(!is_shard(b"CRNS\x01\x01 a sealed chunk"));
        assert!(matches!(
            Shard::parse(b"CRNS\x01\x01 a sealed chunk"),
            Err(ErasureError::NotAShard(_))
        ));
        for (k, n) in [(0, 3), (3, 3), (4, 3), (3, 256)] {
            assert_eq!(check_shape(k, n), Err(ErasureError::Shape { k, n }));
        }
        assert_eq!(check_shape(1, 2), Ok((1, 2)));
    }

    #[test]
    fn the_recorded_digests_are_those_of_the_shard_files() {
        let p = pack(4321);
        let files = encode(&p, 3, 5).unwrap();
        let d = digests(&p, 3, 5).unwrap();
        for (f, (sha, len)) in files.iter().zip(&d) {
            assert_eq!(*sha, hex::encode(Sha256::digest(f)));
            assert_eq!(*len, f.len() as u64);
        }
    }
}
