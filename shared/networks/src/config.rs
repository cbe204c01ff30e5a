//! `[[networks]]`: one entry per storage network. `name` and `kind` pick it
//! out, [`Common`] holds the keys every kind accepts, and the rest belong to
//! the kind, whose config type lives beside its adapter (`fs/config.rs`,
//! `s3/config.rs`, ...) and refuses a key it does not know. Every error
//! names the network, its kind and the key.

use crate::arweave::config::ArweaveConfig;
use crate::fs::config::FsConfig;
use crate::ipfs::config::IpfsConfig;
use crate::s3::config::S3Config;
use serde::{Deserialize, Serialize};

/// One storage network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct NetworkConfig {
    /// One token of `[A-Za-z0-9_-]`, used in consumer names.
    pub name: String,
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub kind: Kind,
}

/// The protocol, and its own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kind {
    /// A local (or mounted) directory.
    Fs(FsConfig),
    /// Any S3-compatible API.
    S3(S3Config),
    /// An IPFS node's Kubo RPC API.
    Ipfs(IpfsConfig),
    /// The permanent Arweave network.
    Arweave(ArweaveConfig),
}

impl Kind {
    /// Every kind's name, as written in `kind = "…"`.
    pub const NAMES: &'static [&'static str] = &["fs", "s3", "ipfs", "arweave"];

    /// Whether reading an object back right after storing it proves
    /// anything the write did not already:
    /// - fs: no. The store worker checked the SHA-256 and fsynced; a read a
    ///   moment later comes from the page cache, not the disk.
    /// - s3: no. Every upload carries its SHA-256 and the server refuses
    ///   bytes that do not match it.
    /// - ipfs: no. The adapter computes each object's CID from its bytes
    ///   and compares the node's answer on every write.
    /// - arweave: yes. A gateway accepts a transaction before its data can
    ///   be read, and a read is what shows it arrived.
    pub fn read_back_by_default(&self) -> bool {
        matches!(self, Kind::Arweave(_))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Kind::Fs(_) => "fs",
            Kind::S3(_) => "s3",
            Kind::Ipfs(_) => "ipfs",
            Kind::Arweave(_) => "arweave",
        }
    }
}

/// Keys every kind accepts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Common {
    /// Bytes the network may hold (e.g. a 150 GB free tier).
    pub quota_bytes: Option<u64>,
    /// Price per GB-month stored, per GB read out, and once per GB written
    /// (permanent storage), in any one currency.
    pub price_gb_month: Option<f64>,
    pub price_gb_egress: Option<f64>,
    pub price_gb_once: Option<f64>,
    /// Where the data lives, for compliance rules (`eu`, `us`, `global`).
    pub jurisdiction: Option<String>,
    /// Whether Cairn may delete there (false: retention never tries, and
    /// the network refuses deletes). Permanent networks never delete.
    pub can_delete: Option<bool>,
    /// Whether verify reads back, after each backup, every data object the
    /// backup wrote here. Unset: the kind's default
    /// ([`Kind::read_back_by_default`]). Off, verify holds those objects on
    /// the store worker's word (it checked each one's SHA-256 before a
    /// write the network acknowledged), still reads back the chunk list
    /// and manifest, and says so in its report; `cairn health --full`
    /// reads everything whenever asked.
    pub read_back: Option<bool>,
}

impl NetworkConfig {
    pub fn new(name: impl Into<String>, kind: Kind) -> Self {
        NetworkConfig {
            name: name.into(),
            common: Common::default(),
            kind,
        }
    }

    /// Whether verify reads back what a backup stored here (`read_back`,
    /// else the kind's default).
    pub fn read_back(&self) -> bool {
        self.common
            .read_back
            .unwrap_or_else(|| self.kind.read_back_by_default())
    }

    /// The environment variable that holds one of this network's secrets.
    pub fn env_name(&self, what: &str) -> String {
        env_name(&self.name, what)
    }
}

/// `CAIRN_<NAME>_<WHAT>`: where a network's secret may come from.
pub fn env_name(network: &str, what: &str) -> String {
    format!("CAIRN_{}_{what}", network.to_uppercase().replace('-', "_"))
}

/// The same fields, as serde derives them; read through
/// [`NetworkConfig`]'s `TryFrom` so that errors name the network.
#[derive(Deserialize)]
struct Raw {
    name: String,
    #[serde(flatten)]
    common: Common,
    #[serde(flatten)]
    kind: Kind,
}

impl TryFrom<serde_json::Value> for NetworkConfig {
    type Error = String;

    fn try_from(v: serde_json::Value) -> Result<Self, String> {
        let name = match v.get("name") {
            Some(serde_json::Value::String(n)) => n.clone(),
            Some(other) => return Err(format!("a network's name must be a string, not {other}")),
            None => return Err(format!("a network without a name: {v}")),
        };
        let kind = match v.get("kind") {
            Some(serde_json::Value::String(k)) if Kind::NAMES.contains(&k.as_str()) => k.clone(),
            Some(other) => {
                return Err(format!(
                    "network {name:?}: unknown kind {other} (supported: {})",
                    Kind::NAMES.join(", ")
                ))
            }
            None => {
                return Err(format!(
                    "network {name:?}: no kind (one of {})",
                    Kind::NAMES.join(", ")
                ))
            }
        };
        let raw: Raw = serde_json::from_value(v)
            .map_err(|e| format!("network {name:?} (kind {kind}): {e}"))?;
        Ok(NetworkConfig {
            name: raw.name,
            common: raw.common,
            kind: raw.kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<NetworkConfig, String> {
        NetworkConfig::try_from(v)
    }

    #[test]
    fn each_kind_takes_its_own_keys_and_the_common_ones() {
        let n = parse(
            json!({"name": "storj", "kind": "s3", "bucket": "b", "region": "eu1",
                             "quota_bytes": 10, "can_delete": false}),
        )
        .unwrap();
        assert_eq!(n.common.quota_bytes, Some(10));
        assert_eq!(n.common.can_delete, Some(false));
        let Kind::S3(s3) = &n.kind else {
            panic!("{n:?}")
        };
        assert_eq!(
            (s3.bucket.as_str(), s3.region.as_deref()),
            ("b", Some("eu1"))
        );
        // Serializing gives the same keys back.
        assert_eq!(parse(serde_json::to_value(&n).unwrap()).unwrap(), n);
        let fs = parse(json!({"name": "local", "kind": "fs"})).unwrap();
        assert_eq!(fs.kind, Kind::Fs(FsConfig { path: None }));
    }

    #[test]
    fn read_back_follows_the_kind_unless_set() {
        let fs = parse(json!({"name": "local", "kind": "fs"})).unwrap();
        assert!(!fs.read_back());
        let fs = parse(json!({"name": "local", "kind": "fs", "read_back": true})).unwrap();
        assert!(fs.read_back());
        let s3 = parse(json!({"name": "s", "kind": "s3", "bucket": "b"})).unwrap();
        assert!(!s3.read_back());
        let ar = parse(
            json!({"name": "a", "kind": "arweave", "endpoint": "http://x", "wallet_file": "/w"}),
        )
        .unwrap();
        assert!(ar.read_back());
        let ar = parse(json!({"name": "a", "kind": "arweave", "endpoint": "http://x", "wallet_file": "/w", "read_back": false}))
            .unwrap();
        assert!(!ar.read_back());
        let err = parse(json!({"name": "s", "kind": "s3", "bucket": "b", "read_back": "yes"}))
            .unwrap_err();
        assert!(
            err.contains("network \"s\"") && err.contains("yes"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_key_is_named_with_the_network_and_its_kind() {
        let err = parse(json!({"name": "storj", "kind": "s3", "bucket": "b", "bukcet": "c"}))
            .unwrap_err();
        assert!(
            err.contains("network \"storj\" (kind s3)") && err.contains("`bukcet`"),
            "{err}"
        );
        // A key of another kind is as wrong as a typo.
        let err = parse(json!({"name": "local", "kind": "fs", "bucket": "b"})).unwrap_err();
        assert!(
            err.contains("network \"local\" (kind fs)") && err.contains("`bucket`"),
            "{err}"
        );
        let err = parse(json!({"name": "s3", "kind": "s3"})).unwrap_err();
        assert!(err.contains("missing field `bucket`"), "{err}");
        let err =
            parse(json!({"name": "a", "kind": "arweave", "endpoint": "http://x"})).unwrap_err();
        assert!(err.contains("missing field `wallet_file`"), "{err}");
        let err = parse(json!({"name": "x", "kind": "tape"})).unwrap_err();
        assert!(err.contains("unknown kind \"tape\""), "{err}");
        let err = parse(json!({"name": "x"})).unwrap_err();
        assert!(err.contains("network \"x\": no kind"), "{err}");
        let err =
            parse(json!({"name": "s", "kind": "s3", "bucket": "b", "object_lock_mode": "strict"}))
                .unwrap_err();
        assert!(
            err.contains("strict") && err.contains("governance"),
            "{err}"
        );
        let err = parse(json!({"name": "s", "kind": "s3", "bucket": "b", "quota_bytes": "lots"}))
            .unwrap_err();
        assert!(
            err.contains("network \"s\"") && err.contains("lots"),
            "{err}"
        );
    }
}
