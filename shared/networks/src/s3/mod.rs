//! Any S3-compatible API as a network, through aws-sdk-s3: AWS itself, the
//! S3 gateways of Storj and Sia (renterd), Filebase (IPFS/Filecoin behind
//! S3), MinIO, Garage. Custom endpoint, path-style addressing, SigV4
//! credentials from a file or the environment (never from the config file,
//! never logged), SHA-256 checksums sent with every upload and verified by
//! the server.
//!
//! Objects are small (a chunk is at most 896 KiB), so every upload is a single
//! PutObject; multipart would only add round trips.

use crate::{check_path, Capabilities, Network, NetworkError, Put, PutMode, Usage};
use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use bytes::Bytes;
use cairn_config::NetworkConfig;

pub struct S3Network {
    name: String,
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    can_delete: bool,
}

fn secret_from(cfg: &NetworkConfig) -> Result<Option<String>, NetworkError> {
    if let Some(path) = &cfg.secret_access_key_file {
        return std::fs::read_to_string(path)
            .map(|t| Some(t.lines().next().unwrap_or("").trim().to_string()))
            .map_err(|e| NetworkError::Config {
                network: cfg.name.clone(),
                problem: format!("secret_access_key_file {}: {e}", path.display()),
            });
    }
    Ok(std::env::var(cfg.env_name("SECRET_ACCESS_KEY"))
        .or_else(|_| std::env::var("AWS_SECRET_ACCESS_KEY"))
        .ok())
}

impl S3Network {
    pub fn new(cfg: &NetworkConfig) -> Result<Self, NetworkError> {
        let bad = |problem: String| NetworkError::Config {
            network: cfg.name.clone(),
            problem,
        };
        let bucket = cfg
            .bucket
            .clone()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| bad("needs a bucket".into()))?;
        let key_id = cfg
            .access_key_id
            .clone()
            .or_else(|| std::env::var(cfg.env_name("ACCESS_KEY_ID")).ok())
            .or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok())
            .ok_or_else(|| {
                bad(format!(
                    "no access key id: set access_key_id, {} or AWS_ACCESS_KEY_ID",
                    cfg.env_name("ACCESS_KEY_ID")
                ))
            })?;
        let secret = secret_from(cfg)?.ok_or_else(|| {
            bad(format!(
                "no secret access key: set secret_access_key_file, {} or AWS_SECRET_ACCESS_KEY",
                cfg.env_name("SECRET_ACCESS_KEY")
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
        Ok(S3Network {
            name: cfg.name.clone(),
            client: aws_sdk_s3::Client::from_conf(b.build()),
            bucket,
            prefix,
            can_delete: cfg.can_delete.unwrap_or(true),
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
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_no_such_key() => self.not_found(path),
                _ if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => {
                    self.not_found(path)
                }
                _ => self.remote("get", path, e),
            })?;
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| self.remote("get", path, e))?;
        Ok(data.into_bytes())
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

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            can_delete: self.can_delete,
        }
    }

    async fn put(&self, path: &str, bytes: Bytes, mode: PutMode) -> Result<Put, NetworkError> {
        if mode == PutMode::IfAbsent && self.exists(path).await? {
            // Content-addressed: whatever is there has the same content (or
            // verify will say it does not).
            return Ok(Put::Existed);
        }
        let key = self.key(path)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.remote("put", path, e))?;
        Ok(Put::Written)
    }

    async fn get(&self, path: &str) -> Result<Bytes, NetworkError> {
        self.read(path, None).await
    }

    async fn exists(&self, path: &str) -> Result<bool, NetworkError> {
        let key = self.key(path)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(se) if se.is_not_found() => Ok(false),
                _ if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(false),
                _ => Err(self.remote("exists", path, e)),
            },
        }
    }

    async fn delete(&self, path: &str) -> Result<(), NetworkError> {
        if !self.can_delete {
            return Err(NetworkError::Permanent {
                network: self.name.clone(),
                path: path.to_string(),
            });
        }
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
        Ok(())
    }
}
