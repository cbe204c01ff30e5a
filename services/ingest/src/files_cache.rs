//! The files cache (restic's and borg's): what ingest knew of each regular
//! file at the dataset's last backup on this host, so that a file whose size,
//! mtime, ctime and inode are unchanged is not read, cut and hashed again;
//! its chunk references are reused as they are.
//!
//! * One cache file per backup, `<dir>/<repo id>/<dataset, hex>/<backup
//!   id>.cache`, written when the backup's ingest ends. The parent of a new
//!   backup is the newest backup of the dataset that ended `completed` and
//!   has a cache file here; anything else (another host's backup, a failed
//!   one, a corrupt file) means no parent and a full read.
//! * It holds no file names and no file contents: entries are filed under a
//!   keyed hash of the path (`IdKey::path_key`), and chunk ids are keyed too.
//! * Trust is earned twice. A file enters the cache only if it did not change
//!   while it was read and was last changed comfortably before (a later
//!   change in the same timestamp tick would leave mtime and ctime as they
//!   were). A parent entry is used only if every chunk it names is held,
//!   uncondemned, on every target network ([`FilesCache::retain_known`],
//!   asked in batches); otherwise the file is read again. And a file is
//!   cached only if what was read of it is as long as its stat says (sysfs
//!   and procfs files are not), so a reused entry's chunks add up to the
//!   size the tree records.
//! * Memory: the parent's entries are held while the backup runs, about
//!   100 bytes per file plus 36 per chunk reference (borg holds its files
//!   cache the same way); checking them costs one batch of ids at a time.

use cairn_events::{BackupId, ChunkId};
use cairn_repo::format::ChunkRef;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The cache file's own format number; another one is ignored (full read).
pub const FORMAT: u32 = 1;

/// Cache files kept per dataset besides the newest (a parent still in use by
/// a backup that has not completed yet, or a failed backup's successor).
const KEEP: usize = 3;

/// What decides whether a file is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub ctime: i64,
    pub ctime_nsec: u32,
    pub ino: u64,
}

impl FileStat {
    pub fn of(md: &std::fs::Metadata) -> Self {
        FileStat {
            size: md.len(),
            mtime: md.mtime(),
            mtime_nsec: md.mtime_nsec() as u32,
            ctime: md.ctime(),
            ctime_nsec: md.ctime_nsec() as u32,
            ino: md.ino(),
        }
    }

    fn last_change(&self) -> SystemTime {
        let at = |s: i64, ns: u32| {
            if s >= 0 {
                UNIX_EPOCH + Duration::new(s as u64, ns)
            } else {
                UNIX_EPOCH
            }
        };
        at(self.mtime, self.mtime_nsec).max(at(self.ctime, self.ctime_nsec))
    }
}

/// A cached file may be reused only if nothing that restic or borg look at
/// has changed: size, mtime, ctime (any write or metadata change, also one
/// that puts mtime back) and inode (a file replaced by another).
pub fn unchanged(cached: &FileStat, now: &FileStat) -> bool {
    cached == now
}

/// Whether what was read of a file can vouch for it next time: it did not
/// change while it was read (`before` and `after` are the stats around the
/// read), and its last change lies far enough before `read_started` that a
/// change after the read gets a different timestamp. Filesystems that keep
/// whole seconds only (both nanosecond fields zero) need two seconds of
/// distance; the others a tick of the kernel's coarse clock, with margin.
pub fn trustworthy(before: &FileStat, after: &FileStat, read_started: SystemTime) -> bool {
    if before != after {
        return false;
    }
    let margin = if before.mtime_nsec == 0 && before.ctime_nsec == 0 {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(100)
    };
    before.last_change() + margin <= read_started
}

/// One file as cached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cached {
    pub stat: FileStat,
    pub refs: Vec<ChunkRef>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    #[serde(with = "serde_bytes")]
    key: Vec<u8>,
    #[serde(flatten)]
    file: Cached,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    backup_id: BackupId,
    entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("files cache {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("files cache {path}: {reason}")]
    Format { path: String, reason: String },
}

/// A parent backup's cache, as loaded.
#[derive(Debug, Default)]
pub struct FilesCache {
    pub backup_id: Option<BackupId>,
    entries: HashMap<[u8; 32], Cached>,
}

impl FilesCache {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<&Cached> {
        self.entries.get(key)
    }

    /// The entries' keys in groups whose chunk references number about
    /// `ids` (a group holds at least one entry), for checking in batches.
    pub fn batches(&self, ids: usize) -> Vec<Vec<[u8; 32]>> {
        let mut out = Vec::new();
        let (mut group, mut n) = (Vec::new(), 0);
        for (k, c) in &self.entries {
            if n > 0 && n + c.refs.len() > ids {
                out.push(std::mem::take(&mut group));
                n = 0;
            }
            group.push(*k);
            n += c.refs.len();
        }
        if !group.is_empty() {
            out.push(group);
        }
        out
    }

    /// The distinct chunk ids the entries `keys` name.
    pub fn chunk_ids_of(&self, keys: &[[u8; 32]]) -> Vec<ChunkId> {
        let set: HashSet<ChunkId> = keys
            .iter()
            .filter_map(|k| self.entries.get(k))
            .flat_map(|c| c.refs.iter().map(|r| r.id))
            .collect();
        set.into_iter().collect()
    }

    /// Drops each of the entries `keys` that names a chunk not in `usable`
    /// (held, not condemned, on every target network); returns how many
    /// were dropped.
    pub fn retain_known(&mut self, keys: &[[u8; 32]], usable: &HashSet<ChunkId>) -> usize {
        let mut dropped = 0;
        for k in keys {
            let keep = self
                .entries
                .get(k)
                .is_some_and(|c| c.refs.iter().all(|r| usable.contains(&r.id)));
            if !keep && self.entries.remove(k).is_some() {
                dropped += 1;
            }
        }
        dropped
    }

    fn decode(bytes: &[u8], path: &Path) -> Result<Self, CacheError> {
        let format = |reason: String| CacheError::Format {
            path: path.display().to_string(),
            reason,
        };
        // body ‖ BLAKE3(body): a torn or damaged file is refused, not trusted.
        if bytes.len() < 32 {
            return Err(format("too short".into()));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err(format("checksum mismatch (torn or damaged)".into()));
        }
        let file: CacheFile =
            cairn_events::codec::from_msgpack(body).map_err(|e| format(e.to_string()))?;
        if file.format != FORMAT {
            return Err(format(format!(
                "format {} (this version reads {FORMAT})",
                file.format
            )));
        }
        let mut entries = HashMap::with_capacity(file.entries.len());
        for e in file.entries {
            let key = <[u8; 32]>::try_from(e.key.as_slice())
                .map_err(|_| format("an entry key is not 32 bytes".into()))?;
            entries.insert(key, e.file);
        }
        Ok(FilesCache {
            backup_id: Some(file.backup_id),
            entries,
        })
    }

    /// Reads the cache at `path`.
    pub fn load(path: &Path) -> Result<Self, CacheError> {
        let bytes = std::fs::read(path).map_err(|e| CacheError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::decode(&bytes, path)
    }
}

/// What a backup learns of its files, to be written as its cache.
#[derive(Debug, Default)]
pub struct NewCache {
    entries: Vec<Entry>,
}

impl NewCache {
    pub fn insert(&mut self, key: [u8; 32], stat: FileStat, refs: Vec<ChunkRef>) {
        self.entries.push(Entry {
            key: key.to_vec(),
            file: Cached { stat, refs },
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn encode(self, backup_id: &BackupId) -> Vec<u8> {
        let file = CacheFile {
            format: FORMAT,
            backup_id: backup_id.clone(),
            entries: self.entries,
        };
        let mut body = rmp_serde::to_vec_named(&file).expect("files cache serializes");
        let sum = *blake3::hash(&body).as_bytes();
        body.extend_from_slice(&sum);
        body
    }
}

/// Where the cache files of one repository live on this host.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// `root` (`[ingest] files_cache_dir`) holds one directory per repository.
    pub fn new(root: impl Into<PathBuf>, repo_id: &str) -> Self {
        Store {
            root: root.into().join(repo_id),
        }
    }

    /// Removes every cache file of `dataset` on this host (`cairn shred`):
    /// they hold keyed hashes of its paths and chunk ids. Returns how many.
    pub fn forget_dataset(&self, dataset: &str) -> std::io::Result<u64> {
        let dir = self.dataset_dir(dataset);
        let n = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.count() as u64,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        std::fs::remove_dir_all(&dir)?;
        Ok(n)
    }

    fn dataset_dir(&self, dataset: &str) -> PathBuf {
        // Hex: a dataset name may hold any character, '/' included.
        self.root.join(hex::encode(dataset.as_bytes()))
    }

    fn file(&self, dataset: &str, backup_id: &BackupId) -> PathBuf {
        self.dataset_dir(dataset).join(self.file_name(backup_id))
    }

    /// The cache of the first of `candidates` (newest completed backups of
    /// the dataset, newest first) that has one here. A cache that cannot be
    /// read is reported and skipped: it costs a full read, nothing else.
    pub fn parent(&self, dataset: &str, candidates: &[BackupId]) -> Option<FilesCache> {
        for id in candidates {
            let path = self.file(dataset, id);
            if !path.exists() {
                continue;
            }
            match FilesCache::load(&path) {
                Ok(c) if c.backup_id.as_ref() == Some(id) => return Some(c),
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "files cache names another backup; ignored")
                }
                Err(e) => tracing::warn!(error = %e, "files cache ignored: every file is read"),
            }
        }
        None
    }

    /// Writes `backup_id`'s cache (atomically, owner-only) and removes all
    /// but the newest few of the dataset's older ones, never `keep`.
    pub fn save(
        &self,
        dataset: &str,
        backup_id: &BackupId,
        cache: NewCache,
        keep: Option<&BackupId>,
    ) -> Result<PathBuf, CacheError> {
        let dir = self.dataset_dir(dataset);
        let io = |p: &Path, e: std::io::Error| CacheError::Io {
            path: p.display().to_string(),
            source: e,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io(&dir, e))?;
        let path = self.file(dataset, backup_id);
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| io(&dir, e))?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io(tmp.path(), e))?;
        tmp.write_all(&cache.encode(backup_id))
            .map_err(|e| io(tmp.path(), e))?;
        tmp.persist(&path).map_err(|e| io(&path, e.error))?;
        self.prune(&dir, &path, keep);
        Ok(path)
    }

    fn prune(&self, dir: &Path, newest: &Path, keep: Option<&BackupId>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let keep = keep.map(|k| self.file_name(k));
        let mut old: Vec<(SystemTime, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p != newest && p.extension().is_some_and(|x| x == "cache"))
            .filter(|p| keep.as_deref() != p.file_name().and_then(|n| n.to_str()))
            .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
            .collect();
        old.sort_by_key(|o| std::cmp::Reverse(o.0));
        for (_, p) in old.into_iter().skip(KEEP) {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove an old files cache");
            }
        }
    }

    fn file_name(&self, id: &BackupId) -> String {
        format!("{}.cache", id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat() -> FileStat {
        FileStat {
            size: 4096,
            mtime: 1_700_000_000,
            mtime_nsec: 123_456_789,
            ctime: 1_700_000_000,
            ctime_nsec: 223_456_789,
            ino: 42,
        }
    }

    fn at(s: i64, ns: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(s as u64, ns)
    }

    #[test]
    fn any_change_restic_looks_at_means_read_again() {
        let s = stat();
        assert!(unchanged(&s, &s));
        for changed in [
            FileStat { size: 4097, ..s },
            FileStat {
                mtime: s.mtime + 1,
                ..s
            },
            FileStat { mtime_nsec: 1, ..s },
            // mtime put back by `touch -d` still moves ctime
            FileStat { ctime_nsec: 1, ..s },
            FileStat {
                ctime: s.ctime + 1,
                ..s
            },
            FileStat { ino: 43, ..s },
        ] {
            assert!(!unchanged(&s, &changed), "{changed:?}");
        }
    }

    #[test]
    fn a_file_changed_while_or_just_before_it_was_read_is_not_cached() {
        let s = stat();
        // Last change at ctime 1_700_000_000.223…
        assert!(trustworthy(&s, &s, at(1_700_000_001, 0)));
        assert!(trustworthy(&s, &s, at(1_700_000_000, 323_456_789)));
        assert!(!trustworthy(&s, &s, at(1_700_000_000, 300_000_000)));
        // changed during the read
        let grown = FileStat { size: 5000, ..s };
        assert!(!trustworthy(&s, &grown, at(1_800_000_000, 0)));
        // whole-second filesystems need two seconds
        let coarse = FileStat {
            mtime_nsec: 0,
            ctime_nsec: 0,
            ..s
        };
        assert!(!trustworthy(
            &coarse,
            &coarse,
            at(1_700_000_001, 900_000_000)
        ));
        assert!(trustworthy(&coarse, &coarse, at(1_700_000_002, 0)));
        // a last change in the future (clock skew) is never trusted
        assert!(!trustworthy(&s, &s, at(1_600_000_000, 0)));
    }

    fn refs(ids: &[u8]) -> Vec<ChunkRef> {
        ids.iter()
            .map(|i| ChunkRef {
                id: ChunkId([*i; 32]),
                len: 100,
            })
            .collect()
    }

    #[test]
    fn a_saved_cache_comes_back_as_the_completed_parent_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), "repo1");
        let a = BackupId::generate();
        let mut c = NewCache::default();
        c.insert([1; 32], stat(), refs(&[1, 2]));
        c.insert([2; 32], stat(), refs(&[3]));
        let path = store.save("ds/with slash", &a, c, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // holds no file name: the keys are what was given
        let other = BackupId::generate();
        assert!(store
            .parent("ds/with slash", std::slice::from_ref(&other))
            .is_none());
        let mut p = store
            .parent("ds/with slash", &[other, a.clone()])
            .expect("parent");
        assert_eq!(p.backup_id, Some(a.clone()));
        assert_eq!(p.len(), 2);
        assert_eq!(p.get(&[1; 32]).unwrap().refs, refs(&[1, 2]));
        let batches = p.batches(2);
        assert_eq!(
            batches.len(),
            2,
            "two entries of 2 and 1 refs, at most ~2 ids a batch"
        );
        let all: Vec<[u8; 32]> = batches.concat();
        assert_eq!(p.chunk_ids_of(&all).len(), 3);
        // an entry naming a chunk some network lacks is dropped
        let usable: HashSet<ChunkId> = [ChunkId([1; 32]), ChunkId([3; 32])].into();
        assert_eq!(p.retain_known(&all, &usable), 1);
        assert!(p.get(&[1; 32]).is_none() && p.get(&[2; 32]).is_some());

        // a damaged file is no parent
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let e = FilesCache::load(&path).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        assert!(store.parent("ds/with slash", &[a]).is_none());
        std::fs::write(&path, b"x").unwrap();
        assert!(FilesCache::load(&path).is_err());
    }

    #[test]
    fn old_caches_are_pruned_but_the_parent_in_use_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path(), "r");
        let ids: Vec<BackupId> = (0..7).map(|_| BackupId::generate()).collect();
        for id in &ids {
            store
                .save("d", id, NewCache::default(), Some(&ids[0]))
                .unwrap();
            // distinct modification times, oldest first
            std::thread::sleep(Duration::from_millis(15));
        }
        let left: HashSet<String> = std::fs::read_dir(store.dataset_dir("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let want: HashSet<String> = [&ids[0], &ids[3], &ids[4], &ids[5], &ids[6]]
            .iter()
            .map(|i| store.file_name(i))
            .collect();
        assert_eq!(left, want);
    }
}
