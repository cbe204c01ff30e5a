//! IPFS as a network, through a node's Kubo RPC API (`POST /api/v0/...`),
//! optionally with a remote pinning service (`pinning.rs`) keeping a second
//! copy of everything.
//!
//! Cairn's paths live in the node's MFS under `/cairn/<repository>`: an
//! object is `add`ed as its own CID (CIDv1, raw 1 MiB leaves, so every Cairn
//! chunk is one raw block whose CID is the SHA-256 of its bytes), the CID is
//! checked against the one computed locally (`unixfs.rs`), and `files/cp`
//! links it into MFS, which keeps it from the node's garbage collector. Every
//! read asks MFS for the CID and checks the bytes against it, so a node
//! cannot hand back anything else. `files/stat` of the repository root is one
//! CID naming every object. docs/servers/ipfs.md says why each call is used
//! the way it is (timeouts on CID calls, idle connections, CID bases).

pub mod config;
pub mod pinning;
pub mod unixfs;

use crate::{check_path, env_name, Network, NetworkError, Put, PutMode, Usage};
use async_trait::async_trait;
use bytes::Bytes;
pub use cid::Cid;
use config::IpfsConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Deadline for MFS metadata calls (never fetch from other peers).
const META_SECS: u64 = 10;
/// Directory listings in flight at once.
const LIST_IN_FLIGHT: usize = 8;
/// Deadline for data calls: this, plus a second per MiB.
const DATA_SECS: u64 = 30;

pub struct IpfsNetwork {
    name: String,
    api: String,
    /// MFS directory of this repository, e.g. `/cairn/main`.
    root: String,
    /// Name of the repository on a pinning service.
    repo: String,
    http: reqwest::Client,
    pinning: Option<pinning::PinningService>,
    /// The node's own addresses, given to the pinning service as origins.
    origins: tokio::sync::OnceCell<Vec<String>>,
}

/// How one RPC call failed.
#[derive(Debug)]
pub enum Rpc {
    /// The node says the MFS path does not exist.
    Missing,
    Fail(String),
}

impl std::fmt::Display for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rpc::Missing => f.write_str("does not exist"),
            Rpc::Fail(m) => f.write_str(m),
        }
    }
}

/// `files/stat`.
#[derive(Debug, Deserialize)]
struct Stat {
    #[serde(rename = "Hash")]
    hash: String,
    #[serde(rename = "Size")]
    size: u64,
}

/// One entry of `files/ls?long=true`.
#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Type")]
    kind: u8,
    #[serde(rename = "Size", default)]
    size: u64,
}

fn secs(s: u64) -> String {
    format!("{s}s")
}

fn data_secs(len: u64) -> u64 {
    DATA_SECS + len / (1 << 20)
}

fn token_from(name: &str, cfg: &IpfsConfig) -> Result<Option<String>, String> {
    if let Some(path) = &cfg.pinning_token_file {
        return std::fs::read_to_string(path)
            .map(|t| Some(t.lines().next().unwrap_or("").trim().to_string()))
            .map_err(|e| format!("pinning_token_file {}: {e}", path.display()));
    }
    Ok(std::env::var(env_name(name, "PINNING_TOKEN"))
        .ok()
        .filter(|t| !t.is_empty()))
}

impl IpfsNetwork {
    pub fn new(name: &str, cfg: &IpfsConfig) -> Result<Self, NetworkError> {
        let bad = |problem: String| NetworkError::config(name, problem);
        let endpoint = cfg.endpoint.as_str();
        if endpoint.is_empty() {
            return Err(bad(
                "an ipfs network needs the node's RPC endpoint (e.g. http://127.0.0.1:5001)".into(),
            ));
        }
        let repo = cfg.key_prefix.clone().unwrap_or_else(|| name.to_string());
        let repo = repo.trim_matches('/').to_string();
        if repo.is_empty() || check_path(name, &repo).is_err() {
            return Err(bad(format!("key_prefix {repo:?} is not a valid MFS name")));
        }
        // The node drops idle connections after 5 s; a pooled connection
        // older than that would fail its next request.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let pinning = match (&cfg.pinning_endpoint, token_from(name, cfg).map_err(&bad)?) {
            (Some(ep), Some(token)) => Some(pinning::PinningService::new(ep, token).map_err(&bad)?),
            (Some(_), None) => {
                return Err(bad(format!(
                    "pinning_endpoint needs a token: pinning_token_file or {}",
                    env_name(name, "PINNING_TOKEN")
                )))
            }
            (None, _) => None,
        };
        Ok(IpfsNetwork {
            name: name.to_string(),
            api: format!("{}/api/v0", endpoint.trim_end_matches('/')),
            root: format!("/cairn/{repo}"),
            repo,
            http,
            pinning,
            origins: tokio::sync::OnceCell::new(),
        })
    }

    fn mfs(&self, path: &str) -> String {
        format!("{}/{path}", self.root)
    }

    fn pin_name(&self, path: &str) -> String {
        let n = format!("{}/{path}", self.repo);
        n.chars().take(pinning::MAX_NAME).collect()
    }

    fn err(&self, op: &'static str, path: &str, detail: impl std::fmt::Display) -> NetworkError {
        NetworkError::io(&self.name, op, path, detail)
    }

    fn rpc_err(&self, op: &'static str, path: &str, e: Rpc) -> NetworkError {
        match e {
            Rpc::Missing => NetworkError::NotFound {
                network: self.name.clone(),
                path: path.to_string(),
            },
            Rpc::Fail(m) => self.err(op, path, m),
        }
    }

    /// One RPC call. `node_secs` bounds the work on the node (its `timeout`
    /// argument: without it a CID the node lacks waits forever); the HTTP
    /// deadline is a little longer. A connection the node closed while idle
    /// is retried once.
    async fn call(
        &self,
        endpoint: &str,
        args: &[(&str, &str)],
        node_secs: u64,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, Rpc> {
        let url = format!("{}/{endpoint}", self.api);
        let timeout = secs(node_secs);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .post(&url)
                .query(args)
                .query(&[("timeout", timeout.as_str())])
                .timeout(Duration::from_secs(node_secs + 5));
            if let Some(b) = &body {
                // Every multipart part needs a Content-Type (js-ipfs refuses one without).
                let part = reqwest::multipart::Part::stream(b.clone())
                    .file_name("object")
                    .mime_str("application/octet-stream")
                    .map_err(|e| Rpc::Fail(e.to_string()))?;
                req = req.multipart(reqwest::multipart::Form::new().part("file", part));
            }
            let r = match req.send().await {
                Ok(r) => r,
                Err(e) if attempt == 1 && (e.is_connect() || e.is_request()) && !e.is_timeout() => {
                    continue
                }
                Err(e) => return Err(Rpc::Fail(format!("{endpoint}: {e}"))),
            };
            if r.status().is_success() {
                return Ok(r);
            }
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            let message = error_message(&text);
            if message.contains("does not exist") {
                return Err(Rpc::Missing);
            }
            return Err(Rpc::Fail(format!("{endpoint}: HTTP {status}: {message}")));
        }
    }

    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        args: &[(&str, &str)],
        node_secs: u64,
    ) -> Result<T, Rpc> {
        let r = self.call(endpoint, args, node_secs, None).await?;
        r.json()
            .await
            .map_err(|e| Rpc::Fail(format!("{endpoint}: unexpected answer: {e}")))
    }

    async fn stat(&self, mfs: &str) -> Result<Option<Stat>, Rpc> {
        match self
            .call_json::<Stat>("files/stat", &[("arg", mfs)], META_SECS)
            .await
        {
            Ok(s) => Ok(Some(s)),
            Err(Rpc::Missing) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `files/stat` of an object that must exist (else `NotFound`).
    async fn stat_object(&self, path: &str) -> Result<Stat, NetworkError> {
        self.stat(&self.mfs(path))
            .await
            .map_err(|e| self.rpc_err("get", path, e))?
            .ok_or_else(|| NetworkError::not_found(&self.name, path))
    }

    async fn rm(&self, mfs: &str) -> Result<(), Rpc> {
        match self
            .call(
                "files/rm",
                &[("arg", mfs), ("recursive", "true")],
                META_SECS,
                None,
            )
            .await
        {
            Ok(_) | Err(Rpc::Missing) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `add`s the bytes (pinned, so that no gc takes them before they are
    /// linked into MFS) and returns the CID the node gave them.
    async fn add(&self, bytes: Bytes) -> Result<Cid, Rpc> {
        let secs = data_secs(bytes.len() as u64);
        let r = self
            .call(
                "add",
                &[
                    ("cid-version", "1"),
                    ("raw-leaves", "true"),
                    ("chunker", "size-1048576"),
                    ("hash", "sha2-256"),
                    ("pin", "true"),
                    ("cid-base", "base32"),
                    ("quieter", "true"),
                ],
                secs,
                Some(bytes),
            )
            .await?;
        let text = r.text().await.map_err(|e| Rpc::Fail(format!("add: {e}")))?;
        added_root(&text).map_err(Rpc::Fail)
    }

    /// Links `cid` into MFS at `mfs`. `Ok(false)`: something is there already.
    async fn cp(&self, cid: &Cid, mfs: &str) -> Result<bool, Rpc> {
        let src = format!("/ipfs/{cid}");
        match self
            .call(
                "files/cp",
                &[("arg", src.as_str()), ("arg", mfs), ("parents", "true")],
                META_SECS,
                None,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(Rpc::Fail(m)) if m.contains("already has entry") => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn unpin_local(&self, cid: &Cid) -> Result<(), Rpc> {
        let c = cid.to_string();
        match self
            .call("pin/rm", &[("arg", c.as_str())], META_SECS, None)
            .await
        {
            Err(Rpc::Fail(m)) if !m.contains("not pinned") => Err(Rpc::Fail(m)),
            _ => Ok(()),
        }
    }

    async fn origins(&self) -> &[String] {
        self.origins
            .get_or_init(|| async {
                #[derive(Deserialize)]
                struct Id {
                    #[serde(rename = "Addresses", default)]
                    addresses: Option<Vec<String>>,
                }
                self.call_json::<Id>("id", &[], META_SECS)
                    .await
                    .ok()
                    .and_then(|id| id.addresses)
                    .unwrap_or_default()
            })
            .await
    }

    /// Every object under `dir` (an MFS directory below the root, "" for
    /// the root) with its size.
    async fn walk(&self, dir: &str) -> Result<Vec<(String, u64)>, Rpc> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        // Directories of one level are listed several at a time: `chunks/`
        // alone is 256 of them, each a round trip.
        let mut out = Vec::new();
        let mut level = vec![dir.trim_end_matches('/').to_string()];
        while !level.is_empty() {
            let listings: Vec<(String, Vec<Entry>)> = stream::iter(level)
                .map(|d| async move { self.ls(&d).await.map(|e| (d, e)) })
                .buffer_unordered(LIST_IN_FLIGHT)
                .try_collect()
                .await?;
            level = Vec::new();
            for (d, entries) in listings {
                for e in entries {
                    let p = if d.is_empty() {
                        e.name
                    } else {
                        format!("{d}/{}", e.name)
                    };
                    if e.kind == 1 {
                        level.push(p);
                    } else {
                        out.push((p, e.size));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The entries of one MFS directory below the root (none if it is absent).
    async fn ls(&self, dir: &str) -> Result<Vec<Entry>, Rpc> {
        #[derive(Deserialize)]
        struct Listing {
            #[serde(rename = "Entries", default)]
            entries: Option<Vec<Entry>>,
        }
        let mfs = if dir.is_empty() {
            self.root.clone()
        } else {
            self.mfs(dir)
        };
        match self
            .call_json::<Listing>(
                "files/ls",
                &[("arg", mfs.as_str()), ("long", "true")],
                META_SECS,
            )
            .await
        {
            Ok(l) => Ok(l.entries.unwrap_or_default()),
            Err(Rpc::Missing) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Refuses a node whose repository is (nearly) at its `StorageMax`:
    /// its writes would start failing. `repo/stat` numbers are strings on
    /// js-ipfs and numbers on Kubo.
    async fn node_space(&self) -> Result<(), Rpc> {
        let v: serde_json::Value = self.call_json("repo/stat", &[], META_SECS).await?;
        let num = |k: &str| {
            v[k].as_u64()
                .or_else(|| v[k].as_str().and_then(|t| t.parse().ok()))
        };
        match (num("RepoSize"), num("StorageMax")) {
            (Some(size), Some(max)) if max > 0 && size.saturating_mul(100) >= max.saturating_mul(95) => {
                Err(Rpc::Fail(format!(
                    "the node's repository is full: {size} of its {max} bytes (Datastore.StorageMax); raise it, or run `repo gc` while no Cairn writer uses the node"
                )))
            }
            (Some(_), Some(_)) => Ok(()),
            _ => Err(Rpc::Fail(format!("repo/stat: unexpected answer {v}"))),
        }
    }

    /// The CID that names every object of the repository now.
    pub async fn root_cid(&self) -> Result<Cid, NetworkError> {
        let st = self
            .stat(&self.root)
            .await
            .map_err(|e| self.rpc_err("stat", "", e))?
            .ok_or_else(|| self.err("stat", "", "the repository's MFS root does not exist"))?;
        parse_cid(&st.hash).map_err(|e| self.err("stat", "", e))
    }
}

/// The message of a failed RPC call: the JSON answer's `Message`, else
/// the whole text.
pub fn error_message(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["Message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.to_string())
}

/// The root an `add` answered: one JSON object per line, the last naming it.
pub fn added_root(text: &str) -> Result<Cid, String> {
    #[derive(Deserialize)]
    struct Added {
        #[serde(rename = "Hash")]
        hash: String,
    }
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let added: Added =
        serde_json::from_str(last).map_err(|e| format!("add: unexpected answer {last:?}: {e}"))?;
    parse_cid(&added.hash)
}

fn parse_cid(text: &str) -> Result<Cid, String> {
    Cid::try_from(text).map_err(|e| format!("the node answered {text:?}, not a CID: {e}"))
}

#[async_trait]
impl Network for IpfsNetwork {
    fn name(&self) -> &str {
        &self.name
    }

    async fn put(&self, path: &str, bytes: Bytes, mode: PutMode) -> Result<Put, NetworkError> {
        check_path(&self.name, path)?;
        let mfs = self.mfs(path);
        let rpc = |e| self.rpc_err("put", path, e);
        if mode == PutMode::IfAbsent && self.stat(&mfs).await.map_err(rpc)?.is_some() {
            return Ok(Put::Existed);
        }
        let expected = unixfs::file_cid(&bytes);
        let added = self.add(bytes).await.map_err(rpc)?;
        if added != expected {
            return Err(self.err(
                "put",
                path,
                format!("the node stored the object as {added}, its content is {expected}"),
            ));
        }
        // The remote copy is requested before the object shows in MFS: an
        // object MFS lists has its pin request made.
        if let Some(p) = &self.pinning {
            let origins = self.origins().await;
            p.pin(&expected, &self.pin_name(path), &self.repo, origins)
                .await
                .map_err(rpc)?;
        }
        let mut written = true;
        if mode == PutMode::Overwrite {
            self.rm(&mfs).await.map_err(rpc)?;
        }
        if !self.cp(&expected, &mfs).await.map_err(rpc)? {
            match mode {
                // A concurrent put of the same content-addressed object won.
                PutMode::IfAbsent => written = false,
                PutMode::Overwrite => {
                    self.rm(&mfs).await.map_err(rpc)?;
                    if !self.cp(&expected, &mfs).await.map_err(rpc)? {
                        return Err(self.err("put", path, "another writer keeps replacing it"));
                    }
                }
            }
        }
        self.unpin_local(&expected).await.map_err(rpc)?;
        Ok(if written { Put::Written } else { Put::Existed })
    }

    async fn get(&self, path: &str) -> Result<Bytes, NetworkError> {
        check_path(&self.name, path)?;
        let rpc = |e| self.rpc_err("get", path, e);
        let st = self.stat_object(path).await?;
        let cid = parse_cid(&st.hash).map_err(|e| self.err("get", path, e))?;
        let c = cid.to_string();
        let r = self
            .call("cat", &[("arg", c.as_str())], data_secs(st.size), None)
            .await
            .map_err(|e| match e {
                Rpc::Fail(m) if m.contains("timed out") => self.err(
                    "get",
                    path,
                    format!("MFS lists it as {cid} but the node cannot produce its blocks ({m})"),
                ),
                e => rpc(e),
            })?;
        let bytes = r.bytes().await.map_err(|e| self.err("get", path, e))?;
        // An error after the 200 started comes in a trailer reqwest does not
        // show: the length and the CID catch a cut or wrong answer.
        if bytes.len() as u64 != st.size {
            return Err(self.err(
                "get",
                path,
                format!("the node sent {} bytes of {}", bytes.len(), st.size),
            ));
        }
        let actual = unixfs::file_cid(&bytes);
        if actual != cid {
            return Err(self.err(
                "get",
                path,
                format!("content does not match its CID {cid} (it hashes to {actual})"),
            ));
        }
        Ok(bytes)
    }

    async fn get_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes, NetworkError> {
        check_path(&self.name, path)?;
        let rpc = |e| self.rpc_err("get", path, e);
        let st = self.stat_object(path).await?;
        if offset >= st.size {
            return Ok(Bytes::new());
        }
        let len = len.min(st.size - offset);
        let cid = parse_cid(&st.hash)
            .map_err(|e| self.err("get", path, e))?
            .to_string();
        let (o, l) = (offset.to_string(), len.to_string());
        let r = self
            .call(
                "cat",
                &[
                    ("arg", cid.as_str()),
                    ("offset", o.as_str()),
                    ("length", l.as_str()),
                ],
                data_secs(len),
                None,
            )
            .await
            .map_err(rpc)?;
        let bytes = r.bytes().await.map_err(|e| self.err("get", path, e))?;
        if bytes.len() as u64 != len {
            return Err(self.err(
                "get",
                path,
                format!("the node sent {} bytes of {len}", bytes.len()),
            ));
        }
        Ok(bytes)
    }

    async fn exists(&self, path: &str) -> Result<bool, NetworkError> {
        check_path(&self.name, path)?;
        Ok(self
            .stat(&self.mfs(path))
            .await
            .map_err(|e| self.rpc_err("exists", path, e))?
            .is_some())
    }

    async fn delete(&self, path: &str) -> Result<(), NetworkError> {
        check_path(&self.name, path)?;
        let rpc = |e| self.rpc_err("delete", path, e);
        if let Some(p) = &self.pinning {
            p.unpin(&self.pin_name(path)).await.map_err(rpc)?;
        }
        // Space comes back at the node's next garbage collection.
        self.rm(&self.mfs(path)).await.map_err(rpc)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, NetworkError> {
        // Walk the directory the prefix is in; keep what starts with it.
        let dir = match prefix.rsplit_once('/') {
            Some((d, _)) => d,
            None => "",
        };
        if !dir.is_empty() {
            check_path(&self.name, dir)?;
        }
        let all = self
            .walk(dir)
            .await
            .map_err(|e| self.rpc_err("list", prefix, e))?;
        Ok(all
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| p.starts_with(prefix))
            .collect())
    }

    async fn health(&self) -> Result<(), NetworkError> {
        let rpc = |e| self.rpc_err("health", "", e);
        self.call("id", &[], 5, None).await.map_err(rpc)?;
        // A write probe: the repository's MFS root exists (or can be made)
        // and its block is readable.
        self.call(
            "files/mkdir",
            &[
                ("arg", self.root.as_str()),
                ("parents", "true"),
                ("cid-version", "1"),
            ],
            META_SECS,
            None,
        )
        .await
        .map_err(rpc)?;
        self.stat(&self.root).await.map_err(rpc)?;
        self.node_space().await.map_err(rpc)?;
        if let Some(p) = &self.pinning {
            p.check().await.map_err(rpc)?;
        }
        Ok(())
    }

    /// This repository's pin requests at the pinning service, by status.
    async fn remote_copies(&self) -> Result<Option<BTreeMap<String, u64>>, NetworkError> {
        let Some(p) = &self.pinning else {
            return Ok(None);
        };
        p.count(&self.repo)
            .await
            .map(Some)
            .map_err(|e| self.rpc_err("pin status", "", e))
    }

    async fn usage(&self) -> Result<Usage, NetworkError> {
        let all = self
            .walk("")
            .await
            .map_err(|e| self.rpc_err("usage", "", e))?;
        Ok(Usage {
            objects: all.len() as u64,
            bytes: all.iter().map(|(_, s)| s).sum(),
        })
    }
}
