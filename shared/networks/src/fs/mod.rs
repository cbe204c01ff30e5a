//! A local directory as a network: the embedded default, and the model every
//! other protocol's semantics follow. Writes go to a temporary file that is
//! synced and renamed into place, so a crash never leaves a torn object.

pub mod config;

use crate::{check_path, Network, NetworkError, Put, PutMode, Usage};
use async_trait::async_trait;
use bytes::Bytes;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct FsNetwork {
    name: String,
    root: PathBuf,
}

impl FsNetwork {
    pub fn new(name: &str, root: &Path) -> Self {
        FsNetwork {
            name: name.to_string(),
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn resolve(&self, path: &str) -> Result<PathBuf, NetworkError> {
        check_path(&self.name, path)?;
        Ok(self.root.join(path))
    }

    fn io(&self, op: &'static str, path: &str, source: std::io::Error) -> NetworkError {
        if source.kind() == std::io::ErrorKind::NotFound && op != "put" {
            NetworkError::NotFound {
                network: self.name.clone(),
                path: path.to_string(),
            }
        } else {
            NetworkError::Io {
                network: self.name.clone(),
                op,
                path: path.to_string(),
                source,
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        path: &str,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, NetworkError> {
        match tokio::task::spawn_blocking(f).await {
            Ok(r) => r.map_err(|e| self.io(op, path, e)),
            Err(join) => Err(self.io(op, path, std::io::Error::other(join.to_string()))),
        }
    }
}

fn write_atomically(full: &Path, bytes: &[u8], mode: PutMode) -> std::io::Result<Put> {
    if mode == PutMode::IfAbsent && full.exists() {
        return Ok(Put::Existed);
    }
    let dir = full.parent().expect("object paths have a parent");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(bytes)?;
    tmp.1.sync_data()?;
    drop(tmp.1);
    if mode == PutMode::IfAbsent {
        // hard_link fails if the target exists: no race between two writers.
        match std::fs::hard_link(&tmp.0, full) {
            Ok(()) => {
                std::fs::remove_file(&tmp.0)?;
                Ok(Put::Written)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&tmp.0)?;
                Ok(Put::Existed)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp.0);
                Err(e)
            }
        }
    } else {
        std::fs::rename(&tmp.0, full)?;
        Ok(Put::Written)
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use rand::Rng;
    loop {
        let p = dir.join(format!(".tmp-{:016x}", rand::thread_rng().gen::<u64>()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

fn list_under(root: &Path, prefix: &str) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let start = root.join(prefix.trim_end_matches('/'));
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in rd {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") {
                continue;
            }
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                if let Ok(rel) = entry.path().strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

#[async_trait]
impl Network for FsNetwork {
    fn name(&self) -> &str {
        &self.name
    }

    async fn put(&self, path: &str, bytes: Bytes, mode: PutMode) -> Result<Put, NetworkError> {
        let full = self.resolve(path)?;
        self.blocking("put", path, move || write_atomically(&full, &bytes, mode))
            .await
    }

    async fn get(&self, path: &str) -> Result<Bytes, NetworkError> {
        let full = self.resolve(path)?;
        self.blocking("get", path, move || std::fs::read(full).map(Bytes::from))
            .await
    }

    async fn exists(&self, path: &str) -> Result<bool, NetworkError> {
        let full = self.resolve(path)?;
        self.blocking("exists", path, move || match std::fs::metadata(full) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        })
        .await
    }

    async fn delete(&self, path: &str) -> Result<(), NetworkError> {
        let full = self.resolve(path)?;
        self.blocking("delete", path, move || match std::fs::remove_file(full) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, NetworkError> {
        let root = self.root.clone();
        let p = prefix.to_string();
        self.blocking("list", prefix, move || list_under(&root, &p))
            .await
    }

    async fn get_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes, NetworkError> {
        use std::io::{Read, Seek, SeekFrom};
        let full = self.resolve(path)?;
        self.blocking("get", path, move || {
            let mut f = std::fs::File::open(full)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::new();
            f.take(len).read_to_end(&mut buf)?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn usage(&self) -> Result<Usage, NetworkError> {
        let root = self.root.clone();
        self.blocking("usage", "", move || {
            let mut u = Usage::default();
            for p in list_under(&root, "")? {
                u.objects += 1;
                u.bytes += std::fs::metadata(root.join(p))?.len();
            }
            Ok(u)
        })
        .await
    }

    async fn health(&self) -> Result<(), NetworkError> {
        let root = self.root.clone();
        self.blocking("health", "", move || {
            std::fs::create_dir_all(&root)?;
            let probe = root.join(".tmp-health");
            std::fs::write(&probe, b"ok")?;
            std::fs::remove_file(probe)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let n = FsNetwork::new("local", dir.path());
        n.health().await.unwrap();
        assert_eq!(
            n.put("chunks/ab/abc", Bytes::from_static(b"x"), PutMode::IfAbsent)
                .await
                .unwrap(),
            Put::Written
        );
        assert_eq!(
            n.put("chunks/ab/abc", Bytes::from_static(b"y"), PutMode::IfAbsent)
                .await
                .unwrap(),
            Put::Existed
        );
        assert_eq!(&n.get("chunks/ab/abc").await.unwrap()[..], b"x");
        n.put(
            "chunks/ab/abc",
            Bytes::from_static(b"z"),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
        assert_eq!(&n.get("chunks/ab/abc").await.unwrap()[..], b"z");
        assert_eq!(
            n.list("chunks/").await.unwrap(),
            vec!["chunks/ab/abc".to_string()]
        );
        assert!(n.get("chunks/none").await.unwrap_err().is_not_found());
        n.delete("chunks/ab/abc").await.unwrap();
        assert!(!n.exists("chunks/ab/abc").await.unwrap());
        for bad in ["/etc/passwd", "../x", "a//b", "a/./b", ""] {
            assert!(
                matches!(n.get(bad).await, Err(NetworkError::BadPath { .. })),
                "{bad}"
            );
        }
    }
}
