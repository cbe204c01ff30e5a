//! Storage networks behind one small interface.
//!
//! A [`Network`] stores opaque objects under slash-separated paths (the
//! repository layout is `cairn_repo::layout`'s business, not the network's).
//! Each protocol is one folder with its config type beside its adapter, in
//! the manner of vector's sinks, and [`open`] builds one from its
//! [`NetworkConfig`]: `fs/` is a local directory, `s3/` any S3-compatible
//! API, `ipfs/` an IPFS node (Kubo RPC) with an optional remote pinning
//! service, `arweave/` the permanent Arweave network. What every kind
//! accepts ([`Common`]) is applied here, once, for all of them.

pub mod arweave;
pub mod config;
pub mod fs;
pub mod ipfs;
pub mod meter;
pub mod s3;

pub use config::{env_name, Common, Kind, NetworkConfig};

use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a `put` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Written,
    /// `IfAbsent` found the object already there and wrote nothing.
    Existed,
}

/// How `put` treats an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Content-addressed objects: never rewritten.
    IfAbsent,
    /// Objects that a retried request may legitimately rewrite.
    Overwrite,
}

/// What a network holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub objects: u64,
    pub bytes: u64,
}

/// An object's lock, as a network that locks objects reports it (S3
/// Object Lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLock {
    /// `compliance` or `governance` (empty when the object has no retention).
    pub mode: String,
    /// When its retention ends.
    pub until: Option<std::time::SystemTime>,
    /// Whether a legal hold is placed on it: nobody can delete it, whatever
    /// its retention, until the hold is lifted.
    pub legal_hold: bool,
}

/// What a network can and cannot do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Permanent networks (Arweave) cannot delete; retention relies on knowing.
    pub can_delete: bool,
}

#[async_trait]
pub trait Network: Send + Sync + 'static {
    fn name(&self) -> &str;
    /// Most networks delete; a permanent one, or one wrapped by `open` for
    /// `can_delete = false`, says it does not.
    fn capabilities(&self) -> Capabilities {
        Capabilities { can_delete: true }
    }
    async fn put(&self, path: &str, bytes: Bytes, mode: PutMode) -> Result<Put, NetworkError>;
    /// As `put`, and where the network locks objects, locked at least until
    /// `until` (its own period if that is longer; an existing object's lock
    /// is extended, never shortened).
    async fn put_until(
        &self,
        path: &str,
        bytes: Bytes,
        mode: PutMode,
        until: Option<std::time::SystemTime>,
    ) -> Result<Put, NetworkError> {
        let _ = until;
        self.put(path, bytes, mode).await
    }
    /// Whether the network locks the objects it holds (S3 Object Lock):
    /// only there do [`retain`](Self::retain), [`legal_hold`](Self::legal_hold)
    /// and [`lock`](Self::lock) do anything.
    fn locks(&self) -> bool {
        false
    }
    /// Keeps an existing object at least until `until`: its lock extended,
    /// never shortened. Returns the lock now in force (`None` where the
    /// network locks nothing).
    async fn retain(
        &self,
        path: &str,
        until: std::time::SystemTime,
    ) -> Result<Option<ObjectLock>, NetworkError> {
        let _ = (path, until);
        Ok(None)
    }
    /// Places (`on`) or lifts a legal hold on an object. Returns the lock
    /// now in force (`None` where the network locks nothing).
    async fn legal_hold(&self, path: &str, on: bool) -> Result<Option<ObjectLock>, NetworkError> {
        let _ = (path, on);
        Ok(None)
    }
    /// The lock on an object (`None` where the network locks nothing).
    async fn lock(&self, path: &str) -> Result<Option<ObjectLock>, NetworkError> {
        let _ = path;
        Ok(None)
    }
    async fn get(&self, path: &str) -> Result<Bytes, NetworkError>;
    async fn exists(&self, path: &str) -> Result<bool, NetworkError>;
    async fn delete(&self, path: &str) -> Result<(), NetworkError>;
    /// Every object path under `prefix` (a folder such as `backups/`).
    async fn list(&self, prefix: &str) -> Result<Vec<String>, NetworkError>;
    /// Whether the network answers now.
    async fn health(&self) -> Result<(), NetworkError>;
    /// `len` bytes of an object from `offset` (fewer at its end): lets a
    /// later erasure-coded or selective restore read part of an object.
    async fn get_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes, NetworkError>;
    /// Objects and bytes stored under the repository (for quotas and cost).
    async fn usage(&self) -> Result<Usage, NetworkError>;
    /// Copies the network has kept elsewhere on its own behalf, by status
    /// (IPFS: this repository's pin requests at the remote pinning service,
    /// `queued`/`pinning`/`pinned`/`failed`); `None` where there is no such
    /// thing.
    async fn remote_copies(&self) -> Result<Option<BTreeMap<String, u64>>, NetworkError> {
        Ok(None)
    }
}

pub type DynNetwork = Arc<dyn Network>;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network {network}: {path} not found")]
    NotFound { network: String, path: String },
    #[error("network {network}: {op} {path}: {source}")]
    Io {
        network: String,
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("network {network}: invalid object path {path:?}")]
    BadPath { network: String, path: String },
    #[error("network {network} does not delete ({path}): {why}")]
    NoDelete {
        network: String,
        path: String,
        why: &'static str,
    },
    #[error("network {network}: {problem}")]
    Config { network: String, problem: String },
}

impl NetworkError {
    /// A configuration of network `network` that cannot work.
    pub fn config(network: &str, problem: impl Into<String>) -> Self {
        NetworkError::Config {
            network: network.to_string(),
            problem: problem.into(),
        }
    }
    /// An I/O failure of `op` on `path`, described by `detail`.
    pub fn io(network: &str, op: &'static str, path: &str, detail: impl std::fmt::Display) -> Self {
        NetworkError::Io {
            network: network.to_string(),
            op,
            path: path.to_string(),
            source: std::io::Error::other(detail.to_string()),
        }
    }

    pub fn not_found(network: &str, path: &str) -> Self {
        NetworkError::NotFound {
            network: network.to_string(),
            path: path.to_string(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, NetworkError::NotFound { .. })
    }
}

/// Object paths are relative, slash-separated, and never climb out of the
/// repository: each segment is non-empty, not `.` or `..`, and printable.
pub fn check_path(network: &str, path: &str) -> Result<(), NetworkError> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| b.is_ascii_graphic())
        });
    if ok {
        Ok(())
    } else {
        Err(NetworkError::BadPath {
            network: network.to_string(),
            path: path.to_string(),
        })
    }
}

/// Builds the network a config entry describes.
pub fn open(cfg: &NetworkConfig) -> Result<DynNetwork, NetworkError> {
    let name = &cfg.name;
    let inner: DynNetwork = match &cfg.kind {
        Kind::Fs(f) => {
            let root = f
                .path
                .as_deref()
                .ok_or_else(|| NetworkError::config(name, "an fs network needs a path"))?;
            Arc::new(fs::FsNetwork::new(name, root))
        }
        Kind::S3(c) => Arc::new(s3::S3Network::new(name, c)?),
        Kind::Ipfs(c) => Arc::new(ipfs::IpfsNetwork::new(name, c)?),
        Kind::Arweave(c) => Arc::new(arweave::ArweaveNetwork::new(name, c)?),
    };
    Ok(Arc::new(Opened {
        inner,
        can_delete: cfg.common.can_delete != Some(false),
    }))
}

/// What `open` puts around every network: each call counted in
/// [`meter`], and for `can_delete = false` a network that says so in its
/// capabilities (retention never tries) and refuses a delete all the same.
struct Opened {
    inner: DynNetwork,
    can_delete: bool,
}

impl Opened {
    fn count(&self, c: meter::Counts) {
        let m = cairn_telemetry::metrics::get();
        if c.bytes_written > 0 {
            m.network_bytes(self.inner.name(), "write", c.bytes_written);
        }
        if c.bytes_read > 0 {
            m.network_bytes(self.inner.name(), "read", c.bytes_read);
        }
        meter::count(self.inner.name(), c);
    }

    /// Runs one call `op`, recording how long it took and whether it failed.
    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, NetworkError>>,
    ) -> Result<T, NetworkError> {
        let start = std::time::Instant::now();
        let r = call.await;
        cairn_telemetry::metrics::get().network_call(
            self.inner.name(),
            op,
            start.elapsed(),
            r.is_ok(),
        );
        r
    }

    fn one(f: impl FnOnce(&mut meter::Counts)) -> meter::Counts {
        let mut c = meter::Counts::default();
        f(&mut c);
        c
    }
}

#[async_trait]
impl Network for Opened {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        if self.can_delete {
            self.inner.capabilities()
        } else {
            Capabilities { can_delete: false }
        }
    }
    async fn put(&self, path: &str, bytes: Bytes, mode: PutMode) -> Result<Put, NetworkError> {
        self.put_until(path, bytes, mode, None).await
    }
    async fn put_until(
        &self,
        path: &str,
        bytes: Bytes,
        mode: PutMode,
        until: Option<std::time::SystemTime>,
    ) -> Result<Put, NetworkError> {
        let len = bytes.len() as u64;
        let r = self
            .timed("put", self.inner.put_until(path, bytes, mode, until))
            .await;
        self.count(Self::one(|c| match &r {
            Ok(Put::Existed) => c.heads = 1,
            Ok(Put::Written) => {
                c.puts = 1;
                c.bytes_written = len;
            }
            Err(_) => c.puts = 1,
        }));
        r
    }
    fn locks(&self) -> bool {
        self.inner.locks()
    }
    async fn retain(
        &self,
        path: &str,
        until: std::time::SystemTime,
    ) -> Result<Option<ObjectLock>, NetworkError> {
        self.count(Self::one(|c| c.locks = 1));
        self.inner.retain(path, until).await
    }
    async fn legal_hold(&self, path: &str, on: bool) -> Result<Option<ObjectLock>, NetworkError> {
        self.count(Self::one(|c| c.locks = 1));
        self.inner.legal_hold(path, on).await
    }
    async fn lock(&self, path: &str) -> Result<Option<ObjectLock>, NetworkError> {
        self.count(Self::one(|c| c.heads = 1));
        self.inner.lock(path).await
    }
    async fn get(&self, path: &str) -> Result<Bytes, NetworkError> {
        let r = self.timed("get", self.inner.get(path)).await;
        let read = r.as_ref().map(|b| b.len() as u64).unwrap_or(0);
        self.count(Self::one(|c| {
            c.gets = 1;
            c.bytes_read = read;
        }));
        r
    }
    async fn exists(&self, path: &str) -> Result<bool, NetworkError> {
        self.count(Self::one(|c| c.heads = 1));
        self.timed("exists", self.inner.exists(path)).await
    }
    async fn delete(&self, path: &str) -> Result<(), NetworkError> {
        if !self.can_delete {
            return Err(NetworkError::NoDelete {
                network: self.name().to_string(),
                path: path.to_string(),
                why: "it is configured with can_delete = false",
            });
        }
        self.count(Self::one(|c| c.deletes = 1));
        self.timed("delete", self.inner.delete(path)).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, NetworkError> {
        self.count(Self::one(|c| c.lists = 1));
        self.timed("list", self.inner.list(prefix)).await
    }
    async fn health(&self) -> Result<(), NetworkError> {
        self.count(Self::one(|c| c.heads = 1));
        self.inner.health().await
    }
    async fn get_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes, NetworkError> {
        let r = self
            .timed("get", self.inner.get_range(path, offset, len))
            .await;
        let read = r.as_ref().map(|b| b.len() as u64).unwrap_or(0);
        self.count(Self::one(|c| {
            c.gets = 1;
            c.bytes_read = read;
        }));
        r
    }
    async fn usage(&self) -> Result<Usage, NetworkError> {
        self.count(Self::one(|c| c.lists = 1));
        self.inner.usage().await
    }
    async fn remote_copies(&self) -> Result<Option<BTreeMap<String, u64>>, NetworkError> {
        self.inner.remote_copies().await
    }
}
