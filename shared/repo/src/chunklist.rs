//! Building a backup's chunk list while ingest runs: the distinct chunks in
//! first-seen order, cut into pages, with the RFC 6962 root over their ids
//! and each chunk's location.
//!
//! A chunk already in the repository is added with its location; a new one
//! is added without, and located once it is sealed alone or the pack it goes
//! into is formed. A page is handed out only when it is full and every chunk
//! on it is located.

use crate::format::{ChunkListPage, Location, FORMAT, NOT_PACKED, PAGE_LEN};
use cairn_crypto::merkle::RootBuilder;
use cairn_events::{BackupId, ChunkId, PackId};
use std::collections::{HashMap, HashSet, VecDeque};

pub struct ChunkListBuilder {
    backup_id: BackupId,
    seen: HashSet<ChunkId>,
    root: RootBuilder,
    /// Pages not handed out yet; the first is page `taken`.
    drafts: VecDeque<Draft>,
    taken: u32,
    /// New chunks waiting for a location: page and index in it.
    pending: HashMap<ChunkId, (u32, usize)>,
}

#[derive(Default)]
struct Draft {
    ids: Vec<ChunkId>,
    new: Vec<u32>,
    locs: Vec<Option<Location>>,
    unlocated: usize,
}

/// The finished list.
pub struct ChunkListSummary {
    pub count: u64,
    pub pages: u32,
    pub root: [u8; 32],
}

/// A new chunk was located out of the order it was added in, or the list
/// was finished with chunks still unlocated: a bug in the caller.
#[derive(Debug, thiserror::Error)]
#[error("chunk list: {0}")]
pub struct ListError(String);

impl ChunkListBuilder {
    pub fn new(backup_id: BackupId) -> Self {
        ChunkListBuilder {
            backup_id,
            seen: HashSet::new(),
            root: RootBuilder::new(),
            drafts: VecDeque::new(),
            taken: 0,
            pending: HashMap::new(),
        }
    }

    /// Whether this backup already listed `id`.
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.seen.contains(id)
    }

    /// Adds a chunk seen for the first time in this backup: one the
    /// repository holds at `known`, or (`None`) a new one, to be located.
    /// Returns false (and does nothing) if it was listed before.
    pub fn add(&mut self, id: ChunkId, known: Option<Location>) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.root.push(&id.0);
        if self.drafts.back().is_none_or(|d| d.ids.len() == PAGE_LEN) {
            self.drafts.push_back(Draft::default());
        }
        let page = self.taken + self.drafts.len() as u32 - 1;
        let d = self.drafts.back_mut().expect("just pushed");
        if known.is_none() {
            d.new.push(d.ids.len() as u32);
            d.unlocated += 1;
            self.pending.insert(id, (page, d.ids.len()));
        }
        d.ids.push(id);
        d.locs.push(known);
        true
    }

    /// Locates new chunk `id`.
    pub fn locate(&mut self, id: ChunkId, loc: Location) -> Result<(), ListError> {
        let Some((page, i)) = self.pending.remove(&id) else {
            return Err(ListError(format!(
                "chunk {id} located but it is not waiting for a location"
            )));
        };
        let d = &mut self.drafts[(page - self.taken) as usize];
        d.locs[i] = Some(loc);
        d.unlocated -= 1;
        Ok(())
    }

    /// New chunks still waiting for a location.
    pub fn unlocated(&self) -> usize {
        self.pending.len()
    }

    /// Full pages whose chunks are all located, in order.
    pub fn ready(&mut self) -> Vec<ChunkListPage> {
        let mut out = Vec::new();
        while self
            .drafts
            .front()
            .is_some_and(|d| d.ids.len() == PAGE_LEN && d.unlocated == 0)
        {
            let d = self.drafts.pop_front().expect("checked");
            out.push(self.page(d));
        }
        out
    }

    fn page(&mut self, d: Draft) -> ChunkListPage {
        let mut packs = Vec::new();
        let mut index: HashMap<PackId, u32> = HashMap::new();
        let n = d.ids.len();
        let (mut pack_of, mut offsets, mut lens) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for loc in d.locs {
            match loc.expect("pages are taken once located") {
                Location::Alone(_) => {
                    pack_of.push(NOT_PACKED);
                    offsets.push(0);
                    lens.push(0);
                }
                Location::Packed { pack, offset, len } => {
                    let i = *index.entry(pack).or_insert_with(|| {
                        packs.push(pack);
                        packs.len() as u32 - 1
                    });
                    pack_of.push(i);
                    offsets.push(offset);
                    lens.push(len);
                }
            }
        }
        let page = ChunkListPage {
            format: FORMAT,
            backup_id: self.backup_id.clone(),
            page: self.taken,
            ids: d.ids,
            new: d.new,
            packs,
            pack_of,
            offsets,
            lens,
        };
        self.taken += 1;
        page
    }

    /// Every page not handed out yet (the last possibly empty, so that every
    /// backup has page 0) and the summary. Every new chunk must be located.
    pub fn finish(mut self) -> Result<(Vec<ChunkListPage>, ChunkListSummary), ListError> {
        if let Some(id) = self.pending.keys().next() {
            return Err(ListError(format!(
                "finished with {} chunks unlocated (first {id})",
                self.pending.len()
            )));
        }
        if self.drafts.is_empty() {
            self.drafts.push_back(Draft::default());
        }
        let mut pages = Vec::new();
        while let Some(d) = self.drafts.pop_front() {
            pages.push(self.page(d));
        }
        let summary = ChunkListSummary {
            count: self.root.size(),
            pages: self.taken,
            root: self.root.root(),
        };
        Ok((pages, summary))
    }
}

/// Recomputes the root over pages read back, checking page numbers and order.
pub fn root_of_pages<'a>(pages: impl IntoIterator<Item = &'a ChunkListPage>) -> (u64, [u8; 32]) {
    let mut root = RootBuilder::new();
    for p in pages {
        for id in &p.ids {
            root.push(&id.0);
        }
    }
    (root.size(), root.root())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> ChunkId {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        ChunkId(b)
    }

    #[test]
    fn pages_wait_for_their_new_chunks_and_carry_every_location() {
        let mut l = ChunkListBuilder::new(BackupId::parse("b").unwrap());
        let pack = PackId([9; 32]);
        let old = Location::Alone(id(0));
        assert!(l.add(id(0), Some(old)));
        assert!(!l.add(id(0), None), "listed once");
        for n in 1..PAGE_LEN as u32 + 10 {
            assert!(l.add(id(n), None));
        }
        assert!(l.ready().is_empty(), "page 0 is full but unlocated");
        for n in 1..PAGE_LEN as u32 {
            let loc = Location::Packed {
                pack,
                offset: n * 100,
                len: 100,
            };
            l.locate(id(n), loc).unwrap();
        }
        let pages = l.ready();
        assert_eq!(pages.len(), 1);
        let p = &pages[0];
        assert_eq!(
            (p.page, p.ids.len(), p.new.len()),
            (0, PAGE_LEN, PAGE_LEN - 1)
        );
        assert_eq!(p.packs, vec![pack]);
        let locs = p.locations().unwrap();
        assert_eq!(locs[0], old);
        assert_eq!(
            locs[5],
            Location::Packed {
                pack,
                offset: 500,
                len: 100
            }
        );
        // a chunk not waiting cannot be located, and finishing with chunks
        // unlocated is refused
        assert!(l.locate(id(5), old).is_err());
        assert!(l.locate(id(0), old).is_err());
        l.locate(id(PAGE_LEN as u32 + 3), old).unwrap();
        let mut l2 = ChunkListBuilder::new(BackupId::parse("c").unwrap());
        l2.add(id(1), None);
        assert!(l2.finish().is_err());
        let (rest, summary) = ChunkListBuilder::new(BackupId::parse("d").unwrap())
            .finish()
            .unwrap();
        assert_eq!((rest.len(), summary.pages, summary.count), (1, 1, 0));
    }

    #[test]
    fn a_page_whose_locations_do_not_add_up_is_refused_by_name() {
        let mut l = ChunkListBuilder::new(BackupId::parse("b").unwrap());
        l.add(id(1), Some(Location::Alone(id(1))));
        let (mut pages, _) = l.finish().unwrap();
        let mut p = pages.remove(0);
        p.lens.clear();
        assert!(p.locations().unwrap_err().contains("page 0 of backup b"));
        p.lens = vec![0];
        p.pack_of = vec![3];
        assert!(p.locations().unwrap_err().contains("names pack 3"));
        p.format = 1;
        assert_eq!(p.locations().unwrap(), vec![Location::Alone(id(1))]);
    }
}
