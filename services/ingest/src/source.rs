//! Reading a source on a blocking thread: walking files (with paths, modes,
//! owners, mtimes and symlinks), or one stream (stdin, `pg_dump`), cutting the
//! bytes into content-defined chunks (FastCDC), computing their keyed ids, and
//! writing the tree records that describe them. Everything goes out through a
//! bounded channel, so memory stays bounded whatever the size of the source.
//! A file the parent's files cache vouches for is not read: its chunk
//! references are reused ([`crate::files_cache`]).

use crate::chunker::Chunker;
use crate::files_cache::{self, FileStat, FilesCache, NewCache};
use cairn_crypto::IdKey;
use cairn_events::ChunkId;
use cairn_repo::format::{ChunkRef, Chunking, Meta, TreeRecord, REFS_PER_RECORD};
use cairn_repo::tree::TreeChunker;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the producer hands to the async side.
pub enum Item {
    /// A chunk of file data (`tree == false`) or of the tree itself.
    Chunk {
        id: ChunkId,
        plain: Vec<u8>,
        tree: bool,
    },
    /// The chunks of a file the files cache vouched for, unread: every one is
    /// held on every target network already.
    Reused { refs: Vec<ChunkRef> },
}

/// What to read.
pub enum Input {
    Paths(Vec<PathBuf>),
    /// One stream, stored as a single file called `name`.
    Stream {
        name: String,
        reader: Box<dyn Read + Send>,
        /// Whether the stream is a `pg_dump` custom-format archive to
        /// index as it passes ([`cairn_repo::pgdump`]).
        dump: bool,
    },
    /// A tar stream (`pg_basebackup -Ft -D -`), stored as the tree it holds
    /// under the directory `label`; the members named in `keep` are also
    /// handed back whole in [`Produced::kept`] (small files the source kind
    /// reads, such as `backup_label`).
    Tar {
        label: String,
        reader: Box<dyn Read + Send>,
        keep: &'static [&'static str],
    },
}

/// The most of one kept tar member handed back (a `backup_manifest` lists
/// every file of the cluster: about 150 bytes each).
pub const KEPT_MAX: u64 = 64 << 20;

/// Shared counters, read by the progress reporter.
#[derive(Default)]
pub struct Counters {
    pub bytes_read: AtomicU64,
    /// Estimated total (0 when unknown, e.g. a stream).
    pub bytes_total: AtomicU64,
    pub files: AtomicU64,
    /// Files the files cache vouched for, and their bytes (counted in
    /// `bytes_read` too, though not read).
    pub files_unchanged: AtomicU64,
    pub bytes_unchanged: AtomicU64,
}

/// What the producer reports when the source is exhausted.
pub struct Produced {
    pub tree: Vec<ChunkRef>,
    /// The files cache this backup leaves for the next one.
    pub cache: NewCache,
    /// The content of the tar members an [`Input::Tar`] asked to keep.
    pub kept: std::collections::BTreeMap<String, Vec<u8>>,
    /// Where each table's data is, for a `pg_dump` stream that could be read.
    pub dump_index: Option<cairn_repo::pgdump::DumpIndex>,
}

/// A stream that shows every byte it gives to a [`Scanner`] on the way.
///
/// [`Scanner`]: cairn_repo::pgdump::Scanner
struct Scanned<'a, R> {
    inner: R,
    scanner: &'a mut cairn_repo::pgdump::Scanner,
}

impl<R: Read> Read for Scanned<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.scanner.feed(&buf[..n]);
        Ok(n)
    }
}

/// The files cache as the producer uses it: the parent's entries (none
/// means read every file) and whether to write one for this backup.
#[derive(Default)]
pub struct Caching {
    pub parent: Option<FilesCache>,
    pub record: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
    /// The async side went away (job cancelled); not the source's fault.
    #[error("ingest cancelled")]
    Cancelled,
}

struct Producer<'a> {
    /// Taken while a file is cut (its emit borrows the rest of the producer).
    chunker: Option<Chunker>,
    id_key: &'a IdKey,
    tx: mpsc::Sender<Vec<Item>>,
    batch: Vec<Item>,
    batch_bytes: usize,
    tree: TreeChunker,
    tree_refs: Vec<ChunkRef>,
    counters: Arc<Counters>,
    parent: Option<FilesCache>,
    cache: Option<NewCache>,
}

impl Producer<'_> {
    /// Items go out in batches, so that the async side asks the chunk index
    /// about many small files' chunks at once; a batch closes at
    /// [`BATCH_BYTES`] of plaintext or [`BATCH_ITEMS`] items.
    fn send(&mut self, item: Item) -> Result<(), SourceError> {
        if let Item::Chunk { plain, .. } = &item {
            self.batch_bytes += plain.len();
        }
        self.batch.push(item);
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_ITEMS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SourceError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch_bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        self.tx
            .blocking_send(batch)
            .map_err(|_| SourceError::Cancelled)
    }

    fn record(&mut self, rec: TreeRecord) -> Result<(), SourceError> {
        if let Some(chunk) = self.tree.push(&rec) {
            self.emit_tree(chunk)?;
        }
        Ok(())
    }

    fn emit_tree(&mut self, chunk: Vec<u8>) -> Result<(), SourceError> {
        let id = ChunkId(self.id_key.chunk_id(&chunk));
        self.tree_refs.push(ChunkRef {
            id,
            len: chunk.len() as u32,
        });
        self.send(Item::Chunk {
            id,
            plain: chunk,
            tree: true,
        })
    }

    /// Chunks one stream into `File`…`End` records; returns every chunk
    /// reference, in order.
    fn file(
        &mut self,
        path: Vec<u8>,
        meta: Meta,
        reader: impl Read,
        shown: &str,
    ) -> Result<Vec<ChunkRef>, SourceError> {
        self.record(TreeRecord::File { path, meta })?;
        let mut all = Vec::new();
        let mut refs = Vec::with_capacity(REFS_PER_RECORD);
        let mut size = 0u64;
        let mut chunker = self.chunker.take().expect("one file at a time");
        let cut = chunker.chunks(
            reader,
            |e| SourceError::Io {
                path: shown.to_string(),
                source: e,
            },
            |data| {
                let id = ChunkId(self.id_key.chunk_id(data));
                size += data.len() as u64;
                self.counters
                    .bytes_read
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                let r = ChunkRef {
                    id,
                    len: data.len() as u32,
                };
                refs.push(r);
                all.push(r);
                self.send(Item::Chunk {
                    id,
                    plain: data.to_vec(),
                    tree: false,
                })?;
                if refs.len() == REFS_PER_RECORD {
                    self.record(TreeRecord::Chunks {
                        refs: std::mem::take(&mut refs),
                    })?;
                }
                Ok(())
            },
        );
        self.chunker = Some(chunker);
        cut?;
        if !refs.is_empty() {
            self.record(TreeRecord::Chunks { refs })?;
        }
        self.record(TreeRecord::End { size })?;
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        Ok(all)
    }

    /// The records of an unchanged file, from its cached references: the
    /// same records (and so the same tree chunks) a read would have given.
    fn reuse(
        &mut self,
        path: Vec<u8>,
        meta: Meta,
        size: u64,
        refs: Vec<ChunkRef>,
    ) -> Result<(), SourceError> {
        self.record(TreeRecord::File { path, meta })?;
        for part in refs.chunks(REFS_PER_RECORD) {
            self.record(TreeRecord::Chunks {
                refs: part.to_vec(),
            })?;
        }
        self.record(TreeRecord::End { size })?;
        let c = &self.counters;
        c.files.fetch_add(1, Ordering::Relaxed);
        c.files_unchanged.fetch_add(1, Ordering::Relaxed);
        c.bytes_read.fetch_add(size, Ordering::Relaxed);
        c.bytes_unchanged.fetch_add(size, Ordering::Relaxed);
        self.send(Item::Reused { refs })
    }

    /// A regular file: reused if the parent's cache vouches for it, else
    /// read (and remembered for the next backup if it can vouch for itself).
    fn regular(
        &mut self,
        p: &Path,
        path: Vec<u8>,
        meta: Meta,
        md: &std::fs::Metadata,
    ) -> Result<(), SourceError> {
        let stat = FileStat::of(md);
        let key = self.id_key.path_key(&path);
        let cached = self
            .parent
            .as_ref()
            .and_then(|c| c.get(&key))
            .filter(|c| files_cache::unchanged(&c.stat, &stat))
            .map(|c| c.refs.clone());
        if let Some(refs) = cached {
            if let Some(next) = &mut self.cache {
                next.insert(key, stat, refs.clone());
            }
            // The size restore will check is what the references add up to.
            let size = bytes_of(&refs);
            return self.reuse(path, meta, size, refs);
        }
        let io = |e: std::io::Error| SourceError::Io {
            path: p.display().to_string(),
            source: e,
        };
        let started = std::time::SystemTime::now();
        let f = std::fs::File::open(p).map_err(io)?;
        let refs = self.file(path, meta, &f, &p.display().to_string())?;
        if let Some(next) = &mut self.cache {
            let after = FileStat::of(&f.metadata().map_err(io)?);
            let read = bytes_of(&refs);
            // A file whose content is not as long as its stat says (sysfs,
            // procfs, some FUSE) is read every time.
            if read == stat.size && files_cache::trustworthy(&stat, &after, started) {
                next.insert(key, stat, refs);
            } else if after != stat {
                tracing::warn!(path = %p.display(), "file changed while it was read: backed up as read, read again next time");
            }
        }
        Ok(())
    }

    /// Every member of a tar stream, as tree records under `label`.
    fn tar(
        &mut self,
        label: &str,
        reader: Box<dyn Read + Send>,
        keep: &[&str],
        kept: &mut std::collections::BTreeMap<String, Vec<u8>>,
    ) -> Result<(), SourceError> {
        let io = |what: &str, e: std::io::Error| SourceError::Io {
            path: format!("{label} (tar stream): {what}"),
            source: e,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.record(TreeRecord::Dir {
            path: label.as_bytes().to_vec(),
            meta: Meta {
                mode: 0o40700,
                uid: 0,
                gid: 0,
                mtime: now.as_secs() as i64,
                mtime_nsec: 0,
            },
        })?;
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(|e| io("header", e))? {
            let mut entry = entry.map_err(|e| io("header", e))?;
            let raw = entry.path_bytes().into_owned();
            let name = tar_name(&raw).ok_or_else(|| {
                SourceError::Other(format!(
                    "{label}: unsafe path {:?} in the tar stream",
                    String::from_utf8_lossy(&raw)
                ))
            })?;
            let h = entry.header();
            let kind = h.entry_type();
            let mode = h.mode().map_err(|e| io(&name, e))? & 0o7777;
            let meta = |type_bits: u32| -> Result<Meta, SourceError> {
                Ok(Meta {
                    mode: type_bits | mode,
                    uid: h.uid().map_err(|e| io(&name, e))? as u32,
                    gid: h.gid().map_err(|e| io(&name, e))? as u32,
                    mtime: h.mtime().map_err(|e| io(&name, e))? as i64,
                    mtime_nsec: 0,
                })
            };
            let mut path = label.as_bytes().to_vec();
            if !name.is_empty() {
                path.push(b'/');
                path.extend_from_slice(name.as_bytes());
            }
            if kind.is_dir() {
                if name.is_empty() {
                    continue;
                }
                let meta = meta(0o40000)?;
                self.record(TreeRecord::Dir { path, meta })?;
            } else if kind.is_symlink() {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let meta = meta(0o120000)?;
                self.record(TreeRecord::Symlink { path, target, meta })?;
            } else if kind.is_file() {
                let meta = meta(0o100000)?;
                let size = entry.size();
                if keep.contains(&name.as_str()) && size <= KEPT_MAX {
                    let mut whole = Vec::with_capacity(size as usize);
                    entry.read_to_end(&mut whole).map_err(|e| io(&name, e))?;
                    let shown = format!("{label}/{name}");
                    self.file(path, meta, &whole[..], &shown)?;
                    kept.insert(name, whole);
                } else {
                    let shown = format!("{label}/{name}");
                    self.file(path, meta, &mut entry, &shown)?;
                }
            } else {
                return Err(SourceError::Other(format!(
                    "{label}: {name} is a {kind:?} in the tar stream, which Cairn does not store"
                )));
            }
        }
        Ok(())
    }

    fn walk(&mut self, root: &Path, label: &str) -> Result<(), SourceError> {
        let io = |p: &Path, e: std::io::Error| SourceError::Io {
            path: p.display().to_string(),
            source: e,
        };
        for entry in walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
        {
            let entry = entry.map_err(|e| {
                let p = e
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| root.display().to_string());
                SourceError::Io {
                    path: p,
                    source: e
                        .into_io_error()
                        .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
                }
            })?;
            let p = entry.path();
            let md = entry.metadata().map_err(|e| {
                io(
                    p,
                    e.into_io_error()
                        .unwrap_or_else(|| std::io::Error::other("metadata unavailable")),
                )
            })?;
            let rel = p.strip_prefix(root).unwrap_or(p);
            let mut path = label.as_bytes().to_vec();
            if !rel.as_os_str().is_empty() {
                path.push(b'/');
                path.extend_from_slice(rel.as_os_str().as_bytes());
            }
            let meta = Meta {
                mode: md.mode(),
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
                mtime_nsec: md.mtime_nsec() as u32,
            };
            let ft = md.file_type();
            if ft.is_dir() {
                self.record(TreeRecord::Dir { path, meta })?;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(p).map_err(|e| io(p, e))?;
                self.record(TreeRecord::Symlink {
                    path,
                    target: target.as_os_str().as_bytes().to_vec(),
                    meta,
                })?;
            } else if ft.is_file() {
                self.regular(p, path, meta, &md)?;
            } else {
                tracing::warn!(path = %p.display(), "skipping special file (socket, fifo or device)");
            }
        }
        Ok(())
    }
}

/// Sum of regular file sizes under `paths` (for progress; errors ignored).
fn estimate(paths: &[PathBuf]) -> u64 {
    paths
        .iter()
        .flat_map(|p| walkdir::WalkDir::new(p).follow_links(false))
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Top-level names in the backup: each root's last component, made unique.
pub fn labels(paths: &[PathBuf]) -> Vec<String> {
    let mut used = std::collections::HashSet::new();
    paths
        .iter()
        .map(|p| {
            let base = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "root".to_string());
            let mut name = base.clone();
            let mut n = 2;
            while !used.insert(name.clone()) {
                name = format!("{base}-{n}");
                n += 1;
            }
            name
        })
        .collect()
}

/// A tar member's name as stored: without `./` and trailing `/`; `None`
/// for one that would leave the tree (absolute, or with `..`).
fn tar_name(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => continue,
            ".." => return None,
            p => parts.push(p),
        }
    }
    if text.starts_with('/') {
        return None;
    }
    Some(parts.join("/"))
}

/// How many bytes `refs` hold.
fn bytes_of(refs: &[ChunkRef]) -> u64 {
    refs.iter().map(|r| r.len as u64).sum()
}

/// Plaintext bytes per batch sent to the async side (one chunk may take it
/// past this: a batch holds at most this plus one chunk).
pub const BATCH_BYTES: usize = 1 << 20;
/// Items per batch, whatever their size (unchanged files' references).
pub const BATCH_ITEMS: usize = 256;

/// Reads `input` to the end. Runs on a blocking thread.
pub fn produce(
    input: Input,
    chunking: Chunking,
    id_key: &IdKey,
    tx: mpsc::Sender<Vec<Item>>,
    counters: Arc<Counters>,
    caching: Caching,
) -> Result<Produced, SourceError> {
    let mut p = Producer {
        chunker: Some(Chunker::new(chunking)),
        id_key,
        tx,
        batch: Vec::new(),
        batch_bytes: 0,
        tree: TreeChunker::new(),
        tree_refs: Vec::new(),
        counters,
        parent: caching.parent,
        cache: caching.record.then(NewCache::default),
    };
    let mut kept = std::collections::BTreeMap::new();
    let mut dump_index = None;
    match input {
        Input::Paths(paths) => {
            for root in &paths {
                std::fs::symlink_metadata(root).map_err(|e| SourceError::Io {
                    path: root.display().to_string(),
                    source: e,
                })?;
            }
            p.counters
                .bytes_total
                .store(estimate(&paths), Ordering::Relaxed);
            for (root, label) in paths.iter().zip(labels(&paths)) {
                p.walk(root, &label)?;
            }
        }
        Input::Stream { name, reader, dump } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let meta = Meta {
                mode: 0o100600,
                uid: 0,
                gid: 0,
                mtime: now.as_secs() as i64,
                mtime_nsec: now.subsec_nanos(),
            };
            if dump {
                let mut scanner = cairn_repo::pgdump::Scanner::new();
                let scanned = Scanned {
                    inner: reader,
                    scanner: &mut scanner,
                };
                p.file(name.clone().into_bytes(), meta, scanned, &name)?;
                dump_index = scanner.finish();
                if dump_index.is_none() {
                    tracing::warn!("{name}: not a pg_dump archive Cairn can index; a restore of one table will read the whole dump");
                }
            } else {
                p.file(name.clone().into_bytes(), meta, reader, &name)?;
            }
        }
        Input::Tar {
            label,
            reader,
            keep,
        } => p.tar(&label, reader, keep, &mut kept)?,
    }
    let tree = std::mem::take(&mut p.tree);
    if let Some(last) = tree.finish() {
        p.emit_tree(last)?;
    }
    p.flush()?;
    Ok(Produced {
        tree: p.tree_refs,
        cache: p.cache.unwrap_or_default(),
        kept,
        dump_index,
    })
}

#[cfg(test)]
mod tests {
    use super::tar_name;

    #[test]
    fn tar_names_stay_inside_the_tree() {
        assert_eq!(
            tar_name(b"./pg_wal/archive_status/").as_deref(),
            Some("pg_wal/archive_status")
        );
        assert_eq!(tar_name(b"base/1/112").as_deref(), Some("base/1/112"));
        assert_eq!(tar_name(b"./").as_deref(), Some(""));
        assert_eq!(tar_name(b"../etc/passwd"), None);
        assert_eq!(tar_name(b"a/../../b"), None);
        assert_eq!(tar_name(b"/etc/passwd"), None);
    }
}
