//! Arweave, the permanent network: every object is a signed format-2 data
//! transaction (`tx.rs`), found again by its tags through the gateway's
//! GraphQL (`Cairn-Repo`, `Cairn-Path`, `Cairn-Dir`, `Cairn-Top`, owned by the
//! repository's wallet). Objects over one chunk (256 KiB) go up as chunks.
//! `put` returns once the gateway knows the transaction (pending), or, with
//! `confirmations = N`, once it is mined with N blocks on top.
//! Permanent means no delete, ever: `capabilities().can_delete` is false,
//! and retention and crypto-shredding rely on knowing that.

pub mod config;
pub mod tx;

use crate::{check_path, Capabilities, Network, NetworkError, Put, PutMode, Usage};
use async_trait::async_trait;
use bytes::Bytes;
use config::ArweaveConfig;
use serde_json::{json, Value};
use std::collections::HashMap;
use tokio::sync::Mutex;

/// Largest object posted with its data inline (real gateways accept more;
/// arlocal keeps chunk-uploaded data of several transactions apart badly).
pub const INLINE_MAX: usize = 4 << 20;

pub struct ArweaveNetwork {
    name: String,
    endpoint: String,
    http: reqwest::Client,
    wallet: tx::Wallet,
    address: String,
    repo: String,
    mine: bool,
    /// Transaction ids of objects this process wrote or looked up.
    ids: Mutex<HashMap<String, String>>,
    /// Blocks on top of an object's transaction before `put` returns
    /// (`None`: accepted by the gateway, pending, is enough).
    confirmations: Option<u64>,
    confirm_timeout: std::time::Duration,
    /// With `mine`, one upload at a time: arlocal's `/mine` confirms every
    /// pending transaction, and one mined between another upload's header and
    /// its chunks leaves that upload's data wrong.
    mining: Mutex<()>,
}

/// What `GET /tx/{id}/status` says of a transaction the gateway knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmations {
    Pending,
    /// In a block, with this many blocks on top.
    Mined(u64),
}

/// What a gateway's answer to `GET /tx/{id}/status` (`success`: a 2xx
/// status; `body`, its text) says: unknown (`None`), pending, or mined
/// with some confirmations.
pub fn confirmations(success: bool, body: &str) -> Option<Confirmations> {
    if !success {
        return None;
    }
    match serde_json::from_str::<Value>(body) {
        Ok(v) => v["number_of_confirmations"]
            .as_u64()
            .map(Confirmations::Mined),
        // "Pending" (202 on gateways, 200 on arlocal).
        Err(_) => Some(Confirmations::Pending),
    }
}

fn dir_of(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((d, _)) => format!("{d}/"),
        None => "/".into(),
    }
}

fn top_of(path: &str) -> String {
    match path.split_once('/') {
        Some((t, _)) => format!("{t}/"),
        None => path.to_string(),
    }
}

impl ArweaveNetwork {
    pub fn new(name: &str, cfg: &ArweaveConfig) -> Result<Self, NetworkError> {
        let bad = |problem: String| NetworkError::config(name, problem);
        if cfg.endpoint.is_empty() {
            return Err(bad("needs an endpoint".into()));
        }
        let endpoint = cfg.endpoint.clone();
        let wallet_file = cfg.wallet_file.clone();
        let jwk = std::fs::read(&wallet_file)
            .map_err(|e| bad(format!("wallet_file {}: {e}", wallet_file.display())))?;
        let wallet = tx::Wallet::from_jwk(&jwk)
            .map_err(|e| bad(format!("wallet_file {}: {e}", wallet_file.display())))?;
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(ArweaveNetwork {
            name: name.to_string(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            address: wallet.address(),
            wallet,
            http,
            repo: cfg.key_prefix.clone().unwrap_or_else(|| name.to_string()),
            mine: cfg.mine,
            confirmations: cfg.confirmations,
            confirm_timeout: std::time::Duration::from_secs(
                cfg.confirm_timeout_secs.unwrap_or(1800),
            ),
            ids: Mutex::new(HashMap::new()),
            mining: Mutex::new(()),
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn err(&self, op: &'static str, path: &str, detail: impl std::fmt::Display) -> NetworkError {
        NetworkError::io(&self.name, op, path, detail)
    }

    /// An object's data, or `len` bytes of it from `offset`: asked for
    /// with a `Range` header, and cut here when a gateway answers with the
    /// whole object (200) instead of the range (206).
    async fn fetch(&self, path: &str, range: Option<(u64, u64)>) -> Result<Bytes, NetworkError> {
        check_path(&self.name, path)?;
        let id = self
            .lookup(path)
            .await?
            .ok_or_else(|| NetworkError::NotFound {
                network: self.name.clone(),
                path: path.to_string(),
            })?;
        let mut req = self.http.get(format!("{}/{id}", self.endpoint));
        if let Some((offset, len)) = range {
            req = req.header(
                reqwest::header::RANGE,
                format!("bytes={offset}-{}", offset.saturating_add(len) - 1),
            );
        }
        let r = req.send().await.map_err(|e| self.err("get", path, e))?;
        let status = r.status().as_u16();
        if range.is_some() && status == 416 {
            return Ok(Bytes::new()); // the range starts past the end
        }
        if !r.status().is_success() || status == 204 {
            return Err(self.err(
                "get",
                path,
                format!("transaction {id}: HTTP {}", r.status()),
            ));
        }
        let body = r.bytes().await.map_err(|e| self.err("get", path, e))?;
        match range {
            Some((offset, len)) if status != 206 => {
                let start = (offset as usize).min(body.len());
                let end = (offset.saturating_add(len) as usize).min(body.len());
                Ok(body.slice(start..end))
            }
            _ => Ok(body),
        }
    }

    async fn text(
        &self,
        op: &'static str,
        path: &str,
        url: String,
    ) -> Result<String, NetworkError> {
        let r = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.err(op, path, e))?;
        let status = r.status();
        let body = r.text().await.map_err(|e| self.err(op, path, e))?;
        if !status.is_success() {
            return Err(self.err(op, path, format!("HTTP {status}: {body}")));
        }
        Ok(body)
    }

    async fn post(
        &self,
        op: &'static str,
        path: &str,
        url: &str,
        body: &Value,
    ) -> Result<(), NetworkError> {
        let r = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| self.err(op, path, e))?;
        let status = r.status();
        if !status.is_success() {
            let text = r.text().await.unwrap_or_default();
            return Err(self.err(op, path, format!("HTTP {status}: {text}")));
        }
        Ok(())
    }

    /// Transactions of this repository matching `tag`, newest first: (id, path, size).
    async fn query(
        &self,
        op: &'static str,
        tag: &str,
        value: &str,
        all: bool,
    ) -> Result<Vec<(String, String, u64)>, NetworkError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let q = "query($owners: [String!], $tags: [TagFilter!], $after: String, $first: Int) { transactions(owners: $owners, tags: $tags, after: $after, first: $first, sort: HEIGHT_DESC) { pageInfo { hasNextPage } edges { cursor node { id tags { name value } data { size } } } } }";
            let body = json!({
                "query": q,
                "variables": {
                    "owners": [self.address],
                    "tags": [{"name": "Cairn-Repo", "values": [self.repo]}, {"name": tag, "values": [value]}],
                    "after": after,
                    "first": if all { 100 } else { 1 },
                }
            });
            let url = format!("{}/graphql", self.endpoint);
            let r = self
                .http
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| self.err(op, value, e))?;
            let status = r.status();
            let v: Value = r.json().await.map_err(|e| self.err(op, value, e))?;
            if !status.is_success() || v.get("errors").is_some() {
                return Err(self.err(op, value, format!("GraphQL HTTP {status}: {v}")));
            }
            let t = &v["data"]["transactions"];
            let edges = t["edges"].as_array().cloned().unwrap_or_default();
            for e in &edges {
                let node = &e["node"];
                let path = node["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["name"] == "Cairn-Path")
                    .and_then(|t| t["value"].as_str())
                    .unwrap_or_default()
                    .to_string();
                let size = node["data"]["size"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .or_else(|| node["data"]["size"].as_u64())
                    .unwrap_or(0);
                out.push((
                    node["id"].as_str().unwrap_or_default().to_string(),
                    path,
                    size,
                ));
                after = e["cursor"].as_str().map(str::to_string);
            }
            if !all || t["pageInfo"]["hasNextPage"] != true || edges.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Waits until the gateway knows transaction `id` (pending or mined)
    /// and, with `confirmations` set, until it is in a block with that many
    /// blocks on top (`number_of_confirmations`), for at most
    /// `confirm_timeout`.
    async fn await_status(&self, path: &str, id: &str) -> Result<(), NetworkError> {
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(200);
        let url = format!("{}/tx/{id}/status", self.endpoint);
        loop {
            let r = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| self.err("confirm", path, e))?;
            let code = r.status();
            let body = r.text().await.map_err(|e| self.err("confirm", path, e))?;
            let now = confirmations(code.is_success(), &body);
            let done = match (now, self.confirmations) {
                (Some(_), None) => true,
                (Some(Confirmations::Mined(n)), Some(want)) => n >= want,
                _ => false,
            };
            if done {
                return Ok(());
            }
            if started.elapsed() >= self.confirm_timeout {
                let state = match now {
                    None => format!("unknown to the gateway (HTTP {code})"),
                    Some(Confirmations::Pending) => "still pending".to_string(),
                    Some(Confirmations::Mined(n)) => format!("mined, {n} confirmations"),
                };
                return Err(self.err(
                    "confirm",
                    path,
                    format!(
                        "transaction {id} after {} s: {state}, waiting for {}",
                        self.confirm_timeout.as_secs(),
                        match self.confirmations {
                            Some(n) => format!("{n} confirmations"),
                            None => "the gateway to accept it".into(),
                        }
                    ),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(15));
        }
    }

    async fn lookup(&self, path: &str) -> Result<Option<String>, NetworkError> {
        if let Some(id) = self.ids.lock().await.get(path) {
            return Ok(Some(id.clone()));
        }
        let found = self.query("lookup", "Cairn-Path", path, false).await?;
        let id = found.into_iter().next().map(|(id, _, _)| id);
        if let Some(id) = &id {
            self.ids.lock().await.insert(path.to_string(), id.clone());
        }
        Ok(id)
    }
}

#[async_trait]
impl Network for ArweaveNetwork {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { can_delete: false }
    }

    async fn put(&self, path: &str, bytes: Bytes, mode: PutMode) -> Result<Put, NetworkError> {
        check_path(&self.name, path)?;
        if mode == PutMode::IfAbsent {
            if let Some(id) = self.lookup(path).await? {
                // A retry after a timed-out wait waits again, on the same
                // transaction.
                self.await_status(path, &id).await?;
                return Ok(Put::Existed);
            }
        }
        let _one_at_a_time = if self.mine {
            Some(self.mining.lock().await)
        } else {
            None
        };
        let anchor = self
            .text("put", path, format!("{}/tx_anchor", self.endpoint))
            .await?;
        let reward = self
            .text(
                "put",
                path,
                format!("{}/price/{}", self.endpoint, bytes.len()),
            )
            .await?;
        let (dir, top) = (dir_of(path), top_of(path));
        let tags = [
            ("App-Name", "Cairn"),
            ("Content-Type", "application/octet-stream"),
            ("Cairn-Repo", self.repo.as_str()),
            ("Cairn-Path", path),
            ("Cairn-Dir", dir.as_str()),
            ("Cairn-Top", top.as_str()),
        ];
        // Gateways take data inline up to a few MiB, which covers every Cairn
        // object; larger data goes up as chunks.
        let inline = bytes.len() <= INLINE_MAX;
        let (t, chunked) = tx::build(
            &self.wallet,
            &bytes,
            &tags,
            anchor.trim(),
            reward.trim(),
            inline,
        )
        .map_err(|e| self.err("put", path, e))?;
        let body = serde_json::to_value(&t).map_err(|e| self.err("put", path, e))?;
        self.post("put", path, &format!("{}/tx", self.endpoint), &body)
            .await?;
        if !inline {
            for ((a, b), proof) in chunked.chunks.iter().filter(|((a, b), _)| b > a) {
                let chunk = json!({
                    "data_root": t.data_root,
                    "data_size": t.data_size,
                    "data_path": tx::b64(proof),
                    "offset": (b - 1).to_string(),
                    "chunk": tx::b64(&bytes[*a..*b]),
                });
                self.post("put", path, &format!("{}/chunk", self.endpoint), &chunk)
                    .await?;
            }
        }
        if self.mine {
            self.text("put", path, format!("{}/mine", self.endpoint))
                .await?;
        }
        self.ids.lock().await.insert(path.to_string(), t.id.clone());
        self.await_status(path, &t.id).await?;
        Ok(Put::Written)
    }

    async fn get(&self, path: &str) -> Result<Bytes, NetworkError> {
        self.fetch(path, None).await
    }

    async fn exists(&self, path: &str) -> Result<bool, NetworkError> {
        check_path(&self.name, path)?;
        Ok(self.lookup(path).await?.is_some())
    }

    async fn delete(&self, path: &str) -> Result<(), NetworkError> {
        Err(NetworkError::NoDelete {
            network: self.name.clone(),
            path: path.to_string(),
            why: "Arweave is permanent",
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, NetworkError> {
        // GraphQL matches tags exactly: a top folder (`chunks/`) or a folder
        // (`backups/<id>/`) is one query; paths are filtered on the prefix.
        let segments = prefix.trim_end_matches('/').split('/').count();
        let (tag, value) = if segments <= 1 {
            ("Cairn-Top", prefix)
        } else {
            ("Cairn-Dir", prefix)
        };
        let mut paths: Vec<String> = self
            .query("list", tag, value, true)
            .await?
            .into_iter()
            .map(|(_, p, _)| p)
            .filter(|p| p.starts_with(prefix))
            .collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    async fn health(&self) -> Result<(), NetworkError> {
        self.text("health", "", format!("{}/info", self.endpoint))
            .await
            .map(|_| ())
    }

    async fn get_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes, NetworkError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        self.fetch(path, Some((offset, len))).await
    }

    async fn usage(&self) -> Result<Usage, NetworkError> {
        // Every transaction of the repository: what is paid for, forever.
        let mut u = Usage::default();
        for top in ["chunks/", "backups/", "keys/", "config"] {
            for (_, _, size) in self.query("usage", "Cairn-Top", top, true).await? {
                u.objects += 1;
                u.bytes += size;
            }
        }
        Ok(u)
    }
}
