//! Arweave format-2 data transactions, built and signed here: the deep hash
//! (SHA-384) of the signed fields, the chunked `data_root` (SHA-256 Merkle
//! tree over ≤ 256 KiB chunks, with the protocol's rebalancing of a short
//! last chunk) and chunk proofs, RSA-PSS (SHA-256, salt 32) with a JWK wallet,
//! id = SHA-256 of the signature. Checked against vectors produced with the
//! reference client (`scripts/servers/arweave/vectors.json`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rsa::pss::SigningKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::{BigUint, RsaPrivateKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha384};

pub const MAX_CHUNK: usize = 256 * 1024;
pub const MIN_CHUNK: usize = 32 * 1024;

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn unb64(s: &str) -> Result<Vec<u8>, String> {
    B64.decode(s.trim_end_matches('='))
        .map_err(|e| format!("bad base64url: {e}"))
}

/// A value of the deep hash: bytes, or a list of values.
pub enum Deep<'a> {
    Blob(&'a [u8]),
    List(Vec<Deep<'a>>),
}

pub fn deep_hash(d: &Deep) -> [u8; 48] {
    match d {
        Deep::Blob(b) => {
            let tag = Sha384::digest(format!("blob{}", b.len()).as_bytes());
            let mut h = Sha384::new();
            h.update(tag);
            h.update(Sha384::digest(b));
            h.finalize().into()
        }
        Deep::List(items) => {
            let mut acc: [u8; 48] =
                Sha384::digest(format!("list{}", items.len()).as_bytes()).into();
            for item in items {
                let mut h = Sha384::new();
                h.update(acc);
                h.update(deep_hash(item));
                acc = h.finalize().into();
            }
            acc
        }
    }
}

fn note(n: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[24..].copy_from_slice(&n.to_be_bytes());
    out
}

fn h(parts: &[&[u8]]) -> [u8; 32] {
    let mut s = Sha256::new();
    for p in parts {
        s.update(p);
    }
    s.finalize().into()
}

/// Chunk boundaries: 256 KiB pieces, except that a remainder under 32 KiB is
/// avoided by halving what is left; a final empty chunk when the size is a
/// multiple of 256 KiB (it is in the tree but never uploaded).
pub fn chunk_ranges(len: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut rest = len;
    while rest >= MAX_CHUNK {
        let mut size = MAX_CHUNK;
        let next = rest - MAX_CHUNK;
        if next > 0 && next < MIN_CHUNK {
            size = rest.div_ceil(2);
        }
        out.push((start, start + size));
        start += size;
        rest -= size;
    }
    out.push((start, start + rest));
    out
}

enum Node {
    Leaf {
        id: [u8; 32],
        data_hash: [u8; 32],
        max: u64,
    },
    Branch {
        id: [u8; 32],
        left: Box<Node>,
        right: Box<Node>,
        max: u64,
    },
}

impl Node {
    fn id(&self) -> [u8; 32] {
        match self {
            Node::Leaf { id, .. } | Node::Branch { id, .. } => *id,
        }
    }
    fn max(&self) -> u64 {
        match self {
            Node::Leaf { max, .. } | Node::Branch { max, .. } => *max,
        }
    }
}

/// The data root and, per chunk, its (range, proof).
pub struct Chunked {
    pub data_root: [u8; 32],
    pub chunks: Vec<((usize, usize), Vec<u8>)>,
}

pub fn chunk_data(data: &[u8]) -> Chunked {
    let mut layer: Vec<Node> = chunk_ranges(data.len())
        .into_iter()
        .map(|(a, b)| {
            let data_hash = h(&[&data[a..b]]);
            let max = b as u64;
            Node::Leaf {
                id: h(&[&h(&[&data_hash]), &h(&[&note(max)])]),
                data_hash,
                max,
            }
        })
        .collect();
    while layer.len() > 1 {
        let mut next = Vec::with_capacity(layer.len().div_ceil(2));
        let mut it = layer.into_iter();
        while let Some(left) = it.next() {
            match it.next() {
                Some(right) => {
                    let id = h(&[
                        &h(&[&left.id()]),
                        &h(&[&right.id()]),
                        &h(&[&note(left.max())]),
                    ]);
                    let max = right.max();
                    next.push(Node::Branch {
                        id,
                        left: Box::new(left),
                        right: Box::new(right),
                        max,
                    });
                }
                None => next.push(left),
            }
        }
        layer = next;
    }
    let root = layer.pop().expect("at least one chunk");
    let mut chunks = Vec::new();
    fn walk(n: &Node, path: Vec<u8>, min: u64, out: &mut Vec<((usize, usize), Vec<u8>)>) {
        match n {
            Node::Leaf { data_hash, max, .. } => {
                let mut p = path;
                p.extend_from_slice(data_hash);
                p.extend_from_slice(&note(*max));
                out.push(((min as usize, *max as usize), p));
            }
            Node::Branch { left, right, .. } => {
                let mut base = path;
                base.extend_from_slice(&left.id());
                base.extend_from_slice(&right.id());
                base.extend_from_slice(&note(left.max()));
                walk(left, base.clone(), min, out);
                walk(right, base, left.max(), out);
            }
        }
    }
    walk(&root, Vec::new(), 0, &mut chunks);
    Chunked {
        data_root: root.id(),
        chunks,
    }
}

/// A JWK RSA wallet.
#[derive(Deserialize)]
pub struct Jwk {
    pub n: String,
    pub e: String,
    pub d: String,
    pub p: String,
    pub q: String,
}

pub struct Wallet {
    key: RsaPrivateKey,
    owner: Vec<u8>,
}

impl Wallet {
    pub fn from_jwk(json: &[u8]) -> Result<Self, String> {
        let j: Jwk = serde_json::from_slice(json).map_err(|e| format!("not a JWK RSA key: {e}"))?;
        let n = |s: &str| unb64(s).map(|b| BigUint::from_bytes_be(&b));
        let owner = unb64(&j.n)?;
        let key =
            RsaPrivateKey::from_components(n(&j.n)?, n(&j.e)?, n(&j.d)?, vec![n(&j.p)?, n(&j.q)?])
                .map_err(|e| format!("invalid RSA key: {e}"))?;
        Ok(Wallet { key, owner })
    }

    /// base64url(SHA-256(n)).
    pub fn address(&self) -> String {
        b64(&h(&[&self.owner]))
    }

    pub fn owner(&self) -> &[u8] {
        &self.owner
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signer = SigningKey::<Sha256>::new_with_salt_len(self.key.clone(), 32);
        signer
            .sign_with_rng(&mut rand::thread_rng(), message)
            .to_vec()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tag {
    pub name: String,
    pub value: String,
}

/// A format-2 transaction as posted to `/tx`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transaction {
    pub format: u8,
    pub id: String,
    pub last_tx: String,
    pub owner: String,
    pub tags: Vec<Tag>,
    pub target: String,
    pub quantity: String,
    pub data_root: String,
    pub data_size: String,
    pub data: String,
    pub reward: String,
    pub signature: String,
}

/// Builds and signs a data transaction. `inline` puts the data in the
/// transaction (small objects); otherwise it goes up as chunks.
pub fn build(
    wallet: &Wallet,
    data: &[u8],
    tags: &[(&str, &str)],
    last_tx: &str,
    reward: &str,
    inline: bool,
) -> Result<(Transaction, Chunked), String> {
    let chunked = chunk_data(data);
    let (data_root, data_size) = if data.is_empty() {
        (String::new(), "0".to_string())
    } else {
        (b64(&chunked.data_root), data.len().to_string())
    };
    let tag_bytes: Vec<(Vec<u8>, Vec<u8>)> = tags
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let last = unb64(last_tx)?;
    let root_bytes = unb64(&data_root)?;
    let message = deep_hash(&Deep::List(vec![
        Deep::Blob(b"2"),
        Deep::Blob(&wallet.owner),
        Deep::Blob(b""),
        Deep::Blob(b"0"),
        Deep::Blob(reward.as_bytes()),
        Deep::Blob(&last),
        Deep::List(
            tag_bytes
                .iter()
                .map(|(n, v)| Deep::List(vec![Deep::Blob(n), Deep::Blob(v)]))
                .collect(),
        ),
        Deep::Blob(data_size.as_bytes()),
        Deep::Blob(&root_bytes),
    ]));
    let signature = wallet.sign(&message);
    Ok((
        Transaction {
            format: 2,
            id: b64(&h(&[&signature])),
            last_tx: last_tx.to_string(),
            owner: b64(&wallet.owner),
            tags: tags
                .iter()
                .map(|(n, v)| Tag {
                    name: b64(n.as_bytes()),
                    value: b64(v.as_bytes()),
                })
                .collect(),
            target: String::new(),
            quantity: "0".into(),
            data_root,
            data_size,
            data: if inline { b64(data) } else { String::new() },
            reward: reward.to_string(),
            signature: b64(&signature),
        },
        chunked,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> serde_json::Value {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/servers/arweave/vectors.json"
        );
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn payload(n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 32);
        let mut i = 0u32;
        while out.len() < n {
            out.extend_from_slice(&h(&[b"cairn-arweave-test-vector", &i.to_be_bytes()]));
            i += 1;
        }
        out.truncate(n);
        out
    }

    #[test]
    fn deep_hash_matches_the_reference() {
        let v = vectors();
        assert_eq!(
            b64(&deep_hash(&Deep::Blob(b""))),
            v["deep_hash_examples"][0]["sha384_deep_hash_b64url"]
        );
        assert_eq!(
            b64(&deep_hash(&Deep::Blob(b"abc"))),
            v["deep_hash_examples"][1]["sha384_deep_hash_b64url"]
        );
    }

    #[test]
    fn data_root_proofs_and_signature_data_match_the_reference() {
        let v = vectors();
        let wallet_path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/servers/arweave/test-wallet.json"
        );
        let wallet = Wallet::from_jwk(&std::fs::read(wallet_path).unwrap()).unwrap();
        assert_eq!(wallet.address(), v["address"]);
        for t in v["transactions"].as_array().unwrap() {
            let size: usize = match &t["data_size"] {
                serde_json::Value::String(s) => s.parse().unwrap(),
                n => n.as_u64().unwrap() as usize,
            };
            let data = payload(size);
            assert_eq!(
                hex::encode(h(&[&data])),
                t["data_sha256_hex"],
                "{}: payload",
                t["name"]
            );
            let tags: Vec<(String, String)> = t["tags_utf8"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    (
                        x["name"].as_str().unwrap().to_string(),
                        x["value"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let tag_refs: Vec<(&str, &str)> =
                tags.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let (tx, chunked) = build(
                &wallet,
                &data,
                &tag_refs,
                v["fixed_last_tx"].as_str().unwrap(),
                v["reward"].as_str().unwrap(),
                true,
            )
            .unwrap();
            assert_eq!(
                tx.data_root,
                t["data_root"].as_str().unwrap(),
                "{}: data_root",
                t["name"]
            );
            let uploads = t["chunk_uploads"].as_array().unwrap();
            let nonempty: Vec<_> = chunked.chunks.iter().filter(|((a, b), _)| b > a).collect();
            assert_eq!(nonempty.len(), uploads.len(), "{}: chunk count", t["name"]);
            for (((_, end), proof), up) in nonempty.iter().zip(uploads) {
                assert_eq!(
                    b64(proof),
                    up["data_path"].as_str().unwrap(),
                    "{}: proof",
                    t["name"]
                );
                assert_eq!((end - 1).to_string(), up["offset"].as_str().unwrap());
            }
            // The signature verifies against the reference's signed digest.
            use rsa::signature::Verifier;
            let vk = rsa::pss::VerifyingKey::<Sha256>::new(wallet.key.to_public_key());
            let reference = unb64(t["signature_data_deep_hash_b64url"].as_str().unwrap()).unwrap();
            let sig =
                rsa::pss::Signature::try_from(unb64(&tx.signature).unwrap().as_slice()).unwrap();
            vk.verify(&reference, &sig).unwrap_or_else(|e| {
                panic!(
                    "{}: our signature is not over the reference digest: {e}",
                    t["name"]
                )
            });
        }
    }
}
