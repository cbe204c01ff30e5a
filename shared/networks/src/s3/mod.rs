//! Any S3-compatible API as a network, through aws-sdk-s3: AWS itself, the
//! S3 gateways of Storj and Sia (renterd), Filebase (IPFS/Filecoin behind
//! S3), MinIO, Garage. Custom endpoint, path-style addressing, SigV4
//! credentials from a file or the environment (never from the config file,
//! never logged), SHA-256 checksums sent with every upload and verified by
//! the server.
//!
//! Cairn's objects are small (a chunk is at most 896 KiB) and go up as one
//! PutObject; anything larger than `multipart_part_bytes` (default 16 MiB)
//! goes up in parts, each with its own checksum, aborted on failure.
//!
//! With `object_lock_days`, every object is written under S3 Object Lock
//! (compliance mode unless `object_lock_mode = "governance"`) until that many
//! days from the write: nobody, Cairn included, can delete or overwrite those
//! bytes before then; a delete only hides the object behind a delete marker.
//! A chunk a later backup shares gets its lock extended when less than half
//! of the period is left. A backup a compliance rule keeps longer is locked
//! until then (`put_until`, and verify's `retain` on every object it
//! shares), and a legal hold is placed on every object of a held backup
//! (`legal_hold`). `health` refuses a bucket without Object Lock.

pub mod config;

use crate::{check_path, env_name, Network, NetworkError, ObjectLock, Put, PutMode, Usage};
use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockEnabled,
    ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention,
    ObjectLockRetentionMode,
};
use bytes::Bytes;
use config::{LockMode, S3Config};
use std::time::{Duration, SystemTime};

pub struct S3Network {
    name: String,
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    part_bytes: usize,
    lock: Option<Lock>,
}

/// S3 Object Lock settings.
#[derive(Debug, Clone, Copy)]
struct Lock {
    days: u32,
    governance: bool,
}

impl Lock {
    fn until(&self) -> SystemTime {
        SystemTime::now() + Duration::from_secs(u64::from(self.days) * 86_400)
    }

    /// The period from now, or `at_least` if that is later.
    fn until_at_least(&self, at_least: Option<SystemTime>) -> SystemTime {
        let own = self.until();
        at_least.map_or(own, |t| t.max(own))
    }

    fn retention_mode(&self) -> ObjectLockRetentionMode {
        if self.governance {
            ObjectLockRetentionMode::Governance
        } else {
            ObjectLockRetentionMode::Compliance
        }
    }

    fn mode(&self) -> ObjectLockMode {
        if self.governance {
            ObjectLockMode::Governance
        } else {
            ObjectLockMode::Compliance
        }
    }
}

/// S3's smallest part (but the last).
const MIN_PART: usize = 5 << 20;

fn secret_from(name: &str, cfg: &S3Config) -> Result<Option<String>, NetworkError> {
    if let Some(path) = &cfg.secret_access_key_file {
        return std::fs::read_to_string(path)
            .map(|t| Some(t.lines().next().unwrap_or("").trim().to_string()))
            .map_err(|e| {
                let problem = format!("secret_access_key_file {}: {e}", path.display());
                NetworkError::config(name, problem)
            });
    }
    Ok(std::env::var(env_name(name, "SECRET_ACCESS_KEY"))
        .or_else(|_| std::env::var("AWS_SECRET_ACCESS_KEY"))
        .ok())
}

impl S3Network {
    pub fn new(name: &str, cfg: &S3Config) -> Result<Self, NetworkError> {
        let bad = |problem: String| NetworkError::config(name, problem);
        if cfg.bucket.is_empty() {
            return Err(bad("needs a bucket".into()));
        }
        let bucket = cfg.bucket.clone();
        let key_id = cfg
            .access_key_id
            .clone()
            .or_else(|| std::env::var(env_name(name, "ACCESS_KEY_ID")).ok())
            .or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok())
            .ok_or_else(|| {
                bad(format!(
                    "no access key id: set access_key_id, {} or AWS_ACCESS_KEY_ID",
                    env_name(name, "ACCESS_KEY_ID")
                ))
            })?;
        let secret = secret_from(name, cfg)?.ok_or_else(|| {
            bad(format!(
                "no secret access key: set secret_access_key_file, {} or AWS_SECRET_ACCESS_KEY",
                env_name(name, "SECRET_ACCESS_KEY")
            ))
        })?;
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(
                cfg.region.clone().unwrap_or_else(|| "us-east-1".into()),
            ))
            .credentials_provider(Credentials::new(key_id, secret, None, None, "cairn-config"))
            .force_path_style(cfg.path_style.unwrap_or(cfg.endpoint.is_some()))
            // A server that stops answering must not hold a worker forever.
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(5))
                    .operation_attempt_timeout(std::time::Duration::from_secs(60))
                    .build(),
            );
        if let Some(ep) = &cfg.endpoint {
            b = b.endpoint_url(ep);
        }
        let mut prefix = cfg.key_prefix.clone().unwrap_or_default();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let part_bytes = cfg.multipart_part_bytes.unwrap_or(16 << 20);
        if part_bytes < MIN_PART as u64 {
            return Err(bad(format!(
                "multipart_part_bytes {part_bytes} is below S3's minimum part size {MIN_PART}"
            )));
        }
        let lock = match (cfg.object_lock_days, cfg.object_lock_mode) {
            (None, None) => None,
            (None, Some(_)) => return Err(bad("object_lock_mode needs object_lock_days".into())),
            (Some(0), _) => return Err(bad("object_lock_days must be at least 1".into())),
            (Some(days), mode) => Some(Lock {
                days,
                governance: mode == Some(LockMode::Governance),
            }),
        };
        Ok(S3Network {
            name: name.to_string(),
            client: aws_sdk_s3::Client::from_conf(b.build()),
            bucket,
            prefix,
            part_bytes: part_bytes as usize,
            lock,
        })
    }

    fn key(&self, path: &str) -> Result<String, NetworkError> {
        check_path(&self.name, path)?;
        Ok(format!("{}{path}", self.prefix))
    }

    fn remote<E: std::error::Error>(&self, op: &'static str, path: &str, e: E) -> NetworkError {
        // The SDK's Display is terse ("service error"); its source chain says what.
        let mut detail = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            src = s.source();
        }
        NetworkError::Io {
            network: self.name.clone(),
            op,
            path: path.to_string(),
            source: std::io::Error::other(detail),
        }
    }

    /// GetObject, whole or a byte range; a missing key is `NotFound`.
    async fn read(&self, path: &str, range: Option<String>) -> Result<Bytes, NetworkError> {
        let key = self.key(path)?;
        let ranged = range.is_some();
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                return match e.as_service_error() {
                    Some(se) if se.is_no_such_key() => Err(self.not_found(path)),
                    _ if status == Some(404) => Err(self.not_found(path)),
                    // A range that starts past the end: nothing there.
                    _ if ranged && status == Some(416) => Ok(Bytes::new()),
                    _ => Err(self.remote("get", path, e)),
                };
            }
        };
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| self.remote("get", path, e))?;
        Ok(data.into_bytes())
    }

    /// One PutObject (under the lock, if any, until `at_least` if later).
    async fn put_whole(
        &self,
        path: &str,
        key: String,
        bytes: Bytes,
        at_least: Option<SystemTime>,
    ) -> Result<(), NetworkError> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(bytes));
        if let Some(l) = self.lock {
            req = req
                .object_lock_mode(l.mode())
                .object_lock_retain_until_date(DateTime::from(l.until_at_least(at_least)));
        }
        req.send().await.map_err(|e| self.remote("put", path, e))?;
        Ok(())
    }

    /// A multipart upload of `part_bytes` parts; aborted if any step fails,
    /// so no half-uploaded parts are left to pay for.
    async fn put_parts(
        &self,
        path: &str,
        key: String,
        bytes: Bytes,
        at_least: Option<SystemTime>,
    ) -> Result<(), NetworkError> {
        let mut req = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256);
        if let Some(l) = self.lock {
            req = req
                .object_lock_mode(l.mode())
                .object_lock_retain_until_date(DateTime::from(l.until_at_least(at_least)));
        }
        let created = req.send().await.map_err(|e| self.remote("put", path, e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| self.remote("put", path, std::io::Error::other("no upload id")))?
            .to_string();
        let result = async {
            let mut parts = Vec::new();
            for (i, start) in (0..bytes.len()).step_by(self.part_bytes).enumerate() {
                let n = i as i32 + 1;
                let end = (start + self.part_bytes).min(bytes.len());
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(&key)
                    .upload_id(&upload_id)
                    .part_number(n)
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .body(ByteStream::from(bytes.slice(start..end)))
                    .send()
                    .await
                    .map_err(|e| self.remote("put", path, e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .set_checksum_sha256(out.checksum_sha256().map(str::to_string))
                        .build(),
                );
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.remote("put", path, e))?;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    /// Extends the lock on an existing object: to the full period when less
    /// than half of it is left (a chunk a new backup shares stays locked as
    /// long as the new backup), and to `at_least` when it ends sooner. Never
    /// shortens it.
    async fn extend_lock(
        &self,
        path: &str,
        key: String,
        until: Option<&DateTime>,
        at_least: Option<SystemTime>,
    ) -> Result<(), NetworkError> {
        let Some(l) = self.lock else { return Ok(()) };
        let current = until.and_then(|u| SystemTime::try_from(*u).ok());
        let half = SystemTime::now() + Duration::from_secs(u64::from(l.days) * 43_200);
        let refresh = current.is_none_or(|c| c < half);
        let wanted = at_least.filter(|t| current.is_none_or(|c| c < *t));
        if !refresh && wanted.is_none() {
            return Ok(());
        }
        let mut target = l.until_at_least(wanted);
        if let Some(c) = current {
            target = target.max(c);
        }
        if current == Some(target) {
            return Ok(());
        }
        self.client
            .put_object_retention()
            .bucket(&self.bucket)
            .key(key)
            .retention(
                ObjectLockRetention::builder()
                    .mode(l.retention_mode())
                    .retain_until_date(DateTime::from(target))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.remote("lock", path, e))?;
        Ok(())
    }

    /// HeadObject's view of an object's lock (`None` when it is absent).
    async fn head_lock(&self, path: &str) -> Result<Option<ObjectLock>, NetworkError> {
        let key = self.key(path)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(h) => Ok(Some(ObjectLock {
                mode: h
                    .object_lock_mode()
                    .map(|m| m.as_str().to_lowercase())
                    .unwrap_or_default(),
                until: h
                    .object_lock_retain_until_date()
                    .and_then(|u| SystemTime::try_from(*u).ok()),
                legal_hold: h.object_lock_legal_hold_status()
                    == Some(&ObjectLockLegalHoldStatus::On),
            })),
            Err(e) => match e.as_service_error() {
                Some(se) if se.is_not_found() => Ok(None),
                _ if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(None),
                _ => Err(self.remote("lock", path, e)),
            },
        }
    }

    /// HeadObject: `None` when the key is absent, else its lock's end.
    async fn head(&self, path: &str) -> Result<Option<Option<DateTime>>, NetworkError> {
        let key = self.key(path)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(h) => Ok(Some(h.object_lock_retain_until_date().copied())),
            Err(e) => match e.as_service_error() {
                Some(se) if se.is_not_found() => Ok(None),
                _ if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(None),
                _ => Err(self.remote("exists", path, e)),
            },
        }
    }

    fn not_found(&self, path: &str) -> NetworkError {
        NetworkError::NotFound {
            network: self.name.clone(),
            path: path.to_string(),
        }
    }
}

#[async_trait]
impl Network for S3Network {
    fn name(&self) -> &str {
        &self.name
    }

    async fn put(&self, path: &str, bytes: Bytes, mode: PutMode) -> Result<Put, NetworkError> {
        self.put_until(path, bytes, mode, None).await
    }

    async fn put_until(
        &self,
        path: &str,
        bytes: Bytes,
        mode: PutMode,
        at_least: Option<SystemTime>,
    ) -> Result<Put, NetworkError> {
        let key = self.key(path)?;
        if mode == PutMode::IfAbsent {
            if let Some(until) = self.head(path).await? {
                // Content-addressed: whatever is there has the same content
                // (or verify will say it does not).
                self.extend_lock(path, key, until.as_ref(), at_least)
                    .await?;
                return Ok(Put::Existed);
            }
        }
        if bytes.len() > self.part_bytes {
            self.put_parts(path, key.clone(), bytes, at_least).await?;
            // Some servers (moto) ignore the lock given when a multipart
            // upload is created: set it on the finished object as well.
            self.extend_lock(path, key, None, at_least).await?;
        } else {
            self.put_whole(path, key, bytes, at_least).await?;
        }
        Ok(Put::Written)
    }

    fn locks(&self) -> bool {
        self.lock.is_some()
    }

    async fn retain(
        &self,
        path: &str,
        until: SystemTime,
    ) -> Result<Option<ObjectLock>, NetworkError> {
        if self.lock.is_none() {
            return Ok(None);
        }
        let Some(now) = self.head_lock(path).await? else {
            return Err(self.not_found(path));
        };
        if now.until.is_some_and(|u| u >= until) {
            return Ok(Some(now));
        }
        let current = now.until.map(DateTime::from);
        self.extend_lock(path, self.key(path)?, current.as_ref(), Some(until))
            .await?;
        self.head_lock(path).await
    }

    async fn legal_hold(&self, path: &str, on: bool) -> Result<Option<ObjectLock>, NetworkError> {
        if self.lock.is_none() {
            return Ok(None);
        }
        let status = if on {
            ObjectLockLegalHoldStatus::On
        } else {
            ObjectLockLegalHoldStatus::Off
        };
        self.client
            .put_object_legal_hold()
            .bucket(&self.bucket)
            .key(self.key(path)?)
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .send()
            .await
            .map_err(|e| self.remote("legal hold", path, e))?;
        self.head_lock(path).await
    }

    async fn lock(&self, path: &str) -> Result<Option<ObjectLock>, NetworkError> {
        if self.lock.is_none() {
            return Ok(None);
        }
        self.head_lock(path).await
    }

    async fn get(&self, path: &str) -> Result<Bytes, NetworkError> {
        self.read(path, None).await
    }

    async fn exists(&self, path: &str) -> Result<bool, NetworkError> {
        Ok(self.head(path).await?.is_some())
    }

    async fn delete(&self, path: &str) -> Result<(), NetworkError> {
        let key = self.key(path)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.remote("delete", path, e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, NetworkError> {
        let full = format!("{}{prefix}", self.prefix);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(full)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.remote("list", prefix, e))?;
            for obj in page.contents() {
                if let Some(k) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    out.push(k.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn get_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes, NetworkError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        self.read(path, Some(format!("bytes={offset}-{}", offset + len - 1)))
            .await
    }

    async fn usage(&self) -> Result<Usage, NetworkError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.prefix.clone())
            .into_paginator()
            .send();
        let mut u = Usage::default();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.remote("usage", "", e))?;
            for obj in page.contents() {
                u.objects += 1;
                u.bytes += obj.size().unwrap_or(0).max(0) as u64;
            }
        }
        Ok(u)
    }

    async fn health(&self) -> Result<(), NetworkError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.remote("health", &self.bucket, e))?;
        if self.lock.is_some() {
            let enabled = self
                .client
                .get_object_lock_configuration()
                .bucket(&self.bucket)
                .send()
                .await
                .ok()
                .and_then(|c| c.object_lock_configuration().cloned())
                .and_then(|c| c.object_lock_enabled().cloned())
                == Some(ObjectLockEnabled::Enabled);
            if !enabled {
                let problem = format!(
                    "bucket {} has no Object Lock, which object_lock_days needs (it can only be turned on when a bucket is created)",
                    self.bucket
                );
                return Err(NetworkError::config(&self.name, problem));
            }
        }
        Ok(())
    }
}
