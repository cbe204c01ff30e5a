//! Storage networks behind one small interface.
//!
//! A [`Network`] stores opaque objects under slash-separated paths (the
//! repository layout is `cairn_repo::layout`'s business, not the network's).
//! Each protocol is one folder, in the manner of vector's sinks, and [`open`]
//! builds one from its config: `fs/` is a local directory, `s3/` any
//! S3-compatible API, `ipfs/` an IPFS node (Kubo RPC) with an optional remote
//! pinning service, `arweave/` the permanent Arweave network.

pub mod arweave;
pub mod fs;
pub mod ipfs;
pub mod s3;

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

/// What a network can and cannot do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Permanent networks (Arweave) cannot delete; retention relies on knowing.
    pub can_delete: bool,
}

#[async_trait]
pub trait Network: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn capabilities(&self) -> Capabilities;
    async fn put(&self, path: &str, bytes: Bytes, mode: PutMode) -> Result<Put, NetworkError>;
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
    #[error("network {network} cannot delete ({path}): it is permanent")]
    Permanent { network: String, path: String },
    #[error("network {network}: {problem}")]
    Config { network: String, problem: String },
}

impl NetworkError {
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
pub fn open(cfg: &cairn_config::NetworkConfig) -> Result<DynNetwork, NetworkError> {
    let name = &cfg.name;
    match cfg.kind.as_str() {
        "fs" => {
            let root = cfg.path.as_deref().ok_or_else(|| NetworkError::Config {
                network: name.to_string(),
                problem: "an fs network needs a path".into(),
            })?;
            Ok(Arc::new(fs::FsNetwork::new(name, root)))
        }
        "s3" => Ok(Arc::new(s3::S3Network::new(cfg)?)),
        "ipfs" => Ok(Arc::new(ipfs::IpfsNetwork::new(cfg)?)),
        "arweave" => Ok(Arc::new(arweave::ArweaveNetwork::new(cfg)?)),
        other => Err(NetworkError::Config {
            network: name.to_string(),
            problem: format!("unknown kind {other:?}"),
        }),
    }
}
