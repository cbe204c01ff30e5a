//! The repository's own data structures, as stored: repository config,
//! manifest, chunk-list pages and tree records. All carry a format number;
//! readers refuse a newer one by name.
//!
//! Format 1 stored every chunk as its own object (`chunks/…`). Format 2
//! stores small chunks in packs (`packs/…`: sealed chunks one after the
//! other, up to [`PACK_MAX`] bytes; chunks of [`PACK_ALONE`] or more stay
//! alone), and each chunk-list page says where each of its chunks is
//! ([`Location`]). A format-2 reader reads both.
//!
//! Format 3 makes backups write-only: the repository has an X25519 key
//! pair (its public key in the config, pinned by writers), each backup is
//! sealed under its own data key, stored only wrapped to the public key
//! (`datakeys/<id>`), and every chunk is in a pack whose id names that key
//! ([`PackId::keyed`](cairn_events::PackId::keyed)). Objects of formats 1
//! and 2 stay readable with the data key of their keyring.
//!
//! Format 4 gives each dataset its own key pair (`datasets/<fingerprint>`,
//! the private key wrapped to the repository's public key): a backup's data
//! key is wrapped to its dataset's key, and chunk ids are keyed per dataset
//! ([`IdKey::for_dataset`](cairn_crypto::IdKey::for_dataset)), so that
//! destroying one dataset's key (`cairn shred`) leaves every other whole.

use cairn_events::{BackupId, ChunkId, ObjectKey, PackId, Redundancy, Source, Stats};
use serde::{Deserialize, Serialize};

/// The format this build writes.
pub const FORMAT: u32 = 4;
/// The oldest format this build reads.
pub const OLDEST_FORMAT: u32 = 1;

/// Whether this build reads objects of format `f`.
pub fn readable(f: u32) -> bool {
    (OLDEST_FORMAT..=FORMAT).contains(&f)
}

/// Largest pack, in sealed bytes: one pack travels as one NATS message
/// (1 MiB `max_payload` by default), with room for its envelope.
pub const PACK_MAX: usize = 960 * 1024;
/// Most chunks in one pack (keeps its `object.sealed` event small).
pub const PACK_CHUNKS: usize = 256;
/// A chunk whose payload is at least this long is stored alone, as in
/// format 1: at most three would share a pack, which would save little,
/// and a pack stays as long as one of its chunks is referenced. Every chunk
/// of a file but its last is at least the chunker's minimum (256 KiB), so
/// what packs gather is small files and files' tails.
pub const PACK_ALONE: usize = 256 * 1024;

/// Content-defined chunking parameters. Fixed at `init` (changing them would
/// move every chunk boundary and defeat dedup), and sized so that a chunk in
/// an event stays under NATS's default 1 MiB `max_payload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunking {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for Chunking {
    fn default() -> Self {
        Chunking {
            min: 256 * 1024,
            avg: 512 * 1024,
            max: 896 * 1024,
        }
    }
}

/// `config` on every network: public, describes how to read the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoConfig {
    pub format: u32,
    pub repo_id: String,
    pub created: String,
    pub chunking: Chunking,
    /// zstd level for chunks.
    pub compression_level: i32,
    /// The repository's public key (hex, X25519), from format 3 on. Shown
    /// for checking: writers use the copy pinned in their own writer file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

impl RepoConfig {
    /// The config as stored (pretty JSON: a reader of the network sees it).
    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from(serde_json::to_vec_pretty(self).expect("config serializes"))
    }
}

/// A reference to a chunk: its id and plaintext length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    #[serde(with = "id_bytes")]
    pub id: ChunkId,
    pub len: u32,
}

/// The sealed manifest of one backup (`backups/<id>/manifest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub backup_id: BackupId,
    pub dataset: String,
    pub tags: Vec<String>,
    pub source: Source,
    pub requested_at: String,
    pub requested_by: String,
    /// Tree chunks, in order: concatenated, they are the tree records.
    pub tree: Vec<ChunkRef>,
    /// Distinct chunks (data and tree) and the pages listing them.
    pub chunk_count: u64,
    pub chunk_pages: u32,
    /// RFC 6962 root over the distinct chunk ids in chunk-list order.
    #[serde(with = "serde_bytes")]
    pub merkle_root: Vec<u8>,
    pub stats: Stats,
    pub networks: Vec<String>,
    /// How chunks are spread over `networks`: whole copies, or each pack
    /// as one erasure-coded shard per network (`networks[i]`: shard `i`).
    #[serde(default = "replicate_all")]
    pub redundancy: Redundancy,
    /// The fingerprint (hex) of the dataset key this backup's data key is
    /// wrapped to (format 4): its chunk ids are keyed with it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_key: Option<String>,
    /// For a PostgreSQL base backup: the WAL it needs to be consistent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<cairn_events::WalRange>,
    /// For a `pg_dump` backup: where each table's data is in the dump, so
    /// that a restore of one table reads only that part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump_index: Option<crate::pgdump::DumpIndex>,
}

fn replicate_all() -> Redundancy {
    Redundancy::Replicate { min_copies: 1 }
}

/// Chunk ids per chunk-list page: 8192 × (34 bytes of id + up to 15 of
/// location) ≈ 400 KiB.
pub const PAGE_LEN: usize = 8192;

/// Where a chunk's sealed bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    /// The whole object `chunks/<id>` (format 1).
    Alone(ChunkId),
    /// `len` bytes at `offset` of pack `pack`.
    Packed { pack: PackId, offset: u32, len: u32 },
}

/// One leaf of a backup's sealed root, in chunk-list order: a chunk stored
/// alone is (chunk id ‖ SHA-256 of its ciphertext); a packed one (chunk id ‖
/// SHA-256 of its pack ‖ offset ‖ length, big-endian u32), so that a
/// key-less auditor who fetches the pack can check the chunk's place in it.
/// `object_sha256` is the hex digest of the object holding it.
pub fn sealed_leaf(id: &ChunkId, object_sha256: &str, range: Option<(u32, u32)>) -> Vec<u8> {
    let mut leaf = id.0.to_vec();
    leaf.extend(hex::decode(object_sha256).unwrap_or_default());
    if let Some((offset, len)) = range {
        leaf.extend(offset.to_be_bytes());
        leaf.extend(len.to_be_bytes());
    }
    leaf
}

impl Location {
    /// The object holding the chunk.
    pub fn object(&self) -> ObjectKey {
        match self {
            Location::Alone(id) => ObjectKey::Chunk { id: *id },
            Location::Packed { pack, .. } => ObjectKey::Pack { id: *pack },
        }
    }
}

/// `pack_of` entry of a chunk stored alone.
pub const NOT_PACKED: u32 = u32::MAX;

/// One page of a backup's chunk list (`backups/<id>/chunks.<n>`). Public: a
/// verifier without the key learns which objects make up the backup and
/// checks them against the Merkle root recorded in the ledger, and the
/// collector learns which packs are still needed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkListPage {
    pub format: u32,
    pub backup_id: BackupId,
    pub page: u32,
    #[serde(with = "ids_bytes")]
    pub ids: Vec<ChunkId>,
    /// Indices (within this page) of chunks that were new in this backup.
    pub new: Vec<u32>,
    /// Format 2: the packs this page's chunks are in.
    #[serde(default, with = "pack_ids_bytes")]
    pub packs: Vec<PackId>,
    /// Format 2, one per id: its pack's index in `packs`, or [`NOT_PACKED`].
    #[serde(default)]
    pub pack_of: Vec<u32>,
    /// Format 2, one per id: offset and length of its sealed bytes in its
    /// pack (0 for a chunk stored alone).
    #[serde(default)]
    pub offsets: Vec<u32>,
    #[serde(default)]
    pub lens: Vec<u32>,
}

impl ChunkListPage {
    /// Each chunk's location, in page order; a page whose locations do not
    /// add up is an error naming it.
    pub fn locations(&self) -> Result<Vec<Location>, String> {
        if self.format == 1 {
            return Ok(self.ids.iter().map(|id| Location::Alone(*id)).collect());
        }
        let n = self.ids.len();
        if self.pack_of.len() != n || self.offsets.len() != n || self.lens.len() != n {
            return Err(format!(
                "chunk list page {} of backup {}: {n} chunks but {} pack indices, {} offsets and {} lengths",
                self.page,
                self.backup_id,
                self.pack_of.len(),
                self.offsets.len(),
                self.lens.len()
            ));
        }
        (0..n)
            .map(|i| match self.pack_of[i] {
                NOT_PACKED => Ok(Location::Alone(self.ids[i])),
                p => match self.packs.get(p as usize) {
                    Some(pack) => Ok(Location::Packed {
                        pack: *pack,
                        offset: self.offsets[i],
                        len: self.lens[i],
                    }),
                    None => Err(format!(
                        "chunk list page {} of backup {}: chunk {i} names pack {p} of {}",
                        self.page,
                        self.backup_id,
                        self.packs.len()
                    )),
                },
            })
            .collect()
    }
}

/// One record of a backup's file tree. A regular file is `File`, then
/// `Chunks` records in order, then `End`. Paths are relative, as bytes
/// (POSIX paths need not be UTF-8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum TreeRecord {
    #[serde(rename = "dir")]
    Dir {
        #[serde(with = "serde_bytes")]
        path: Vec<u8>,
        meta: Meta,
    },
    #[serde(rename = "file")]
    File {
        #[serde(with = "serde_bytes")]
        path: Vec<u8>,
        meta: Meta,
    },
    #[serde(rename = "chunks")]
    Chunks { refs: Vec<ChunkRef> },
    /// End of a file. Its content needs no hash of its own: every chunk is
    /// authenticated and checked against its keyed id, and the tree that
    /// lists them is authenticated the same way.
    #[serde(rename = "end")]
    End { size: u64 },
    #[serde(rename = "symlink")]
    Symlink {
        #[serde(with = "serde_bytes")]
        path: Vec<u8>,
        #[serde(with = "serde_bytes")]
        target: Vec<u8>,
        meta: Meta,
    },
}

/// Chunk refs per `Chunks` record (keeps every record small).
pub const REFS_PER_RECORD: usize = 1024;

/// POSIX metadata kept for every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: u32,
}

mod id_bytes {
    use cairn_events::ChunkId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &ChunkId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&id.0)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ChunkId, D::Error> {
        let b: serde_bytes::ByteBuf = Deserialize::deserialize(d)?;
        let arr: [u8; 32] = b
            .as_slice()
            .try_into()
            .map_err(|_| serde::de::Error::custom("chunk id must be 32 bytes"))?;
        Ok(ChunkId(arr))
    }
}

mod pack_ids_bytes {
    use cairn_events::PackId;
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ids: &[PackId], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(ids.len()))?;
        for id in ids {
            seq.serialize_element(serde_bytes::Bytes::new(&id.0))?;
        }
        seq.end()
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PackId>, D::Error> {
        let v: Vec<serde_bytes::ByteBuf> = Deserialize::deserialize(d)?;
        v.into_iter()
            .map(|b| {
                <[u8; 32]>::try_from(b.as_slice())
                    .map(PackId)
                    .map_err(|_| serde::de::Error::custom("pack id must be 32 bytes"))
            })
            .collect()
    }
}

mod ids_bytes {
    use cairn_events::ChunkId;
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ids: &[ChunkId], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(ids.len()))?;
        for id in ids {
            seq.serialize_element(serde_bytes::Bytes::new(&id.0))?;
        }
        seq.end()
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ChunkId>, D::Error> {
        let v: Vec<serde_bytes::ByteBuf> = Deserialize::deserialize(d)?;
        v.into_iter()
            .map(|b| {
                <[u8; 32]>::try_from(b.as_slice())
                    .map(ChunkId)
                    .map_err(|_| serde::de::Error::custom("chunk id must be 32 bytes"))
            })
            .collect()
    }
}
