//! Building a backup's chunk list while ingest runs: the distinct chunks in
//! first-seen order, cut into pages, with the RFC 6962 root over their ids.

use crate::format::{ChunkListPage, FORMAT, PAGE_LEN};
use cairn_crypto::merkle::RootBuilder;
use cairn_events::{BackupId, ChunkId};
use std::collections::HashSet;

pub struct ChunkListBuilder {
    backup_id: BackupId,
    seen: HashSet<ChunkId>,
    ids: Vec<ChunkId>,
    new: Vec<u32>,
    root: RootBuilder,
    pages: u32,
}

/// The finished list.
pub struct ChunkListSummary {
    pub count: u64,
    pub pages: u32,
    pub root: [u8; 32],
}

impl ChunkListBuilder {
    pub fn new(backup_id: BackupId) -> Self {
        ChunkListBuilder {
            backup_id,
            seen: HashSet::new(),
            ids: Vec::new(),
            new: Vec::new(),
            root: RootBuilder::new(),
            pages: 0,
        }
    }

    /// Whether this backup already listed `id`.
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.seen.contains(id)
    }

    /// Adds a chunk seen for the first time in this backup; returns a full
    /// page when one is ready to store.
    pub fn add(&mut self, id: ChunkId, is_new: bool) -> Option<ChunkListPage> {
        if !self.seen.insert(id) {
            return None;
        }
        self.root.push(&id.0);
        if is_new {
            self.new.push(self.ids.len() as u32);
        }
        self.ids.push(id);
        (self.ids.len() == PAGE_LEN).then(|| self.take_page())
    }

    fn take_page(&mut self) -> ChunkListPage {
        let page = ChunkListPage {
            format: FORMAT,
            backup_id: self.backup_id.clone(),
            page: self.pages,
            ids: std::mem::take(&mut self.ids),
            new: std::mem::take(&mut self.new),
        };
        self.pages += 1;
        page
    }

    /// The last page (possibly empty, so every backup has page 0) and summary.
    pub fn finish(mut self) -> (ChunkListPage, ChunkListSummary) {
        let last = self.take_page();
        let summary = ChunkListSummary {
            count: self.root.size(),
            pages: self.pages,
            root: self.root.root(),
        };
        (last, summary)
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
