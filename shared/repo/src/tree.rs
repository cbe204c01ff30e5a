//! Turning tree records into tree chunks and back.
//!
//! Records are MessagePack maps, concatenated. A tree chunk always ends on a
//! record boundary, so each one decodes on its own; boundaries are content
//! defined (a record whose hash has six low zero bits ends a chunk once the
//! chunk is past the minimum), so an unchanged part of a tree gives the same
//! chunks in the next backup and dedups.

use crate::format::TreeRecord;
use crate::RepoError;

const TREE_MIN: usize = 64 * 1024;
const TREE_MAX: usize = 768 * 1024;

#[derive(Default)]
pub struct TreeChunker {
    buf: Vec<u8>,
}

impl TreeChunker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a record; returns a finished tree chunk when one is cut.
    pub fn push(&mut self, record: &TreeRecord) -> Option<Vec<u8>> {
        let bytes = rmp_serde::to_vec_named(record).expect("tree records serialize");
        let mut out = None;
        if !self.buf.is_empty() && self.buf.len() + bytes.len() > TREE_MAX {
            out = Some(std::mem::take(&mut self.buf));
        }
        self.buf.extend_from_slice(&bytes);
        let h = blake3::hash(&bytes);
        if out.is_none() && self.buf.len() >= TREE_MIN && h.as_bytes()[0] & 0x3f == 0 {
            out = Some(std::mem::take(&mut self.buf));
        }
        out
    }

    /// The last, partial tree chunk.
    pub fn finish(self) -> Option<Vec<u8>> {
        (!self.buf.is_empty()).then_some(self.buf)
    }
}

/// Decodes every record of one tree chunk.
pub fn decode_records(chunk: &[u8]) -> Result<Vec<TreeRecord>, RepoError> {
    let mut out = Vec::new();
    let mut cursor = std::io::Cursor::new(chunk);
    while (cursor.position() as usize) < chunk.len() {
        let mut de = rmp_serde::Deserializer::new(&mut cursor);
        de.set_max_depth(cairn_events::codec::MAX_DEPTH);
        let rec: TreeRecord = serde::Deserialize::deserialize(&mut de)
            .map_err(|e| RepoError::Format(format!("tree record: {e}")))?;
        out.push(rec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Meta;

    #[test]
    fn chunks_end_on_record_boundaries_and_decode() {
        let mut c = TreeChunker::new();
        let mut chunks = Vec::new();
        let records: Vec<TreeRecord> = (0..20000)
            .map(|i| TreeRecord::File {
                path: format!("dir/file-{i}").into_bytes(),
                meta: Meta {
                    mode: 0o644,
                    mtime: i,
                    ..Meta::default()
                },
            })
            .collect();
        for r in &records {
            chunks.extend(c.push(r));
        }
        chunks.extend(c.finish());
        assert!(chunks.len() > 3, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() <= TREE_MAX));
        let back: Vec<TreeRecord> = chunks
            .iter()
            .flat_map(|c| decode_records(c).unwrap())
            .collect();
        assert_eq!(back, records);
        assert!(decode_records(b"\xc1junk").is_err());
    }
}
