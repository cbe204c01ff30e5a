//! Reading a backup back: manifest, chunk list checked against the Merkle
//! root, then the tree, with every chunk authenticated (AES-GCM) and checked
//! against its keyed id, and every file against its recorded size before it
//! is put in place. Needs only the networks and the keyring: no broker, no database.
//!
//! Chunks are fetched ahead of the writer (a bounded window of tasks), each
//! from the first network that returns it intact, in the repository's order
//! (the CLI orders networks fastest first, `Repository::fastest_first`); a
//! missing, unreachable, slow (`FETCH_TIMEOUT`) or corrupted copy falls
//! through to the next network. Chunks that follow one another in a pack
//! (small files backed up together, restored together) are fetched with one
//! ranged read: a tree of small files costs a read per pack, not per file.

use crate::format::{ChunkRef, Location, Manifest, Meta, TreeRecord};
use crate::{chunklist, layout, pack, tree, RepoError, Repository};
use async_trait::async_trait;
use cairn_crypto::{IdKey, Sealer};
use cairn_events::{BackupId, ChunkId};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Where restored entries go.
#[async_trait]
pub trait Sink: Send {
    async fn dir(&mut self, path: &[u8], meta: &Meta) -> Result<(), RepoError>;
    async fn file_start(&mut self, path: &[u8], meta: &Meta) -> Result<(), RepoError>;
    async fn data(&mut self, bytes: &[u8]) -> Result<(), RepoError>;
    async fn file_end(&mut self) -> Result<(), RepoError>;
    async fn symlink(&mut self, path: &[u8], target: &[u8], meta: &Meta) -> Result<(), RepoError>;
    async fn finish(&mut self) -> Result<(), RepoError>;
}

#[derive(Debug, Default, Clone)]
pub struct RestoreReport {
    pub bytes_written: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Chunks read from each network.
    pub chunks_from: BTreeMap<String, u64>,
}

pub struct Restorer {
    repo: Repository,
    sealer: Arc<Sealer>,
    id_key: Arc<IdKey>,
    window: usize,
    select: Selection,
}

/// The part of a backup's tree a restore writes (or `cairn ls` lists): all
/// of it, or one file or subtree, with or without the path leading to it.
/// Only the chunks of selected files are fetched.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    prefix: Option<Vec<u8>>,
    strip: bool,
}

/// What a selection makes of a path in the tree.
#[derive(Debug, PartialEq)]
enum Wanted {
    /// Selected, written under this path.
    Yes(Vec<u8>),
    /// A directory on the way to the selection.
    Ancestor,
    No,
}

impl Selection {
    /// Everything.
    pub fn all() -> Self {
        Selection::default()
    }

    /// The file or subtree at `path` (as `cairn ls` shows it, e.g.
    /// `data/sub/dir`; leading and trailing slashes ignored), restored
    /// under its full path.
    pub fn under(path: &str) -> Result<Self, RepoError> {
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.is_empty() {
            return Ok(Selection::all());
        }
        if parts.contains(&"..") {
            return Err(RepoError::Target(format!(
                "the path {path:?} may not contain `..`"
            )));
        }
        Ok(Selection {
            prefix: Some(parts.join("/").into_bytes()),
            strip: false,
        })
    }

    /// The selected subtree's content becomes the target's own (`--to-pgdata`
    /// puts `pgdata/*` in the data directory); a selected file keeps its name.
    pub fn stripped(mut self) -> Self {
        self.strip = true;
        self
    }

    pub fn prefix(&self) -> Option<String> {
        self.prefix
            .as_deref()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    fn wanted(&self, path: &[u8]) -> Wanted {
        let Some(prefix) = &self.prefix else {
            return Wanted::Yes(path.to_vec());
        };
        if path == prefix.as_slice() {
            if !self.strip {
                return Wanted::Yes(path.to_vec());
            }
            // The selected directory itself is the target; a selected
            // file is written under its own name.
            return match path.iter().rposition(|b| *b == b'/') {
                Some(i) => Wanted::Yes(path[i + 1..].to_vec()),
                None => Wanted::Yes(path.to_vec()),
            };
        }
        if path.len() > prefix.len() && path.starts_with(prefix) && path[prefix.len()] == b'/' {
            return Wanted::Yes(if self.strip {
                path[prefix.len() + 1..].to_vec()
            } else {
                path.to_vec()
            });
        }
        if prefix.len() > path.len() && prefix.starts_with(path) && prefix[path.len()] == b'/' {
            return Wanted::Ancestor;
        }
        Wanted::No
    }
}

/// One entry of a backup's tree, as `cairn ls` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListEntry {
    pub path: String,
    /// `dir`, `file` or `symlink`.
    pub kind: &'static str,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// One chunk's plaintext and the network it came from, once fetched.
type Fetched = Result<(Vec<u8>, String), RepoError>;
type Fetch = tokio::sync::oneshot::Receiver<Fetched>;

/// Chunks next to each other in one pack, to be fetched with one read.
struct Run {
    pack: Location,
    /// The range of the pack they cover.
    start: u32,
    end: u32,
    /// Their plaintext, in bytes (a pack of well-compressed chunks holds
    /// far more than its size).
    plain: u32,
    /// Each chunk, where it is in the pack, and who waits for it.
    parts: Vec<(ChunkRef, u32, u32, tokio::sync::oneshot::Sender<Fetched>)>,
}

/// Bytes of other chunks a run may read over to reach its next chunk.
const RUN_GAP: u32 = 64 << 10;
/// The longest run read at once, and the most plaintext it may open to:
/// with at most the restore window of runs in flight, memory stays bounded
/// as it is with single chunks.
const RUN_BYTES: u32 = 1 << 20;
const RUN_PLAIN: u32 = 2 << 20;

impl Run {
    /// Whether chunk `offset..offset + len` of `pack` continues this run.
    fn extends(&self, pack: &Location, offset: u32, len: u32, plain: u32) -> bool {
        same_object(&self.pack, pack)
            && offset >= self.end
            && offset - self.end <= RUN_GAP
            && offset + len - self.start <= RUN_BYTES
            && self.plain + plain <= RUN_PLAIN
    }
}

fn same_object(a: &Location, b: &Location) -> bool {
    a.object() == b.object()
}

impl Restorer {
    pub fn new(repo: Repository, sealer: Sealer, id_key: IdKey) -> Self {
        Restorer {
            repo,
            sealer: Arc::new(sealer),
            id_key: Arc::new(id_key),
            window: 16,
            select: Selection::all(),
        }
    }

    /// Restores only `select` from now on.
    pub fn select(mut self, select: Selection) -> Self {
        self.select = select;
        self
    }

    /// Byte ranges (offset, length) of backup `m`'s single file, in the
    /// order given, into `sink` as one stream: only the chunks the ranges
    /// touch are fetched. Returns the bytes written.
    pub async fn read_ranges(
        &self,
        m: &Manifest,
        ranges: &[(u64, u64)],
        sink: &mut dyn Sink,
    ) -> Result<RestoreReport, RepoError> {
        let known = self.verified_chunk_set(m).await?;
        let id_key = self.chunk_key(m)?;
        let backup = &m.backup_id;
        let repo = self.repo_for(m);
        // The file's chunks, each with its offset.
        let mut refs: Vec<(u64, ChunkRef)> = Vec::new();
        let mut files = 0;
        let mut at = 0u64;
        for tref in &m.tree {
            let (records, _) =
                tree_chunk(&repo, &self.sealer, &id_key, &known, backup, tref).await?;
            for rec in records {
                match rec {
                    TreeRecord::File { .. } => files += 1,
                    TreeRecord::Chunks { refs: more } if files == 1 => {
                        for r in more {
                            refs.push((at, r));
                            at += r.len as u64;
                        }
                    }
                    _ => {}
                }
            }
        }
        if files != 1 {
            return Err(RepoError::Target(format!(
                "backup {backup} holds {files} files; a part can be read only of a single-file backup"
            )));
        }
        let mut report = RestoreReport {
            files: 1,
            ..RestoreReport::default()
        };
        for &(start, len) in ranges {
            let end = start + len;
            if end > at {
                return Err(RepoError::Format(format!(
                    "backup {backup}: bytes {start}..{end} lie past the end of its {at}-byte file"
                )));
            }
            let first = refs.partition_point(|(off, r)| off + r.len as u64 <= start);
            for &(off, r) in refs[first..].iter().take_while(|(off, _)| *off < end) {
                let Some(loc) = known.get(&r.id) else {
                    return Err(not_listed(backup, &r.id));
                };
                let (plain, from) = fetch_chunk(&repo, &self.sealer, &id_key, r, *loc).await?;
                *report.chunks_from.entry(from).or_default() += 1;
                let lo = start.saturating_sub(off) as usize;
                let hi = ((end - off) as usize).min(plain.len());
                sink.data(&plain[lo..hi]).await?;
                report.bytes_written += (hi - lo) as u64;
            }
        }
        sink.finish().await?;
        Ok(report)
    }

    /// The entries of backup `m`'s tree that `select` picks, in tree order,
    /// read from the tree chunks alone (no file data is fetched).
    pub async fn list(
        &self,
        m: &Manifest,
        select: &Selection,
    ) -> Result<Vec<ListEntry>, RepoError> {
        let known = self.verified_chunk_set(m).await?;
        let id_key = self.chunk_key(m)?;
        let backup = &m.backup_id;
        let repo = self.repo_for(m);
        let mut out = Vec::new();
        let mut open: Option<ListEntry> = None;
        let text = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
        let entry = |path: &[u8], kind, meta: &Meta| ListEntry {
            path: text(path),
            kind,
            size: 0,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime,
            target: None,
        };
        for tref in &m.tree {
            let (records, _) =
                tree_chunk(&repo, &self.sealer, &id_key, &known, backup, tref).await?;
            for rec in records {
                match rec {
                    TreeRecord::Dir { path, meta } => {
                        if matches!(select.wanted(&path), Wanted::Yes(_)) {
                            out.push(entry(&path, "dir", &meta));
                        }
                    }
                    TreeRecord::Symlink { path, target, meta } => {
                        if matches!(select.wanted(&path), Wanted::Yes(_)) {
                            let mut e = entry(&path, "symlink", &meta);
                            e.target = Some(text(&target));
                            out.push(e);
                        }
                    }
                    TreeRecord::File { path, meta } => {
                        open = matches!(select.wanted(&path), Wanted::Yes(_))
                            .then(|| entry(&path, "file", &meta));
                    }
                    TreeRecord::Chunks { .. } => {}
                    TreeRecord::End { size } => {
                        if let Some(mut e) = open.take() {
                            e.size = size;
                            out.push(e);
                        }
                    }
                }
            }
        }
        if out.is_empty() {
            if let Some(p) = select.prefix() {
                return Err(RepoError::Target(format!(
                    "backup {backup} holds no path {p:?}"
                )));
            }
        }
        Ok(out)
    }

    pub async fn manifest(&self, backup_id: &BackupId) -> Result<Manifest, RepoError> {
        self.repo.manifest(&self.sealer, backup_id).await
    }

    /// Reads the chunk list, checks it against the manifest's root, and
    /// returns where each chunk is.
    pub async fn verified_chunk_set(
        &self,
        m: &Manifest,
    ) -> Result<HashMap<ChunkId, Location>, RepoError> {
        let pages = self.repo.chunk_pages(&m.backup_id, m.chunk_pages).await?;
        let (count, root) = chunklist::root_of_pages(&pages);
        if count != m.chunk_count || root.as_slice() != m.merkle_root.as_slice() {
            return Err(RepoError::MerkleMismatch {
                backup: m.backup_id.clone(),
                detail: format!(
                    "pages list {count} chunks with root {}, manifest says {} chunks with root {}",
                    hex::encode(root),
                    m.chunk_count,
                    hex::encode(&m.merkle_root)
                ),
            });
        }
        let mut out = HashMap::with_capacity(count as usize);
        for p in pages {
            let locs = p.locations().map_err(RepoError::Format)?;
            out.extend(p.ids.into_iter().zip(locs));
        }
        Ok(out)
    }

    /// The key chunk ids of backup `m` are keyed with: its dataset's from
    /// format 4 on, the repository's before.
    fn chunk_key(&self, m: &Manifest) -> Result<Arc<IdKey>, RepoError> {
        if m.format < 4 {
            return Ok(self.id_key.clone());
        }
        let fp: [u8; 16] = m
            .dataset_key
            .as_deref()
            .and_then(|k| hex::decode(k).ok())
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| {
                RepoError::Format(format!(
                    "manifest of backup {} (format {}) names no dataset key",
                    m.backup_id, m.format
                ))
            })?;
        Ok(Arc::new(self.id_key.for_dataset(&m.dataset, &fp)))
    }

    /// The repository as backup `m` is read: packs as shards first when
    /// its packs are erasure-coded.
    fn repo_for(&self, m: &Manifest) -> Repository {
        self.repo
            .clone()
            .shards_first(m.redundancy.erasure().is_some())
    }

    fn spawn_fetch(
        &self,
        repo: &Repository,
        id_key: &Arc<IdKey>,
        r: ChunkRef,
        at: Location,
    ) -> Fetch {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let repo = repo.clone();
        let sealer = self.sealer.clone();
        let id_key = id_key.clone();
        tokio::spawn(async move {
            let _ = tx.send(fetch_chunk(&repo, &sealer, &id_key, r, at).await);
        });
        rx
    }

    /// Fetches a run's range once and hands each chunk to its waiter. A
    /// network whose copy fails any chunk's check is passed over for the
    /// next, as for a single chunk.
    fn spawn_run(&self, repo: &Repository, id_key: &Arc<IdKey>, run: Run) {
        let (repo, sealer, id_key) = (repo.clone(), self.sealer.clone(), id_key.clone());
        tokio::spawn(async move {
            let path = layout::object(&run.pack.object());
            let what = format!(
                "{} chunks at {}..{} of {path}",
                run.parts.len(),
                run.start,
                run.end
            );
            let start = run.start;
            let open = |range: bytes::Bytes| {
                run.parts
                    .iter()
                    .map(|(r, offset, len, _)| {
                        let at = (offset - start) as usize;
                        let sealed = range.get(at..at + *len as usize).ok_or_else(|| {
                            RepoError::Format(format!(
                                "chunk {}: {path} ends before {}",
                                r.id.to_hex(),
                                offset + len
                            ))
                        })?;
                        pack::open_chunk(&sealer, &id_key, &r.id, r.len as usize, sealed)
                    })
                    .collect::<Result<Vec<_>, RepoError>>()
            };
            // A pack is sealed under one data key: the first chunk's header
            // names it for all.
            let range = Some((start as u64, (run.end - start) as u64));
            let fetched = repo
                .fetch_learning(&sealer, &path, range, &what, open)
                .await;
            match fetched {
                Ok((plains, from)) => {
                    for ((_, _, _, tx), plain) in run.parts.into_iter().zip(plains) {
                        let _ = tx.send(Ok((plain, from.clone())));
                    }
                }
                Err(e) => {
                    let errors = match e {
                        RepoError::Unavailable { errors, .. } => errors,
                        e => e.to_string(),
                    };
                    for (r, _, _, tx) in run.parts {
                        let _ = tx.send(Err(RepoError::Unavailable {
                            what: format!(
                                "chunk {} (read with its neighbours in {path})",
                                r.id.to_hex()
                            ),
                            errors: errors.clone(),
                        }));
                    }
                }
            }
        });
    }

    /// Restores backup `m` into `sink`; `progress` receives bytes written.
    ///
    /// The tree is walked ahead of the writer: every step (directory, file
    /// start, data, file end) goes into one queue in tree order, and a data
    /// step's chunk is already being fetched when it is queued, up to
    /// `window` fetches at once across files. A tree of small files keeps
    /// the window full as a tree of large ones does.
    pub async fn restore(
        &self,
        m: &Manifest,
        sink: &mut dyn Sink,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<RestoreReport, RepoError> {
        self.restore_selected(m, sink, progress, &self.select).await
    }

    /// [`Restorer::restore`] of `select` only.
    pub async fn restore_selected(
        &self,
        m: &Manifest,
        sink: &mut dyn Sink,
        progress: &(dyn Fn(u64) + Send + Sync),
        select: &Selection,
    ) -> Result<RestoreReport, RepoError> {
        let known = self.verified_chunk_set(m).await?;
        let id_key = self.chunk_key(m)?;
        let backup = &m.backup_id;
        let repo = self.repo_for(m);
        let mut w = Writer {
            sink,
            report: RestoreReport::default(),
            written_in_file: None,
            progress,
        };
        let mut steps: VecDeque<Step> = VecDeque::new();
        let mut in_flight = 0usize;
        let mut in_file = false;
        // Whether the file being walked is selected (its chunks fetched),
        // and whether anything was.
        let mut file_wanted = false;
        let mut matched = false;
        // Chunks gathered for one read; spawned before the writer may wait
        // for any of them.
        let mut run: Option<Run> = None;
        for tref in &m.tree {
            let (records, from) =
                tree_chunk(&repo, &self.sealer, &id_key, &known, backup, tref).await?;
            *w.report.chunks_from.entry(from).or_default() += 1;
            for rec in records {
                match rec {
                    TreeRecord::Dir { path, meta } => match select.wanted(&path) {
                        Wanted::Yes(p) => {
                            matched = true;
                            // The selected directory itself, when it
                            // becomes the target, is not written again.
                            if !(select.strip && select.prefix.as_deref() == Some(&path[..])) {
                                steps.push_back(Step::Dir(p, meta));
                            }
                        }
                        Wanted::Ancestor if !select.strip => steps.push_back(Step::Dir(path, meta)),
                        Wanted::Ancestor | Wanted::No => {}
                    },
                    TreeRecord::Symlink { path, target, meta } => {
                        if let Wanted::Yes(p) = select.wanted(&path) {
                            matched = true;
                            steps.push_back(Step::Symlink(p, target, meta))
                        }
                    }
                    TreeRecord::File { path, meta } => {
                        in_file = true;
                        file_wanted = false;
                        if let Wanted::Yes(p) = select.wanted(&path) {
                            matched = true;
                            file_wanted = true;
                            steps.push_back(Step::FileStart(p, meta));
                        }
                    }
                    TreeRecord::Chunks { refs } => {
                        if !in_file {
                            return Err(RepoError::Format(format!(
                                "backup {backup}: chunk refs outside a file"
                            )));
                        }
                        if !file_wanted {
                            continue;
                        }
                        for r in refs {
                            let Some(at) = known.get(&r.id) else {
                                return Err(not_listed(backup, &r.id));
                            };
                            let packed = match *at {
                                Location::Packed { offset, len, .. } => Some((offset, len)),
                                Location::Alone(_) => None,
                            };
                            if let (Some(open), Some((offset, len))) = (&mut run, packed) {
                                if open.extends(at, offset, len, r.len) {
                                    let (tx, rx) = tokio::sync::oneshot::channel();
                                    open.end = offset + len;
                                    open.plain += r.len;
                                    open.parts.push((r, offset, len, tx));
                                    steps.push_back(Step::Data(rx, r.len, false));
                                    continue;
                                }
                            }
                            if let Some(done) = run.take() {
                                self.spawn_run(&repo, &id_key, done);
                            }
                            while in_flight >= self.window {
                                in_flight -= w.step(&mut steps, backup).await?;
                            }
                            in_flight += 1;
                            let rx = match packed {
                                Some((offset, len)) => {
                                    let (tx, rx) = tokio::sync::oneshot::channel();
                                    run = Some(Run {
                                        pack: *at,
                                        start: offset,
                                        end: offset + len,
                                        plain: r.len,
                                        parts: vec![(r, offset, len, tx)],
                                    });
                                    rx
                                }
                                None => self.spawn_fetch(&repo, &id_key, r, *at),
                            };
                            // The first chunk of each read stands for it in
                            // the window: once the writer has it, the read
                            // is over.
                            steps.push_back(Step::Data(rx, r.len, true));
                        }
                    }
                    TreeRecord::End { size } => {
                        if !in_file {
                            return Err(RepoError::Format(format!(
                                "backup {backup}: file end outside a file"
                            )));
                        }
                        in_file = false;
                        if file_wanted {
                            steps.push_back(Step::FileEnd(size));
                        }
                    }
                }
                // A tree of empty files or directories queues no fetch:
                // bound the queue by its length too.
                if steps.len() > MAX_QUEUED_STEPS {
                    if let Some(done) = run.take() {
                        self.spawn_run(&repo, &id_key, done);
                    }
                }
                while steps.len() > MAX_QUEUED_STEPS {
                    in_flight -= w.step(&mut steps, backup).await?;
                }
            }
        }
        if in_file {
            return Err(RepoError::Format(format!(
                "backup {backup}: tree ends inside a file"
            )));
        }
        if let Some(done) = run.take() {
            self.spawn_run(&repo, &id_key, done);
        }
        if !matched {
            if let Some(p) = select.prefix() {
                return Err(RepoError::Target(format!(
                    "backup {backup} holds no path {p:?}"
                )));
            }
        }
        while !steps.is_empty() {
            w.step(&mut steps, backup).await?;
        }
        w.sink.finish().await?;
        Ok(w.report)
    }
}

/// Steps queued ahead of the writer besides the fetches in flight.
const MAX_QUEUED_STEPS: usize = 4096;

/// One thing the writer does, in tree order.
enum Step {
    Dir(Vec<u8>, Meta),
    Symlink(Vec<u8>, Vec<u8>, Meta),
    FileStart(Vec<u8>, Meta),
    /// A chunk being fetched, the length the tree records for it, and
    /// whether it is the first of its read (which counts in the window).
    Data(Fetch, u32, bool),
    FileEnd(u64),
}

/// The writing side of a restore.
struct Writer<'a> {
    sink: &'a mut dyn Sink,
    report: RestoreReport,
    written_in_file: Option<u64>,
    progress: &'a (dyn Fn(u64) + Send + Sync),
}

impl Writer<'_> {
    /// Does the oldest queued step; returns how many fetches it consumed.
    async fn step(
        &mut self,
        steps: &mut VecDeque<Step>,
        backup: &BackupId,
    ) -> Result<usize, RepoError> {
        let Some(step) = steps.pop_front() else {
            return Ok(0);
        };
        match step {
            Step::Dir(path, meta) => {
                self.sink.dir(&path, &meta).await?;
                self.report.dirs += 1;
            }
            Step::Symlink(path, target, meta) => {
                self.sink.symlink(&path, &target, &meta).await?;
                self.report.symlinks += 1;
            }
            Step::FileStart(path, meta) => {
                self.sink.file_start(&path, &meta).await?;
                self.written_in_file = Some(0);
                self.report.files += 1;
            }
            Step::Data(h, expected_len, first) => {
                self.data(h, expected_len).await?;
                return Ok(usize::from(first));
            }
            Step::FileEnd(size) => {
                let written = self.written_in_file.take().ok_or_else(|| {
                    RepoError::Format(format!("backup {backup}: file end outside a file"))
                })?;
                if written != size {
                    return Err(RepoError::Format(format!(
                        "backup {backup}: a restored file has {written} bytes where the tree records {size}"
                    )));
                }
                self.sink.file_end().await?;
            }
        }
        Ok(0)
    }

    async fn data(&mut self, h: Fetch, expected_len: u32) -> Result<(), RepoError> {
        let (bytes, from) = h
            .await
            .map_err(|_| RepoError::Format("a fetch task ended without an answer".into()))??;
        if bytes.len() != expected_len as usize {
            return Err(RepoError::Format(format!(
                "a chunk decrypted to {} bytes where the tree records {expected_len}",
                bytes.len()
            )));
        }
        if let Some(n) = self.written_in_file.as_mut() {
            *n += bytes.len() as u64;
        }
        self.sink.data(&bytes).await?;
        self.report.bytes_written += bytes.len() as u64;
        *self.report.chunks_from.entry(from).or_default() += 1;
        (self.progress)(self.report.bytes_written);
        Ok(())
    }
}

/// The records of one of backup `backup`'s tree chunks, and the network
/// it came from: fetched where the verified chunk list `known` places it.
async fn tree_chunk(
    repo: &Repository,
    sealer: &Sealer,
    id_key: &IdKey,
    known: &HashMap<ChunkId, Location>,
    backup: &BackupId,
    tref: &ChunkRef,
) -> Result<(Vec<TreeRecord>, String), RepoError> {
    let Some(at) = known.get(&tref.id) else {
        return Err(not_listed(backup, &tref.id));
    };
    let (bytes, from) = fetch_chunk(repo, sealer, id_key, *tref, *at).await?;
    Ok((tree::decode_records(&bytes)?, from))
}

fn not_listed(backup: &BackupId, id: &ChunkId) -> RepoError {
    RepoError::MerkleMismatch {
        backup: backup.clone(),
        detail: format!(
            "the tree references chunk {id}, which the verified chunk list does not hold"
        ),
    }
}

/// Reads one chunk, from where the chunk list says it is, from the first
/// network holding an intact copy (a pack is read only in the chunk's range).
pub async fn fetch_chunk(
    repo: &Repository,
    sealer: &Sealer,
    id_key: &IdKey,
    r: ChunkRef,
    at: Location,
) -> Result<(Vec<u8>, String), RepoError> {
    let what = format!("chunk {}", r.id.to_hex());
    let open =
        |sealed: bytes::Bytes| pack::open_chunk(sealer, id_key, &r.id, r.len as usize, &sealed);
    let range = match at {
        Location::Alone(_) => None,
        Location::Packed { offset, len, .. } => Some((offset as u64, len as u64)),
    };
    repo.fetch_learning(sealer, &layout::object(&at.object()), range, &what, open)
        .await
}

/// Writes a backup's tree under a directory.
///
/// A file of up to [`SMALL_FILE`] bytes is gathered in memory and written,
/// given its metadata and renamed into place by one blocking task, up to
/// [`PENDING_WRITES`] of them at once beside the restore; a larger one is
/// streamed to its `.cairn-partial` file. Either way a file appears under
/// its name only after the restorer checked its size.
pub struct DirSink {
    root: PathBuf,
    current: Option<OpenFile>,
    dirs: Vec<(PathBuf, Meta)>,
    /// Directories known to exist (made here or found).
    made: HashSet<PathBuf>,
    pending: VecDeque<JoinHandle<Result<(), RepoError>>>,
    chown: bool,
}

/// Files gathered in memory before they are written.
const SMALL_FILE: usize = 1 << 20;
/// Small files being written at once.
const PENDING_WRITES: usize = 16;

struct OpenFile {
    target: PathBuf,
    meta: Meta,
    buf: Vec<u8>,
    /// Set once the file outgrew [`SMALL_FILE`].
    stream: Option<(PathBuf, tokio::fs::File)>,
}

/// Where a file is written before it is whole and checked.
pub(crate) fn partial_of(t: &Path) -> PathBuf {
    let mut partial = t.to_path_buf().into_os_string();
    partial.push(".cairn-partial");
    PathBuf::from(partial)
}

impl DirSink {
    pub fn new(root: &Path) -> Result<Self, RepoError> {
        std::fs::create_dir_all(root)
            .map_err(|e| RepoError::Target(format!("{}: {e}", root.display())))?;
        Ok(DirSink {
            root: root.to_path_buf(),
            current: None,
            dirs: Vec::new(),
            made: HashSet::new(),
            pending: VecDeque::new(),
            // Ownership can only be given away by root.
            chown: std::env::var("USER").map(|u| u == "root").unwrap_or(false) || is_root(),
        })
    }

    fn target(&self, path: &[u8]) -> Result<PathBuf, RepoError> {
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(path));
        let safe = !path.is_empty()
            && p.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe {
            return Err(RepoError::Target(format!(
                "refusing to restore unsafe path {:?}",
                String::from_utf8_lossy(path)
            )));
        }
        Ok(self.root.join(p))
    }

    /// Makes `t`'s parent directory unless it is known to exist.
    async fn parent_of(&mut self, t: &Path) -> Result<(), RepoError> {
        let Some(parent) = t.parent() else {
            return Ok(());
        };
        if self.made.contains(parent) {
            return Ok(());
        }
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| io_err(parent, e))?;
        self.made.insert(parent.to_path_buf());
        Ok(())
    }

    /// Waits for the oldest small-file writes until at most `keep` remain.
    async fn settle(&mut self, keep: usize) -> Result<(), RepoError> {
        while self.pending.len() > keep {
            let h = self.pending.pop_front().expect("non-empty");
            h.await
                .map_err(|e| RepoError::Target(format!("file writer: {e}")))??;
        }
        Ok(())
    }
}

fn apply_meta(
    chown: bool,
    path: &Path,
    meta: &Meta,
    file: Option<&std::fs::File>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if chown {
        std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))?;
    }
    let mode = std::fs::Permissions::from_mode(meta.mode & 0o7777);
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::new(meta.mtime.max(0) as u64, meta.mtime_nsec);
    match file {
        Some(f) => {
            f.set_permissions(mode)?;
            f.set_modified(t)
        }
        None => {
            std::fs::set_permissions(path, mode)?;
            std::fs::File::options()
                .read(true)
                .open(path)?
                .set_modified(t)
        }
    }
}

/// Writes a whole small file: `.cairn-partial`, metadata, rename.
fn write_small(chown: bool, target: &Path, meta: &Meta, bytes: &[u8]) -> Result<(), RepoError> {
    use std::io::Write;
    let partial = partial_of(target);
    // A partial file left by an earlier, failed restore may be read-only.
    let _ = std::fs::remove_file(&partial);
    let mut f = std::fs::File::create(&partial).map_err(|e| io_err(&partial, e))?;
    f.write_all(bytes).map_err(|e| io_err(&partial, e))?;
    // Times last: chown and chmod of an open file keep its mtime.
    apply_meta(chown, &partial, meta, Some(&f)).map_err(|e| io_err(target, e))?;
    drop(f);
    std::fs::rename(&partial, target).map_err(|e| io_err(target, e))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0
        })
        .unwrap_or(false)
}

fn io_err(path: &Path, e: std::io::Error) -> RepoError {
    RepoError::Target(format!("{}: {e}", path.display()))
}

#[async_trait]
impl Sink for DirSink {
    async fn dir(&mut self, path: &[u8], meta: &Meta) -> Result<(), RepoError> {
        let t = self.target(path)?;
        tokio::fs::create_dir_all(&t)
            .await
            .map_err(|e| io_err(&t, e))?;
        self.made.insert(t.clone());
        self.dirs.push((t, *meta));
        Ok(())
    }

    async fn file_start(&mut self, path: &[u8], meta: &Meta) -> Result<(), RepoError> {
        let t = self.target(path)?;
        self.parent_of(&t).await?;
        self.current = Some(OpenFile {
            target: t,
            meta: *meta,
            buf: Vec::new(),
            stream: None,
        });
        Ok(())
    }

    async fn data(&mut self, bytes: &[u8]) -> Result<(), RepoError> {
        use tokio::io::AsyncWriteExt;
        let f = self
            .current
            .as_mut()
            .ok_or_else(|| RepoError::Format("data outside a file".into()))?;
        if f.stream.is_none() && f.buf.len() + bytes.len() <= SMALL_FILE {
            f.buf.extend_from_slice(bytes);
            return Ok(());
        }
        if f.stream.is_none() {
            let partial = partial_of(&f.target);
            let _ = tokio::fs::remove_file(&partial).await;
            let mut out = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| io_err(&partial, e))?;
            out.write_all(&std::mem::take(&mut f.buf))
                .await
                .map_err(|e| io_err(&partial, e))?;
            f.stream = Some((partial, out));
        }
        let (partial, out) = f.stream.as_mut().expect("just opened");
        out.write_all(bytes).await.map_err(|e| io_err(partial, e))
    }

    async fn file_end(&mut self) -> Result<(), RepoError> {
        use tokio::io::AsyncWriteExt;
        let f = self
            .current
            .take()
            .ok_or_else(|| RepoError::Format("end outside a file".into()))?;
        let chown = self.chown;
        match f.stream {
            None => {
                self.settle(PENDING_WRITES - 1).await?;
                self.pending.push_back(tokio::task::spawn_blocking(move || {
                    write_small(chown, &f.target, &f.meta, &f.buf)
                }));
                Ok(())
            }
            Some((partial, mut out)) => {
                out.flush().await.map_err(|e| io_err(&partial, e))?;
                let out = out.into_std().await;
                let (target, meta) = (f.target, f.meta);
                tokio::task::spawn_blocking(move || {
                    apply_meta(chown, &partial, &meta, Some(&out))
                        .map_err(|e| io_err(&target, e))?;
                    drop(out);
                    std::fs::rename(&partial, &target).map_err(|e| io_err(&target, e))
                })
                .await
                .map_err(|e| RepoError::Target(format!("file writer: {e}")))?
            }
        }
    }

    async fn symlink(&mut self, path: &[u8], target: &[u8], meta: &Meta) -> Result<(), RepoError> {
        use std::os::unix::ffi::OsStrExt;
        let t = self.target(path)?;
        self.parent_of(&t).await?;
        let _ = std::fs::remove_file(&t);
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &t)
            .map_err(|e| io_err(&t, e))?;
        if self.chown {
            std::os::unix::fs::lchown(&t, Some(meta.uid), Some(meta.gid))
                .map_err(|e| io_err(&t, e))?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), RepoError> {
        self.settle(0).await?;
        // Directory times last, deepest first: creating children changes them.
        for (d, meta) in self.dirs.iter().rev() {
            apply_meta(self.chown, d, meta, None).map_err(|e| io_err(d, e))?;
        }
        Ok(())
    }
}

/// Writes the one file of a backup (stdin or database dump) to a stream.
pub struct WriterSink<W> {
    out: W,
    files: u32,
}

impl<W> WriterSink<W> {
    pub fn new(out: W) -> Self {
        WriterSink { out, files: 0 }
    }
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[async_trait]
impl<W: tokio::io::AsyncWrite + Unpin + Send> Sink for WriterSink<W> {
    async fn dir(&mut self, _: &[u8], _: &Meta) -> Result<(), RepoError> {
        Ok(())
    }
    async fn file_start(&mut self, _: &[u8], _: &Meta) -> Result<(), RepoError> {
        self.files += 1;
        if self.files > 1 {
            return Err(RepoError::Target(
                "this backup holds more than one file: restore it with --to DIR".into(),
            ));
        }
        Ok(())
    }
    async fn data(&mut self, bytes: &[u8]) -> Result<(), RepoError> {
        use tokio::io::AsyncWriteExt;
        // An I/O error stays one: a reader that went away (broken pipe)
        // is told apart from a failed restore.
        Ok(self.out.write_all(bytes).await?)
    }
    async fn file_end(&mut self) -> Result<(), RepoError> {
        Ok(())
    }
    async fn symlink(&mut self, _: &[u8], _: &[u8], _: &Meta) -> Result<(), RepoError> {
        Ok(())
    }
    async fn finish(&mut self) -> Result<(), RepoError> {
        use tokio::io::AsyncWriteExt;
        Ok(self.out.flush().await?)
    }
}

#[cfg(test)]
mod selection_tests {
    use super::{Selection, Wanted};

    #[test]
    fn a_subtree_is_selected_with_the_directories_leading_to_it() {
        let s = Selection::under("/data/sub/").unwrap();
        assert_eq!(s.wanted(b"data"), Wanted::Ancestor);
        assert_eq!(s.wanted(b"data/sub"), Wanted::Yes(b"data/sub".to_vec()));
        assert_eq!(
            s.wanted(b"data/sub/a/b"),
            Wanted::Yes(b"data/sub/a/b".to_vec())
        );
        assert_eq!(s.wanted(b"data/subway"), Wanted::No);
        assert_eq!(s.wanted(b"data/other"), Wanted::No);
        assert_eq!(s.wanted(b"dat"), Wanted::No);
    }

    #[test]
    fn a_stripped_selection_makes_the_subtree_the_target() {
        let s = Selection::under("pgdata").unwrap().stripped();
        assert_eq!(
            s.wanted(b"pgdata/base/1/112"),
            Wanted::Yes(b"base/1/112".to_vec())
        );
        assert_eq!(
            s.wanted(b"pgdata/PG_VERSION"),
            Wanted::Yes(b"PG_VERSION".to_vec())
        );
        let f = Selection::under("data/sub/f.txt").unwrap().stripped();
        assert_eq!(f.wanted(b"data/sub/f.txt"), Wanted::Yes(b"f.txt".to_vec()));
        assert_eq!(f.wanted(b"data"), Wanted::Ancestor);
    }

    #[test]
    fn everything_is_selected_by_default_and_dotdot_is_refused() {
        assert_eq!(
            Selection::all().wanted(b"x/y"),
            Wanted::Yes(b"x/y".to_vec())
        );
        assert!(Selection::under("/").unwrap().prefix().is_none());
        assert!(Selection::under("a/../b").is_err());
    }
}
