//! `kind = "s3"`: any S3-compatible API (AWS, Storj's and Sia renterd's S3
//! gateways, Filebase, MinIO, Garage).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL (unset: AWS for `region`).
    pub endpoint: Option<String>,
    /// Region (`us-east-1` if unset; Garage wants `garage`).
    pub region: Option<String>,
    pub bucket: String,
    /// Key prefix inside the bucket (e.g. `cairn/`).
    pub key_prefix: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`); default true when an
    /// endpoint is set, as most gateways need.
    pub path_style: Option<bool>,
    /// Access key id (not secret). Unset: `CAIRN_<NAME>_ACCESS_KEY_ID`, then
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// File holding the secret access key. Unset:
    /// `CAIRN_<NAME>_SECRET_ACCESS_KEY`, then `AWS_SECRET_ACCESS_KEY`. Never
    /// in the configuration file, never logged.
    pub secret_access_key_file: Option<PathBuf>,
    /// Objects larger than this go up as a multipart upload of parts this
    /// size (default 16 MiB; at least 5 MiB).
    pub multipart_part_bytes: Option<u64>,
    /// Write every object under S3 Object Lock for this many days (the
    /// bucket must have been created with Object Lock).
    pub object_lock_days: Option<u32>,
    /// `compliance` (the default: nobody can shorten it) or `governance` (a
    /// user with s3:BypassGovernanceRetention can).
    pub object_lock_mode: Option<LockMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Compliance,
    Governance,
}
