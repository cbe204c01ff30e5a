//! Verifying RFC 6962 proofs: that an entry is in a tree of a given size and
//! root (inclusion), and that a tree is an append-only extension of an
//! earlier one (consistency).

use tlog_tiles::tlog::{check_record, check_tree, Hash, HASH_SIZE};

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("entry index {index} is not below the tree size {size}")]
    IndexOutsideTree { index: u64, size: u64 },
    #[error("the earlier size {size1} is larger than the later size {size2}")]
    SizesOutOfOrder { size1: u64, size2: u64 },
    #[error("a consistency proof from the empty tree proves nothing")]
    FromEmptyTree,
    #[error("{what} is {len} bytes, not a {HASH_SIZE}-byte SHA-256 hash")]
    BadHash { what: &'static str, len: usize },
    #[error("the trees are the same size but the proof is not empty")]
    ProofNotEmpty,
    #[error("the trees are the same size but their roots differ")]
    RootsDiffer,
    #[error("the proof does not lead to the expected root")]
    Mismatch,
}

fn hash(what: &'static str, bytes: &[u8]) -> Result<Hash, ProofError> {
    let arr: [u8; HASH_SIZE] = bytes.try_into().map_err(|_| ProofError::BadHash {
        what,
        len: bytes.len(),
    })?;
    Ok(Hash(arr))
}

fn hashes(proof: &[Vec<u8>]) -> Result<Vec<Hash>, ProofError> {
    proof.iter().map(|p| hash("a proof hash", p)).collect()
}

/// Checks that the entry whose leaf hash is `leaf_hash` is entry `index` of
/// the tree of `size` entries whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf_hash: &[u8],
    proof: &[Vec<u8>],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutsideTree { index, size });
    }
    let leaf = hash("the leaf hash", leaf_hash)?;
    let root = hash("the root", root)?;
    let proof = hashes(proof)?;
    check_record(&proof, size, root, index, leaf).map_err(|_| ProofError::Mismatch)
}

/// Checks that the tree of `size2` entries with root `root2` begins with the
/// tree of `size1` entries with root `root1`: nothing in it was changed,
/// removed or reordered, only appended.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Vec<u8>],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesOutOfOrder { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::FromEmptyTree);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::ProofNotEmpty);
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootsDiffer)
        };
    }
    let old = hash("the earlier root", root1)?;
    let new = hash("the later root", root2)?;
    let proof = hashes(proof)?;
    check_tree(&proof, size2, new, size1, old).map_err(|_| ProofError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tlog_tiles::tlog::{
        prove_record, prove_tree, record_hash, stored_hashes, tree_hash, HashReader,
    };

    /// The stored hashes of a log, in memory (PostgreSQL holds them in Cairn).
    struct Mem(Vec<Hash>);

    impl HashReader for Mem {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::tlog::Error> {
            Ok(indexes.iter().map(|&i| self.0[i as usize]).collect())
        }
    }

    fn bytes(p: &[Hash]) -> Vec<Vec<u8>> {
        p.iter().map(|h| h.0.to_vec()).collect()
    }

    /// Proofs made for every entry and every earlier size of logs of 1 to 40
    /// entries verify, and the roots are the ones Cairn's streaming builder
    /// (used for backup manifests) computes; a changed root or leaf fails.
    #[test]
    fn proofs_of_every_size_verify() {
        let mut mem = Mem(Vec::new());
        let mut roots = Vec::new();
        let mut builder = cairn_crypto::merkle::RootBuilder::new();
        for n in 0..40u64 {
            let entry = format!("entry {n}");
            let new = stored_hashes(n, entry.as_bytes(), &mem).unwrap();
            mem.0.extend(new);
            let root = tree_hash(n + 1, &mem).unwrap();
            builder.push(entry.as_bytes());
            assert_eq!(root.0, builder.root(), "size {}", n + 1);
            roots.push(root);
        }
        for size in 1..=40u64 {
            let root = roots[size as usize - 1].0;
            for i in 0..size {
                let leaf = record_hash(format!("entry {i}").as_bytes()).0;
                let p = bytes(&prove_record(size, i, &mem).unwrap());
                verify_inclusion(i, size, &leaf, &p, &root).unwrap();
                let other = record_hash(b"not an entry").0;
                assert_eq!(
                    verify_inclusion(i, size, &other, &p, &root),
                    Err(ProofError::Mismatch)
                );
            }
            for old in 1..size {
                let old_root = roots[old as usize - 1].0;
                let p = bytes(&prove_tree(size, old, &mem).unwrap());
                verify_consistency(old, size, &p, &old_root, &root).unwrap();
                let mut forged = old_root;
                forged[0] ^= 1;
                assert_eq!(
                    verify_consistency(old, size, &p, &forged, &root),
                    Err(ProofError::Mismatch)
                );
            }
        }
    }
}
