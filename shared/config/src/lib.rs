//! Configuration: built-in defaults, then `cairn.toml`, then `CAIRN_*`
//! environment variables (nested keys with `__`, e.g. `CAIRN_NATS__URL`;
//! `CAIRN_PASSPHRASE` is short for `CAIRN_KEYS__PASSPHRASE`).
//!
//! The defaults work with nothing configured: NATS on 127.0.0.1:4222,
//! PostgreSQL on 127.0.0.1:5432 (user `postgres`, database `cairn`), and one
//! local-directory network under the data directory.

use cairn_crypto::Secret;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Where local state lives (the default network, the client's scratch).
    pub data_dir: PathBuf,
    pub nats: NatsConfig,
    pub postgres: PostgresConfig,
    #[serde(skip_serializing, default)]
    pub keys: KeysConfig,
    /// Storage networks. Empty means one local directory network, `local`.
    pub networks: Vec<NetworkConfig>,
    pub telemetry: TelemetryConfig,
    pub verify: VerifyConfig,
    pub ingest: IngestConfig,
    pub repair: RepairConfig,
    pub audit: AuditConfig,
    /// Redundancy policy per dataset name (`[datasets.<name>]`).
    #[serde(default)]
    pub datasets: std::collections::BTreeMap<String, DatasetPolicy>,
}

/// Where a dataset's backups go and how many verified copies they need.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetPolicy {
    /// Target networks (empty: every configured network).
    pub networks: Vec<String>,
    /// Verified copies for `completed` (unset: every target network).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_copies: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NatsConfig {
    pub url: String,
    /// Prefix of every subject and stream (one token).
    pub prefix: String,
    /// Deliveries before a message is dead-lettered.
    pub max_deliver: i64,
    /// Seconds a worker has to ack before redelivery (workers send progress
    /// while busy, so this bounds recovery after a crash, not work length).
    pub ack_wait_secs: u64,
    /// Bound on plaintext chunks waiting for encrypt (memory stream).
    pub plain_max_bytes: i64,
    /// Bound on sealed objects waiting for the slowest network.
    pub sealed_max_bytes: i64,
    /// Replicas of each stream (3 in a 3-node cluster).
    pub replicas: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostgresConfig {
    /// libpq-style connection string or URL (better without a password).
    pub url: String,
    /// A file holding the password (first line), so it stays out of the URL,
    /// the environment and `docker inspect`. `PGPASSWORD` also works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

#[derive(Clone, Default, Deserialize)]
pub struct KeysConfig {
    /// The repository passphrase (prefer the environment or a file).
    pub passphrase: Option<Secret>,
    /// A file holding the passphrase (first line).
    pub passphrase_file: Option<PathBuf>,
}

impl std::fmt::Debug for KeysConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysConfig")
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("passphrase_file", &self.passphrase_file)
            .finish()
    }
}

/// One storage network. `kind` picks the protocol; the other keys are that
/// protocol's (unused ones must stay unset) or common to all.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct NetworkConfig {
    /// Name: one token of `[A-Za-z0-9_-]`, used in consumer names.
    pub name: String,
    /// Protocol: `fs` (a local directory), `s3` (any S3-compatible API:
    /// AWS, Storj's and Sia renterd's S3 gateways, Filebase, MinIO, Garage),
    /// `ipfs` (an IPFS node's Kubo RPC API) or `arweave`.
    pub kind: String,
    /// `fs`: the directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// `s3`: endpoint URL (unset: AWS for `region`); `ipfs`: the node's RPC
    /// API (`http://127.0.0.1:5001`); `arweave`: the gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `s3`: region (`us-east-1` if unset; Garage wants `garage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `s3`: bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// `s3`: key prefix inside the bucket (e.g. `cairn/`); `ipfs`: the
    /// repository's MFS directory under `/cairn/` (default: the network's
    /// name); `arweave`: the repository's `Cairn-Repo` tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// `s3`: path-style addressing (`endpoint/bucket/key`); default true when
    /// an endpoint is set, as most gateways need.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// `s3`: access key id (not secret). Unset: `CAIRN_<NAME>_ACCESS_KEY_ID`,
    /// then `AWS_ACCESS_KEY_ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// `s3`: file holding the secret access key. Unset:
    /// `CAIRN_<NAME>_SECRET_ACCESS_KEY`, then `AWS_SECRET_ACCESS_KEY`. Never
    /// in this file, never logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<PathBuf>,
    /// Bytes the network may hold (e.g. a 150 GB free tier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    /// Price per GB-month stored, per GB read out, and once per GB written
    /// (permanent storage), in any one currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_gb_month: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_gb_egress: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_gb_once: Option<f64>,
    /// Where the data lives, for compliance rules (`eu`, `us`, `global`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// Whether Cairn may delete there (false: retention never tries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_delete: Option<bool>,
    /// `arweave`: the JWK wallet file that signs transactions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wallet_file: Option<PathBuf>,
    /// `arweave`: ask the gateway to mine after each post (arlocal, the local
    /// test gateway, only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mine: Option<bool>,
    /// `s3`: objects larger than this go up as a multipart upload of parts
    /// this size (default 16 MiB; at least 5 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multipart_part_bytes: Option<u64>,
    /// `s3`: write every object under S3 Object Lock for this many days (the
    /// bucket must have been created with Object Lock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_lock_days: Option<u32>,
    /// `s3`: `compliance` (default: nobody can shorten it) or `governance`
    /// (a user with s3:BypassGovernanceRetention can).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_lock_mode: Option<String>,
    /// `arweave`: blocks on top of an object's transaction before it counts
    /// as stored (unset: accepted by the gateway, pending, is enough; 0:
    /// mined). Each object waits for this: with Arweave's ~2 min blocks,
    /// raise the store worker's concurrency with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u64>,
    /// `arweave`: how long a put waits for that (default 1800 s); then it
    /// fails and is retried, waiting on the same transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_timeout_secs: Option<u64>,
    /// `ipfs`: an IPFS Pinning Service API endpoint (e.g.
    /// `https://api.pinata.cloud/psa`) that keeps a copy of every object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinning_endpoint: Option<String>,
    /// `ipfs`: file holding the pinning service's access token. Unset:
    /// `CAIRN_<NAME>_PINNING_TOKEN`. Never in this file, never logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinning_token_file: Option<PathBuf>,
}

impl NetworkConfig {
    /// The environment variable name for one of this network's secrets.
    pub fn env_name(&self, what: &str) -> String {
        format!(
            "CAIRN_{}_{what}",
            self.name.to_uppercase().replace('-', "_")
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TelemetryConfig {
    /// `tracing` filter, e.g. `info` or `cairn=debug` (default: `info` for
    /// `serve`, `warn` for other commands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// `text` or `json`.
    pub format: String,
    /// OTLP/HTTP endpoint (e.g. `http://127.0.0.1:4318`); none = no export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyConfig {
    /// Seconds verify waits for every object to reach the networks before
    /// declaring the backup degraded or failed.
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditConfig {
    /// The file holding the ledger's checkpoint signing key (made by `cairn
    /// audit keygen`; keep it off the database host). Its neighbour
    /// `<file>.last` remembers the last checkpoint signed, so that no
    /// inconsistent one is ever signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_file: Option<PathBuf>,
    /// The log's public key (a file made by `cairn audit keygen`), for hosts
    /// that check checkpoints without the secret key. Default: the signing
    /// key file's `.pub` neighbour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
    /// The witness's own key (`cairn audit keygen --witness`): the verify
    /// service then cosigns each checkpoint it has proven consistent with the
    /// last one it saw. Its `.last` neighbour remembers that checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_key_file: Option<PathBuf>,
    /// Seconds between checkpoints signed by `cairn serve checkpoint` (part
    /// of `all` when a signing key is configured), while the ledger grows.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval_secs: u64,
}

impl AuditConfig {
    /// The log's public key file: `public_key_file`, or the signing key's
    /// `.pub` neighbour.
    pub fn public_key_path(&self) -> Option<PathBuf> {
        self.public_key_file.clone().or_else(|| {
            self.signing_key_file.as_ref().map(|k| {
                let mut p = k.as_os_str().to_owned();
                p.push(".pub");
                PathBuf::from(p)
            })
        })
    }
}

fn default_checkpoint_interval() -> u64 {
    300
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            signing_key_file: None,
            public_key_file: None,
            witness_key_file: None,
            checkpoint_interval_secs: default_checkpoint_interval(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepairConfig {
    /// Seconds between two looks for degraded backups by the automatic
    /// repair (`cairn serve repair`, part of `all`); 0 turns it off. A
    /// backup that stays degraded is tried again after twice the wait each
    /// time, up to six hours.
    pub interval_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestConfig {
    /// Backups one ingest worker reads at once.
    pub concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            nats: NatsConfig {
                url: "nats://127.0.0.1:4222".into(),
                prefix: "cairn".into(),
                max_deliver: 5,
                ack_wait_secs: 30,
                plain_max_bytes: 64 << 20,
                sealed_max_bytes: 1 << 30,
                replicas: 1,
            },
            postgres: PostgresConfig {
                url: "host=127.0.0.1 port=5432 user=postgres dbname=cairn".into(),
                password_file: None,
            },
            keys: KeysConfig::default(),
            networks: Vec::new(),
            telemetry: TelemetryConfig {
                log: None,
                format: "text".into(),
                otlp_endpoint: None,
            },
            verify: VerifyConfig { timeout_secs: 300 },
            ingest: IngestConfig { concurrency: 2 },
            repair: RepairConfig { interval_secs: 300 },
            audit: AuditConfig::default(),
            datasets: Default::default(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    match std::env::var_os("XDG_DATA_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("cairn"),
        _ => match std::env::var_os("HOME") {
            Some(h) if !h.is_empty() => PathBuf::from(h).join(".local/share/cairn"),
            _ => PathBuf::from("/var/lib/cairn"),
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("secret file {path}: {source}")]
    PassphraseFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Config {
    /// Loads defaults → `file` (or `./cairn.toml` if it exists) → environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::check_file_keys(file)?;
        Self::from_figment(Self::figment(file))
    }

    pub fn figment(file: Option<&Path>) -> Figment {
        let mut f = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(p) => f = f.merge(Toml::file_exact(p)),
            None => f = f.merge(Toml::file("cairn.toml")),
        }
        f.merge(
            Env::prefixed("CAIRN_")
                .ignore(&["PASSPHRASE", "CONFIG"])
                .split("__"),
        )
        .merge(
            Env::raw()
                .only(&["CAIRN_PASSPHRASE"])
                .map(|_| "keys.passphrase".into()),
        )
    }

    /// Refuses keys the configuration does not know (a typo would otherwise
    /// be silently ignored). Only the file is checked: the environment holds
    /// unrelated `CAIRN_*` variables too.
    fn check_file_keys(file: Option<&Path>) -> Result<(), ConfigError> {
        let path = file.unwrap_or(Path::new("cairn.toml"));
        if file.is_none() && !path.exists() {
            return Ok(());
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(_) => return Ok(()), // figment reports a missing explicit file
        };
        let value: toml::Value = text
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
        let known = serde_json::to_value(Config::default()).expect("config serializes");
        let mut unknown = Vec::new();
        unknown_keys(&value, &known, "", &mut unknown);
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(format!(
                "{}: unknown key{} {}",
                path.display(),
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", ")
            )))
        }
    }

    pub fn from_figment(f: Figment) -> Result<Self, ConfigError> {
        let mut c: Config = f.extract().map_err(Box::new)?;
        if c.networks.is_empty() {
            c.networks.push(NetworkConfig {
                name: "local".into(),
                kind: "fs".into(),
                ..NetworkConfig::default()
            });
        }
        for n in &mut c.networks {
            if n.kind == "fs" && n.path.is_none() {
                n.path = Some(c.data_dir.join("networks").join(&n.name));
            }
        }
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !token(&self.nats.prefix) {
            return Err(ConfigError::Invalid(format!(
                "nats.prefix {:?} must be one token of [A-Za-z0-9_-]",
                self.nats.prefix
            )));
        }
        if self.nats.max_deliver < 1 {
            return Err(ConfigError::Invalid(
                "nats.max_deliver must be at least 1".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for n in &self.networks {
            if !token(&n.name) {
                return Err(ConfigError::Invalid(format!(
                    "network name {:?} must be one token of [A-Za-z0-9_-]",
                    n.name
                )));
            }
            if !seen.insert(&n.name) {
                return Err(ConfigError::Invalid(format!(
                    "network {:?} is configured twice",
                    n.name
                )));
            }
            match n.kind.as_str() {
                "fs" => {}
                "s3" if n.bucket.as_deref().unwrap_or("").is_empty() => {
                    return Err(ConfigError::Invalid(format!(
                        "network {:?}: an s3 network needs a bucket",
                        n.name
                    )));
                }
                "s3" => {}
                "arweave" if n.endpoint.is_none() || n.wallet_file.is_none() => {
                    return Err(ConfigError::Invalid(format!(
                        "network {:?}: an arweave network needs an endpoint and a wallet_file",
                        n.name
                    )));
                }
                "arweave" => {}
                "ipfs" if n.endpoint.is_none() => {
                    return Err(ConfigError::Invalid(format!(
                        "network {:?}: an ipfs network needs the endpoint of a node's RPC API (e.g. http://127.0.0.1:5001)",
                        n.name
                    )));
                }
                "ipfs" if n.pinning_endpoint.is_none() && n.pinning_token_file.is_some() => {
                    return Err(ConfigError::Invalid(format!(
                        "network {:?}: pinning_token_file without a pinning_endpoint",
                        n.name
                    )));
                }
                "ipfs" => {}
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "network {:?}: unknown kind {other:?} (supported: fs, s3, ipfs, arweave)",
                        n.name
                    )))
                }
            }
        }
        for (dataset, p) in &self.datasets {
            for n in &p.networks {
                if self.network(n).is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "datasets.{dataset}: unknown network {n:?}"
                    )));
                }
            }
            let targets = if p.networks.is_empty() {
                self.networks.len()
            } else {
                p.networks.len()
            };
            if let Some(m) = p.min_copies {
                if m == 0 || m as usize > targets {
                    return Err(ConfigError::Invalid(format!(
                        "datasets.{dataset}.min_copies = {m}: must be between 1 and its {targets} networks"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The PostgreSQL password, from `postgres.password_file` or `PGPASSWORD`.
    pub fn postgres_password(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(path) = &self.postgres.password_file {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::PassphraseFile {
                    path: path.clone(),
                    source,
                })?;
            return Ok(Some(Secret::new(text.lines().next().unwrap_or(""))));
        }
        Ok(std::env::var("PGPASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .map(Secret::new))
    }

    /// The passphrase from config, environment or passphrase file.
    pub fn passphrase(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(p) = &self.keys.passphrase {
            if !p.is_empty() {
                return Ok(Some(p.clone()));
            }
        }
        if let Some(path) = &self.keys.passphrase_file {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::PassphraseFile {
                    path: path.clone(),
                    source,
                })?;
            let line = text.lines().next().unwrap_or("").to_string();
            return Ok(Some(Secret::new(line)).filter(|s| !s.is_empty()));
        }
        Ok(None)
    }

    pub fn network(&self, name: &str) -> Option<&NetworkConfig> {
        self.networks.iter().find(|n| n.name == name)
    }

    pub fn network_names(&self) -> Vec<String> {
        self.networks.iter().map(|n| n.name.clone()).collect()
    }
}

impl NetworkConfig {
    /// Every key set, so that serializing it lists them all (no `..`
    /// default: a new field must be added here to be accepted in a file).
    fn all_keys() -> NetworkConfig {
        NetworkConfig {
            name: String::new(),
            kind: String::new(),
            path: Some(PathBuf::new()),
            endpoint: Some(String::new()),
            region: Some(String::new()),
            bucket: Some(String::new()),
            key_prefix: Some(String::new()),
            path_style: Some(true),
            access_key_id: Some(String::new()),
            secret_access_key_file: Some(PathBuf::new()),
            quota_bytes: Some(0),
            price_gb_month: Some(0.0),
            price_gb_egress: Some(0.0),
            price_gb_once: Some(0.0),
            jurisdiction: Some(String::new()),
            can_delete: Some(true),
            wallet_file: Some(PathBuf::new()),
            mine: Some(false),
            pinning_endpoint: Some(String::new()),
            pinning_token_file: Some(PathBuf::new()),
            multipart_part_bytes: Some(0),
            object_lock_days: Some(0),
            object_lock_mode: Some(String::new()),
            confirmations: Some(0),
            confirm_timeout_secs: Some(0),
        }
    }
}

/// Keys of `value` that `known` (the serialized defaults) does not have.
fn unknown_keys(value: &toml::Value, known: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    let toml::Value::Table(t) = value else { return };
    for (k, v) in t {
        let path = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        let expected = match (at, k.as_str()) {
            // Not serialized (secrets) or empty by default: spelled out here.
            ("", "keys") => Some(serde_json::json!({"passphrase": "", "passphrase_file": ""})),
            ("", "networks") => {
                Some(serde_json::to_value(NetworkConfig::all_keys()).expect("serializes"))
            }
            // Dataset names are free; DatasetPolicy itself refuses unknown keys.
            ("", "datasets") => Some(serde_json::Value::Null),
            ("telemetry", "log")
            | ("telemetry", "otlp_endpoint")
            | ("postgres", "password_file")
            | ("audit", "signing_key_file")
            | ("audit", "public_key_file")
            | ("audit", "witness_key_file") => Some(serde_json::Value::Null),
            _ => known.get(k).cloned(),
        };
        match (expected, v) {
            (None, _) => out.push(path),
            (Some(e), toml::Value::Array(items)) if k == "networks" => {
                for (i, item) in items.iter().enumerate() {
                    unknown_keys(item, &e, &format!("networks[{i}]"), out);
                }
            }
            (Some(e @ serde_json::Value::Object(_)), toml::Value::Table(_)) => {
                unknown_keys(v, &e, &path, out)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
// figment's Jail API returns its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_file_then_env() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("HOME", "/home/u");
            let c = Config::load(None).unwrap();
            assert_eq!(c.nats.url, "nats://127.0.0.1:4222");
            assert_eq!(c.networks.len(), 1);
            assert_eq!(
                c.networks[0].path.as_deref(),
                Some(Path::new("/home/u/.local/share/cairn/networks/local"))
            );
            jail.create_file(
                "cairn.toml",
                "[nats]\nprefix = \"fromfile\"\nmax_deliver = 7\n",
            )?;
            jail.set_env("CAIRN_NATS__PREFIX", "fromenv");
            jail.set_env("CAIRN_PASSPHRASE", "s3cret");
            let c = Config::load(None).unwrap();
            assert_eq!(c.nats.prefix, "fromenv");
            assert_eq!(c.nats.max_deliver, 7);
            assert_eq!(c.passphrase().unwrap().unwrap().expose(), "s3cret");
            assert!(!format!("{c:?}").contains("s3cret"));
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "cairn.toml",
                "[[networks]]\nname = \"a.b\"\nkind = \"fs\"\n",
            )?;
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("network name \"a.b\""), "{err}");
            jail.create_file(
                "cairn.toml",
                "[[networks]]\nname = \"x\"\nkind = \"tape\"\n",
            )?;
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("unknown kind \"tape\""), "{err}");
            jail.create_file("cairn.toml", "[nats]\nreplica = 3\n")?;
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("unknown key nats.replica"), "{err}");
            jail.create_file("cairn.toml", "[nats]\nmax_deliver = \"many\"\n")?;
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("max_deliver"), "{err}");
            Ok(())
        });
    }
}
