//! RFC 6962 / RFC 9162 Merkle tree hashing: leaf = SHA-256(0x00 ‖ data),
//! node = SHA-256(0x01 ‖ left ‖ right).
//!
//! [`RootBuilder`] computes a root while leaves stream past, in O(log n)
//! memory (a backup's chunk list can be long). [`Rfc6962`] plugs the same
//! hashing into `rs_merkle` where a whole tree and proofs are wanted; `rs_merkle`
//! promotes a lone right node unchanged, which gives RFC 6962's tree shape
//! (the tests check both agree for every size up to 300). `rs_merkle` has no
//! consistency proofs, so the audit ledger's tree is `tlog_tiles`' instead
//! (`cairn-tlog`); a test there holds [`RootBuilder`] to the same roots.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Streaming root computation (a compact range of perfect subtrees).
#[derive(Default, Clone)]
pub struct RootBuilder {
    /// (height, hash) of perfect subtrees, left to right, heights decreasing.
    stack: Vec<(u32, Hash)>,
    size: u64,
}

impl RootBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf given its data.
    pub fn push(&mut self, data: &[u8]) {
        self.push_leaf_hash(leaf_hash(data));
    }

    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        let mut node = (0u32, leaf);
        while let Some(&(h, left)) = self.stack.last() {
            if h != node.0 {
                break;
            }
            self.stack.pop();
            node = (h + 1, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.size += 1;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The RFC 6962 root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// RFC 6962 hashing for `rs_merkle`. Feed it leaf hashes (`leaf_hash`).
#[derive(Clone)]
pub struct Rfc6962;

impl rs_merkle::Hasher for Rfc6962 {
    type Hash = Hash;

    fn hash(data: &[u8]) -> Hash {
        Sha256::digest(data).into()
    }

    fn concat_and_hash(left: &Hash, right: Option<&Hash>) -> Hash {
        match right {
            Some(r) => node_hash(left, r),
            None => *left,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962 section 2.1, written as the RFC states it.
    fn reference(leaves: &[Vec<u8>]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaf_hash(&leaves[0]),
            n => {
                // The largest power of two smaller than n.
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&reference(&leaves[..k]), &reference(&leaves[k..]))
            }
        }
    }

    #[test]
    fn streaming_rs_merkle_and_rfc_agree() {
        for n in 0..300usize {
            let leaves: Vec<Vec<u8>> = (0..n).map(|i| (i as u32).to_be_bytes().to_vec()).collect();
            let mut b = RootBuilder::new();
            leaves.iter().for_each(|l| b.push(l));
            assert_eq!(b.root(), reference(&leaves), "size {n}");
            if n > 0 {
                let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
                let t = rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&hashes);
                assert_eq!(t.root().unwrap(), b.root(), "rs_merkle size {n}");
            }
        }
    }

    #[test]
    fn known_vector() {
        // RFC 6962 empty tree and the single leaf "" (from the CT test data).
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut b = RootBuilder::new();
        b.push(b"");
        assert_eq!(
            hex::encode(b.root()),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}
