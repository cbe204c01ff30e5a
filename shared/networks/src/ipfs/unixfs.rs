//! The CID an IPFS node gives an object that Cairn adds with
//! `cid-version=1, raw-leaves=true, chunker=size-1048576, hash=sha2-256`,
//! computed locally, so that every write is checked against what the node
//! says it stored and every read against the CID the node names.
//!
//! An object of at most one chunk is one raw block: its CID is the SHA-256 of
//! its bytes. A larger one is a balanced UnixFS tree (dag-pb nodes of at most
//! 174 links over 1 MiB raw leaves), the layout Kubo and js-ipfs both build
//! for these parameters; `scripts/servers/ipfs/cid.py` is the same algorithm
//! in a few lines, and the conformance test checks both against a real node.

use cid::Cid;
use sha2::{Digest, Sha256};

/// Leaf size (`chunker=size-1048576`); Kubo refuses larger chunks.
pub const CHUNK: usize = 1 << 20;
/// Links per dag-pb node in the balanced layout.
const MAX_LINKS: usize = 174;
const RAW: u64 = 0x55;
const DAG_PB: u64 = 0x70;
const SHA2_256: u64 = 0x12;

fn cid_of(codec: u64, block: &[u8]) -> Cid {
    let digest = Sha256::digest(block);
    let mh =
        cid::multihash::Multihash::<64>::wrap(SHA2_256, &digest).expect("a 32-byte digest fits");
    Cid::new_v1(codec, mh)
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A protobuf field: wire type 0 (varint) or 2 (bytes).
fn field_varint(out: &mut Vec<u8>, num: u64, v: u64) {
    varint(out, num << 3);
    varint(out, v);
}

fn field_bytes(out: &mut Vec<u8>, num: u64, v: &[u8]) {
    varint(out, (num << 3) | 2);
    varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// One node of the tree: its CID, the file bytes under it and its
/// cumulative size (all blocks under it, which dag-pb links record).
struct Node {
    cid: Cid,
    file_bytes: u64,
    cumulative: u64,
}

/// A dag-pb node over `children` (canonical order: links, then data).
fn parent(children: &[Node]) -> Node {
    let mut block = Vec::new();
    for c in children {
        let mut link = Vec::new();
        field_bytes(&mut link, 1, &c.cid.to_bytes());
        field_bytes(&mut link, 2, b"");
        field_varint(&mut link, 3, c.cumulative);
        field_bytes(&mut block, 2, &link);
    }
    let file_bytes: u64 = children.iter().map(|c| c.file_bytes).sum();
    let mut data = Vec::new();
    field_varint(&mut data, 1, 2); // UnixFS type: File
    field_varint(&mut data, 3, file_bytes);
    for c in children {
        field_varint(&mut data, 4, c.file_bytes);
    }
    field_bytes(&mut block, 1, &data);
    Node {
        cid: cid_of(DAG_PB, &block),
        file_bytes,
        cumulative: block.len() as u64 + children.iter().map(|c| c.cumulative).sum::<u64>(),
    }
}

/// The CID of `bytes` as Cairn adds them.
pub fn file_cid(bytes: &[u8]) -> Cid {
    if bytes.len() <= CHUNK {
        return cid_of(RAW, bytes);
    }
    let mut level: Vec<Node> = bytes
        .chunks(CHUNK)
        .map(|leaf| Node {
            cid: cid_of(RAW, leaf),
            file_bytes: leaf.len() as u64,
            cumulative: leaf.len() as u64,
        })
        .collect();
    while level.len() > 1 {
        level = level.chunks(MAX_LINKS).map(parent).collect();
    }
    level.pop().expect("one root").cid
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values a js-ipfs 0.66.1 node answered (docs/servers/ipfs.md).
    #[test]
    fn matches_what_a_node_answered() {
        assert_eq!(
            file_cid(b"").to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        // A multi-level tree is checked against the live node by the
        // conformance test (tests/tests/networks.rs).
        let two_leaves = vec![7u8; CHUNK + 1];
        let c = file_cid(&two_leaves);
        assert_eq!(c.codec(), DAG_PB);
        assert_ne!(c, file_cid(&two_leaves[..CHUNK]));
    }
}
