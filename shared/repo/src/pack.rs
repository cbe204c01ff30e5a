//! Packs: many small objects' worth of chunks stored, sent and recorded as
//! one. A pack is its chunks' sealed bytes one after the other, each sealed
//! on its own exactly as a chunk stored alone is (its id as associated
//! data), so a reader needs only the chunk's offset and length.
//!
//! Ingest forms packs from the new chunks of a backup ([`PackBuilder`]):
//! since a sealed chunk is its payload plus [`SEAL_OVERHEAD`] bytes, every
//! chunk's place is known before it is sealed, and the chunk list can say
//! where it is. Encrypt seals them ([`seal_pack`]); restore opens one chunk
//! out of a pack ([`open_chunk`]).

use crate::format::{Location, PACK_CHUNKS, PACK_MAX};
use crate::{decompress, RepoError};
use cairn_crypto::{IdKey, ObjectKind, Sealer, SEAL_OVERHEAD};
use cairn_events::{ChunkId, KeyId, PackId, PackedChunk, PlainPart};

/// A pack being filled, for a backup sealed under data key `key`.
pub struct PackBuilder {
    key: KeyId,
    parts: Vec<PlainPart>,
    sealed_len: usize,
}

/// A pack ready to send: its id, its chunks in order, and where each is.
pub struct FormedPack {
    pub id: PackId,
    pub parts: Vec<PlainPart>,
    pub located: Vec<(ChunkId, Location)>,
}

impl PackBuilder {
    pub fn new(key: KeyId) -> Self {
        PackBuilder {
            key,
            parts: Vec::new(),
            sealed_len: 0,
        }
    }

    /// A pack of one large chunk (format 3 stores every chunk in a pack, so
    /// that its name carries its data key).
    pub fn single(key: KeyId, part: PlainPart) -> FormedPack {
        let mut b = PackBuilder::new(key);
        b.push(part);
        b.take().expect("holds one chunk")
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Whether a chunk with a payload of `len` bytes still fits.
    pub fn fits(&self, len: usize) -> bool {
        self.parts.is_empty()
            || (self.parts.len() < PACK_CHUNKS && self.sealed_len + len + SEAL_OVERHEAD <= PACK_MAX)
    }

    /// Adds a chunk; check [`fits`](Self::fits) first (a chunk larger than a
    /// pack goes alone into one).
    pub fn push(&mut self, part: PlainPart) {
        self.sealed_len += part.payload.len() + SEAL_OVERHEAD;
        self.parts.push(part);
    }

    /// The pack so far, if it holds anything; the builder is empty after.
    pub fn take(&mut self) -> Option<FormedPack> {
        if self.parts.is_empty() {
            return None;
        }
        self.sealed_len = 0;
        let parts = std::mem::take(&mut self.parts);
        let id = PackId::keyed(&self.key, parts.iter().map(|p| &p.id));
        let mut offset = 0u32;
        let located = parts
            .iter()
            .map(|p| {
                let len = (p.payload.len() + SEAL_OVERHEAD) as u32;
                let loc = Location::Packed {
                    pack: id,
                    offset,
                    len,
                };
                offset += len;
                (p.id, loc)
            })
            .collect();
        Some(FormedPack { id, parts, located })
    }
}

/// Seals a pack's chunks one after the other; returns the pack's bytes and
/// where each chunk is in them.
pub fn seal_pack(sealer: &Sealer, parts: &[PlainPart]) -> (Vec<u8>, Vec<PackedChunk>) {
    let total: usize = parts.iter().map(|p| p.payload.len() + SEAL_OVERHEAD).sum();
    let mut out = Vec::with_capacity(total);
    let mut table = Vec::with_capacity(parts.len());
    for p in parts {
        let offset = out.len();
        sealer.seal_into(
            &mut out,
            ObjectKind::Chunk,
            p.compressed,
            &p.id.0,
            &p.payload,
        );
        table.push(PackedChunk {
            id: p.id,
            offset: offset as u32,
            len: (out.len() - offset) as u32,
        });
    }
    (out, table)
}

/// Opens chunk `id` from its sealed bytes (a whole chunk object, or its
/// slice of a pack), checks it decrypts to `plain_len` bytes whose keyed
/// hash is `id`, and returns the plaintext.
pub fn open_chunk(
    sealer: &Sealer,
    id_key: &IdKey,
    id: &ChunkId,
    plain_len: usize,
    sealed: &[u8],
) -> Result<Vec<u8>, RepoError> {
    let what = format!("chunk {}", id.to_hex());
    let o = sealer.open(&what, &id.0, sealed)?;
    if o.kind != ObjectKind::Chunk {
        return Err(RepoError::Format(format!("{what}: sealed as a manifest")));
    }
    let plain = decompress(&what, o.compressed, o.payload, plain_len)?;
    if id_key.chunk_id(&plain) != id.0 {
        return Err(RepoError::Format(format!(
            "{what}: content does not match its id"
        )));
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_crypto::Keyring;

    #[test]
    fn a_pack_holds_each_chunk_where_its_location_says_and_stays_within_bounds() {
        let keys = Keyring::generate();
        let id_key = keys.id_key();
        let sealer = cairn_crypto::Sealer::for_data_key(
            cairn_crypto::DataKeyId([9; 16]),
            &cairn_crypto::Key32::random(),
        );
        let mut b = PackBuilder::new(KeyId([9; 16]));
        let plains: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000 + i as usize]).collect();
        for p in &plains {
            assert!(b.fits(p.len()));
            let (compressed, payload) = crate::compress(p.clone(), 3);
            b.push(PlainPart {
                id: ChunkId(id_key.chunk_id(p)),
                compressed,
                payload,
            });
        }
        let formed = b.take().unwrap();
        assert!(b.is_empty() && b.take().is_none());
        let (bytes, table) = seal_pack(&sealer, &formed.parts);
        assert_eq!(table.len(), 5);
        for ((id, loc), (t, plain)) in formed.located.iter().zip(table.iter().zip(&plains)) {
            let Location::Packed { pack, offset, len } = *loc else {
                panic!("packed")
            };
            assert_eq!(pack, formed.id);
            assert_eq!(
                (t.id, t.offset, t.len),
                (*id, offset, len),
                "ingest's offsets are encrypt's"
            );
            let slice = &bytes[offset as usize..(offset + len) as usize];
            assert_eq!(
                &open_chunk(&sealer, &id_key, id, plain.len(), slice).unwrap(),
                plain
            );
        }
        // a slice at the wrong place, or under another id, does not open
        let t = table[1];
        let wrong = &bytes[t.offset as usize + 1..(t.offset + t.len) as usize];
        assert!(open_chunk(&sealer, &id_key, &t.id, 1001, wrong).is_err());
        let right = &bytes[t.offset as usize..(t.offset + t.len) as usize];
        assert!(open_chunk(&sealer, &id_key, &table[2].id, 1001, right).is_err());

        // full by bytes, and by count
        let mut b = PackBuilder::new(KeyId([9; 16]));
        b.push(PlainPart {
            id: ChunkId([1; 32]),
            compressed: false,
            payload: vec![0; PACK_MAX - 2 * SEAL_OVERHEAD - 10],
        });
        assert!(b.fits(10) && !b.fits(11));
        let mut b = PackBuilder::new(KeyId([9; 16]));
        for i in 0..PACK_CHUNKS {
            assert!(b.fits(1));
            b.push(PlainPart {
                id: ChunkId([i as u8; 32]),
                compressed: false,
                payload: vec![1],
            });
        }
        assert!(!b.fits(1));
        // a chunk bigger than a pack still goes, alone
        assert!(PackBuilder::new(KeyId([9; 16])).fits(PACK_MAX * 2));
        // the same chunks under another data key make another pack
        let part = |k| {
            PackBuilder::single(
                KeyId([k; 16]),
                PlainPart {
                    id: ChunkId([1; 32]),
                    compressed: false,
                    payload: vec![1],
                },
            )
            .id
        };
        assert_ne!(part(1), part(2));
    }
}
