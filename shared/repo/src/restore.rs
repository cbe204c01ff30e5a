//! Reading a backup back: manifest, chunk list checked against the Merkle
//! root, then the tree, with every chunk authenticated (AES-GCM) and checked
//! against its keyed id, and every file against its recorded size before it
//! is put in place. Needs only the networks and the keyring: no broker, no database.
//!
//! Chunks are fetched ahead of the writer (a bounded window of tasks), each
//! from the first network that returns it intact, in the repository's order
//! (the CLI orders networks fastest first, `Repository::fastest_first`); a
//! missing, unreachable, slow (`FETCH_TIMEOUT`) or corrupted copy falls
//! through to the next network.

use crate::format::{ChunkRef, Manifest, Meta, TreeRecord};
use crate::{chunklist, decompress, layout, tree, RepoError, Repository};
use async_trait::async_trait;
use cairn_crypto::{IdKey, ObjectKind, Sealer};
use cairn_events::{BackupId, ChunkId, ObjectKey};
use std::collections::{BTreeMap, HashSet, VecDeque};
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
}

type Fetch = JoinHandle<Result<(Vec<u8>, String), RepoError>>;

impl Restorer {
    pub fn new(repo: Repository, sealer: Sealer, id_key: IdKey) -> Self {
        Restorer {
            repo,
            sealer: Arc::new(sealer),
            id_key: Arc::new(id_key),
            window: 16,
        }
    }

    pub async fn manifest(&self, backup_id: &BackupId) -> Result<Manifest, RepoError> {
        self.repo.manifest(&self.sealer, backup_id).await
    }

    /// Reads the chunk list and checks it against the manifest's root.
    pub async fn verified_chunk_set(&self, m: &Manifest) -> Result<HashSet<ChunkId>, RepoError> {
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
        Ok(pages.into_iter().flat_map(|p| p.ids).collect())
    }

    fn spawn_fetch(&self, r: ChunkRef) -> Fetch {
        let repo = self.repo.clone();
        let sealer = self.sealer.clone();
        let id_key = self.id_key.clone();
        tokio::spawn(async move { fetch_chunk(&repo, &sealer, &id_key, r).await })
    }

    /// Restores backup `m` into `sink`; `progress` receives bytes written.
    pub async fn restore(
        &self,
        m: &Manifest,
        sink: &mut dyn Sink,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<RestoreReport, RepoError> {
        let known = self.verified_chunk_set(m).await?;
        let mut report = RestoreReport::default();
        let mut queue: VecDeque<(Fetch, u32)> = VecDeque::new();
        let mut written_in_file: Option<u64> = None;
        let backup = &m.backup_id;
        for tref in &m.tree {
            if !known.contains(&tref.id) {
                return Err(not_listed(backup, &tref.id));
            }
            let (bytes, from) = fetch_chunk(&self.repo, &self.sealer, &self.id_key, *tref).await?;
            *report.chunks_from.entry(from).or_default() += 1;
            for rec in tree::decode_records(&bytes)? {
                match rec {
                    TreeRecord::Dir { path, meta } => {
                        sink.dir(&path, &meta).await?;
                        report.dirs += 1;
                    }
                    TreeRecord::Symlink { path, target, meta } => {
                        sink.symlink(&path, &target, &meta).await?;
                        report.symlinks += 1;
                    }
                    TreeRecord::File { path, meta } => {
                        sink.file_start(&path, &meta).await?;
                        written_in_file = Some(0);
                        report.files += 1;
                    }
                    TreeRecord::Chunks { refs } => {
                        if written_in_file.is_none() {
                            return Err(RepoError::Format(format!(
                                "backup {backup}: chunk refs outside a file"
                            )));
                        }
                        for r in refs {
                            if !known.contains(&r.id) {
                                return Err(not_listed(backup, &r.id));
                            }
                            if queue.len() >= self.window {
                                let (h, n) = queue.pop_front().expect("non-empty");
                                self.write(h, n, sink, &mut written_in_file, &mut report, progress)
                                    .await?;
                            }
                            queue.push_back((self.spawn_fetch(r), r.len));
                        }
                    }
                    TreeRecord::End { size } => {
                        while let Some((h, n)) = queue.pop_front() {
                            self.write(h, n, sink, &mut written_in_file, &mut report, progress)
                                .await?;
                        }
                        let written = written_in_file.take().ok_or_else(|| {
                            RepoError::Format(format!("backup {backup}: file end outside a file"))
                        })?;
                        if written != size {
                            return Err(RepoError::Format(format!(
                                "backup {backup}: a restored file has {written} bytes where the tree records {size}"
                            )));
                        }
                        sink.file_end().await?;
                    }
                }
            }
        }
        if written_in_file.is_some() {
            return Err(RepoError::Format(format!(
                "backup {backup}: tree ends inside a file"
            )));
        }
        sink.finish().await?;
        Ok(report)
    }

    async fn write(
        &self,
        h: Fetch,
        expected_len: u32,
        sink: &mut dyn Sink,
        written_in_file: &mut Option<u64>,
        report: &mut RestoreReport,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RepoError> {
        let (bytes, from) = h
            .await
            .map_err(|e| RepoError::Format(format!("fetch task: {e}")))??;
        if bytes.len() != expected_len as usize {
            return Err(RepoError::Format(format!(
                "a chunk decrypted to {} bytes where the tree records {expected_len}",
                bytes.len()
            )));
        }
        if let Some(n) = written_in_file.as_mut() {
            *n += bytes.len() as u64;
        }
        sink.data(&bytes).await?;
        report.bytes_written += bytes.len() as u64;
        *report.chunks_from.entry(from).or_default() += 1;
        progress(report.bytes_written);
        Ok(())
    }
}

fn not_listed(backup: &BackupId, id: &ChunkId) -> RepoError {
    RepoError::MerkleMismatch {
        backup: backup.clone(),
        detail: format!(
            "the tree references chunk {id}, which the verified chunk list does not hold"
        ),
    }
}

/// Reads one chunk from the first network holding an intact copy.
pub async fn fetch_chunk(
    repo: &Repository,
    sealer: &Sealer,
    id_key: &IdKey,
    r: ChunkRef,
) -> Result<(Vec<u8>, String), RepoError> {
    let key = ObjectKey::Chunk { id: r.id };
    let what = layout::describe(&key);
    repo.fetch(&layout::object(&key), &what, |sealed| {
        let o = sealer.open(&what, &r.id.0, &sealed)?;
        if o.kind != ObjectKind::Chunk {
            return Err(RepoError::Format(format!("{what}: sealed as a manifest")));
        }
        let plain = decompress(&what, o.compressed, o.payload, r.len as usize)?;
        if id_key.chunk_id(&plain) != r.id.0 {
            return Err(RepoError::Format(format!(
                "{what}: content does not match its id"
            )));
        }
        Ok(plain)
    })
    .await
}

/// Writes a backup's tree under a directory.
pub struct DirSink {
    root: std::path::PathBuf,
    current: Option<(
        std::path::PathBuf,
        std::path::PathBuf,
        tokio::io::BufWriter<tokio::fs::File>,
        Meta,
    )>,
    dirs: Vec<(std::path::PathBuf, Meta)>,
    chown: bool,
}

impl DirSink {
    pub fn new(root: &std::path::Path) -> Result<Self, RepoError> {
        std::fs::create_dir_all(root)
            .map_err(|e| RepoError::Target(format!("{}: {e}", root.display())))?;
        Ok(DirSink {
            root: root.to_path_buf(),
            current: None,
            dirs: Vec::new(),
            // Ownership can only be given away by root.
            chown: std::env::var("USER").map(|u| u == "root").unwrap_or(false) || is_root(),
        })
    }

    fn target(&self, path: &[u8]) -> Result<std::path::PathBuf, RepoError> {
        use std::os::unix::ffi::OsStrExt;
        let p = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
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

    fn apply_meta(&self, path: &std::path::Path, meta: &Meta, follow: bool) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if self.chown {
            std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))?;
        }
        if follow {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode & 0o7777))?;
            let t = std::time::UNIX_EPOCH
                + std::time::Duration::new(meta.mtime.max(0) as u64, meta.mtime_nsec);
            let f = std::fs::File::options().read(true).open(path)?;
            f.set_modified(t)?;
        }
        Ok(())
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0
        })
        .unwrap_or(false)
}

fn io_err(path: &std::path::Path, e: std::io::Error) -> RepoError {
    RepoError::Target(format!("{}: {e}", path.display()))
}

#[async_trait]
impl Sink for DirSink {
    async fn dir(&mut self, path: &[u8], meta: &Meta) -> Result<(), RepoError> {
        let t = self.target(path)?;
        tokio::fs::create_dir_all(&t)
            .await
            .map_err(|e| io_err(&t, e))?;
        self.dirs.push((t, *meta));
        Ok(())
    }

    async fn file_start(&mut self, path: &[u8], meta: &Meta) -> Result<(), RepoError> {
        let t = self.target(path)?;
        if let Some(parent) = t.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_err(parent, e))?;
        }
        let mut partial = t.clone().into_os_string();
        partial.push(".cairn-partial");
        let partial = std::path::PathBuf::from(partial);
        let f = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| io_err(&partial, e))?;
        self.current = Some((
            t,
            partial,
            tokio::io::BufWriter::with_capacity(1 << 20, f),
            *meta,
        ));
        Ok(())
    }

    async fn data(&mut self, bytes: &[u8]) -> Result<(), RepoError> {
        use tokio::io::AsyncWriteExt;
        let (t, _, w, _) = self
            .current
            .as_mut()
            .ok_or_else(|| RepoError::Format("data outside a file".into()))?;
        w.write_all(bytes).await.map_err(|e| io_err(t, e))
    }

    async fn file_end(&mut self) -> Result<(), RepoError> {
        use tokio::io::AsyncWriteExt;
        let (t, partial, mut w, meta) = self
            .current
            .take()
            .ok_or_else(|| RepoError::Format("end outside a file".into()))?;
        w.flush().await.map_err(|e| io_err(&t, e))?;
        drop(w);
        tokio::fs::rename(&partial, &t)
            .await
            .map_err(|e| io_err(&t, e))?;
        self.apply_meta(&t, &meta, true).map_err(|e| io_err(&t, e))
    }

    async fn symlink(&mut self, path: &[u8], target: &[u8], meta: &Meta) -> Result<(), RepoError> {
        use std::os::unix::ffi::OsStrExt;
        let t = self.target(path)?;
        if let Some(parent) = t.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_err(parent, e))?;
        }
        let _ = std::fs::remove_file(&t);
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &t)
            .map_err(|e| io_err(&t, e))?;
        self.apply_meta(&t, meta, false).map_err(|e| io_err(&t, e))
    }

    async fn finish(&mut self) -> Result<(), RepoError> {
        // Directory times last, deepest first: creating children changes them.
        for (d, meta) in self.dirs.iter().rev() {
            self.apply_meta(d, meta, true).map_err(|e| io_err(d, e))?;
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
