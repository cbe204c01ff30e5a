//! A client of the IPFS Pinning Service API (ipfs/pinning-services-api-spec,
//! the API Pinata, Filebase and others implement): asks a remote service to
//! keep a copy of each object Cairn adds to its own node, because one local
//! node is not a backup.
//!
//! Each object is one pin, named `<repository>/<object path>` and tagged
//! `meta.cairn-repo`, so that a repository's pins can be listed, found by
//! path and removed when Cairn deletes the object.

use super::Rpc;
use cid::Cid;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Statuses a pin request can have; `GET /pins` only lists `pinned` unless
/// asked for all of them.
pub const ALL_STATUSES: &str = "queued,pinning,pinned,failed";
/// `Pin.origins` holds at most 20 multiaddrs.
const MAX_ORIGINS: usize = 20;
/// `Pin.name` is at most 255 characters.
pub const MAX_NAME: usize = 255;

pub struct PinningService {
    endpoint: String,
    /// The access token. Never logged, never in an error message.
    token: String,
    http: reqwest::Client,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PinStatus {
    pub requestid: String,
    pub status: String,
    /// RFC 3339 time the request was made (the pagination key).
    pub created: String,
    pub pin: Pin,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Pin {
    pub cid: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PinResults {
    count: u64,
    results: Vec<PinStatus>,
}

impl PinningService {
    pub fn new(endpoint: &str, token: String) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(PinningService {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, Rpc> {
        let r = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| Rpc::Fail(format!("pinning service: {e}")))?;
        let status = r.status();
        if status.is_success() {
            return Ok(r);
        }
        let body = r.text().await.unwrap_or_default();
        // The spec's Failure object: {"error": {"reason", "details"}}.
        let reason = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let e = &v["error"];
                let reason = e["reason"].as_str()?;
                Some(match e["details"].as_str() {
                    Some(d) => format!("{reason}: {d}"),
                    None => reason.to_string(),
                })
            })
            .unwrap_or(body);
        Err(Rpc::Fail(format!(
            "pinning service: HTTP {status}: {reason}"
        )))
    }

    /// Pin requests with exactly this name, in every status.
    pub async fn named(&self, name: &str) -> Result<Vec<PinStatus>, Rpc> {
        let r = self
            .send(self.http.get(format!("{}/pins", self.endpoint)).query(&[
                ("name", name),
                ("match", "exact"),
                ("status", ALL_STATUSES),
                ("limit", "1000"),
            ]))
            .await?;
        let res: PinResults = r
            .json()
            .await
            .map_err(|e| Rpc::Fail(format!("pinning service: bad pin list: {e}")))?;
        Ok(res.results)
    }

    /// Makes sure `cid` is pinned under `name`, and that no other content
    /// is (an overwritten object's old version is unpinned after the new
    /// one is requested).
    pub async fn pin(
        &self,
        cid: &Cid,
        name: &str,
        repo: &str,
        origins: &[String],
    ) -> Result<(), Rpc> {
        let existing = self.named(name).await?;
        let wanted = cid.to_string();
        if !existing.iter().any(|p| same_cid(&p.pin.cid, cid)) {
            let body = json!({
                "cid": wanted,
                "name": name,
                "origins": origins.iter().take(MAX_ORIGINS).collect::<Vec<_>>(),
                "meta": {"cairn-repo": repo},
            });
            self.send(
                self.http
                    .post(format!("{}/pins", self.endpoint))
                    .json(&body),
            )
            .await?;
        }
        for old in existing.iter().filter(|p| !same_cid(&p.pin.cid, cid)) {
            self.remove(&old.requestid).await?;
        }
        Ok(())
    }

    pub async fn remove(&self, requestid: &str) -> Result<(), Rpc> {
        match self
            .send(
                self.http
                    .delete(format!("{}/pins/{}", self.endpoint, requestid)),
            )
            .await
        {
            Err(Rpc::Fail(m)) if m.contains("HTTP 404") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Removes every pin request named `name`.
    pub async fn unpin(&self, name: &str) -> Result<(), Rpc> {
        for p in self.named(name).await? {
            self.remove(&p.requestid).await?;
        }
        Ok(())
    }

    /// Whether the service answers and accepts the token.
    pub async fn check(&self) -> Result<(), Rpc> {
        let r = self
            .send(
                self.http
                    .get(format!("{}/pins", self.endpoint))
                    .query(&[("limit", "1")]),
            )
            .await?;
        r.json::<PinResults>()
            .await
            .map(|_| ())
            .map_err(|e| Rpc::Fail(format!("pinning service: bad pin list: {e}")))
    }

    /// How many of a repository's pin requests are in each status. Pages
    /// through every pin request (by `before` = the oldest `created` seen)
    /// and keeps those named `<repo>/...`: the `meta` filter is optional in
    /// practice (some servers fail on it).
    pub async fn count(&self, repo: &str) -> Result<BTreeMap<String, u64>, Rpc> {
        let prefix = format!("{repo}/");
        let mut counts = BTreeMap::new();
        let mut before: Option<String> = None;
        loop {
            let mut q = vec![
                ("status", ALL_STATUSES.to_string()),
                ("limit", "1000".into()),
            ];
            if let Some(b) = &before {
                q.push(("before", b.clone()));
            }
            let r = self
                .send(self.http.get(format!("{}/pins", self.endpoint)).query(&q))
                .await?;
            let res: PinResults = r
                .json()
                .await
                .map_err(|e| Rpc::Fail(format!("pinning service: bad pin list: {e}")))?;
            for p in &res.results {
                if p.pin
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(&prefix))
                {
                    *counts.entry(p.status.clone()).or_insert(0) += 1;
                }
            }
            let oldest = res.results.iter().map(|p| p.created.as_str()).min();
            match oldest {
                Some(o) if res.count > res.results.len() as u64 => before = Some(o.to_string()),
                _ => return Ok(counts),
            }
        }
    }
}

/// CIDs compare by content, whatever base the service prints them in.
fn same_cid(text: &str, cid: &Cid) -> bool {
    Cid::try_from(text).map(|c| &c == cid).unwrap_or(false)
}
