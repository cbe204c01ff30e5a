//! Configuration: built-in defaults, then `cairn.toml`, then `CAIRN_*`
//! environment variables (nested keys with `__`, e.g. `CAIRN_NATS__URL`;
//! `CAIRN_PASSPHRASE` is short for `CAIRN_KEYS__PASSPHRASE`).
//!
//! This crate only puts the sections together: each shared component's
//! settings are defined beside it (`[nats]` in `cairn_bus`, `[postgres]` in
//! `cairn_ledger`, `[telemetry]` in `cairn_telemetry`, each network kind's
//! keys beside its adapter in `cairn_networks`), and the stages' tunables
//! are in [`stages`]. Every section refuses keys it does not know, so a typo
//! in the file or in a `CAIRN_<SECTION>__…` variable is named, never ignored.
//!
//! The defaults work with nothing configured: NATS on 127.0.0.1:4222,
//! PostgreSQL on 127.0.0.1:5432 (user `postgres`, database `cairn`), and one
//! local-directory network under the data directory.

pub mod stages;

pub use cairn_bus::NatsConfig;
pub use cairn_ledger::PostgresConfig;
pub use cairn_networks::{Kind, NetworkConfig};
pub use cairn_telemetry::TelemetryConfig;
pub use stages::{
    AuditConfig, ConsoleConfig, DatasetPolicy, DrillsConfig, EncryptConfig, IngestConfig,
    LedgerConfig, RepairConfig, RetentionConfig, StoreConfig, VerifyConfig,
};

use cairn_crypto::Secret;
use cairn_lifecycle::ScheduleExt;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where local state lives (the default network, the client's scratch).
    pub data_dir: PathBuf,
    pub nats: NatsConfig,
    pub postgres: PostgresConfig,
    pub keys: KeysConfig,
    /// Storage networks. Empty means one local directory network, `local`.
    pub networks: Vec<NetworkConfig>,
    pub telemetry: TelemetryConfig,
    pub ingest: IngestConfig,
    pub encrypt: EncryptConfig,
    pub store: StoreConfig,
    pub verify: VerifyConfig,
    pub ledger: LedgerConfig,
    pub retention: RetentionConfig,
    pub repair: RepairConfig,
    pub audit: AuditConfig,
    pub console: ConsoleConfig,
    /// Redundancy policy per dataset name (`[datasets.<name>]`).
    pub datasets: std::collections::BTreeMap<String, DatasetPolicy>,
    /// Backup schedules (`[[schedules]]`), fired by the retention service.
    pub schedules: Vec<cairn_lifecycle::Schedule>,
    /// Compliance profiles (`[compliance.profiles.<name>]`) beside the
    /// built-in ones.
    #[serde(default)]
    pub compliance: cairn_compliance::ComplianceConfig,
}

/// `[keys]`: where the repository passphrase comes from.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The repository passphrase (prefer the environment or a file). Never
    /// serialized.
    #[serde(default, skip_serializing)]
    pub passphrase: Option<Secret>,
    /// A file holding the passphrase (first line).
    pub passphrase_file: Option<PathBuf>,
    /// Threshold share files (`cairn key split`) that open the repository
    /// together instead of a passphrase (`--share FILE`, repeated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub share_files: Vec<PathBuf>,
    /// The writer file (`cairn key writer --out FILE`) that ingest runs
    /// with instead of the passphrase: write-only, it opens no backup.
    pub writer_file: Option<PathBuf>,
}

impl std::fmt::Debug for KeysConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysConfig")
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("passphrase_file", &self.passphrase_file)
            .field("share_files", &self.share_files)
            .field("writer_file", &self.writer_file)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            nats: NatsConfig::default(),
            postgres: PostgresConfig::default(),
            keys: KeysConfig::default(),
            networks: Vec::new(),
            telemetry: TelemetryConfig::default(),
            ingest: IngestConfig::default(),
            encrypt: EncryptConfig::default(),
            store: StoreConfig::default(),
            verify: VerifyConfig::default(),
            ledger: LedgerConfig::default(),
            retention: RetentionConfig::default(),
            repair: RepairConfig::default(),
            audit: AuditConfig::default(),
            console: ConsoleConfig::default(),
            datasets: Default::default(),
            schedules: Vec::new(),
            compliance: Default::default(),
        }
    }
}

impl Config {
    /// Where ingest keeps its files caches; none when `[ingest] files_cache`
    /// is off.
    pub fn files_cache_dir(&self) -> Option<PathBuf> {
        self.ingest.files_cache.then(|| {
            self.ingest
                .files_cache_dir
                .clone()
                .unwrap_or_else(|| self.data_dir.join("cache").join("files"))
        })
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
    SecretFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Config {
    /// Loads defaults → `file` (or `./cairn.toml` if it exists) → environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(file))
    }

    pub fn figment(file: Option<&Path>) -> Figment {
        let mut f = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(p) => f = f.merge(Toml::file_exact(p)),
            None => f = f.merge(Toml::file("cairn.toml")),
        }
        // Only `CAIRN_<SECTION>…` variables are configuration: the
        // environment also holds `CAIRN_<NETWORK>_SECRET_ACCESS_KEY` and the
        // like, which are read where they are needed.
        let sections = Self::sections();
        f.merge(
            Env::prefixed("CAIRN_")
                .ignore(&["PASSPHRASE", "CONFIG"])
                .filter(move |k| {
                    let top = k.as_str().split("__").next().unwrap_or_default();
                    sections.iter().any(|s| s.eq_ignore_ascii_case(top))
                })
                .split("__"),
        )
        .merge(
            Env::raw()
                .only(&["CAIRN_PASSPHRASE"])
                .map(|_| "keys.passphrase".into()),
        )
    }

    /// The top-level keys: those of the serialized defaults.
    fn sections() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    pub fn from_figment(f: Figment) -> Result<Self, ConfigError> {
        let mut c: Config = f.extract().map_err(Box::new)?;
        if c.networks.is_empty() {
            c.networks.push(NetworkConfig::new(
                "local",
                Kind::Fs(cairn_networks::fs::config::FsConfig::default()),
            ));
        }
        for n in &mut c.networks {
            if let Kind::Fs(fs) = &mut n.kind {
                if fs.path.is_none() {
                    fs.path = Some(c.data_dir.join("networks").join(&n.name));
                }
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
            for (key, price) in [
                ("price_gb_month", n.common.price_gb_month),
                ("price_gb_egress", n.common.price_gb_egress),
                ("price_gb_once", n.common.price_gb_once),
            ] {
                if price.is_some_and(|p| !p.is_finite() || p < 0.0) {
                    return Err(ConfigError::Invalid(format!(
                        "network {:?}: {key} = {} is not a price (a number, 0 or more)",
                        n.name,
                        price.unwrap_or_default()
                    )));
                }
            }
            if n.common.quota_bytes == Some(0) {
                return Err(ConfigError::Invalid(format!(
                    "network {:?}: quota_bytes = 0 would refuse every write; leave it out for no quota",
                    n.name
                )));
            }
            if let Kind::Ipfs(i) = &n.kind {
                if i.pinning_endpoint.is_none() && i.pinning_token_file.is_some() {
                    return Err(ConfigError::Invalid(format!(
                        "network {:?} (kind ipfs): pinning_token_file without a pinning_endpoint",
                        n.name
                    )));
                }
            }
        }
        self.retention
            .check()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.retention.gc_grace_secs < self.retention.running_backup_secs {
            return Err(ConfigError::Invalid(format!(
                "retention.gc_grace_secs = {} is shorter than retention.running_backup_secs = {}: a chunk could be swept while a backup that leans on it still runs",
                self.retention.gc_grace_secs, self.retention.running_backup_secs
            )));
        }
        self.retention
            .drills
            .cadence()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for s in &self.schedules {
            s.check().map_err(|e| ConfigError::Invalid(e.to_string()))?;
            for n in &s.networks {
                if self.network(n).is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "schedule of dataset {:?}: unknown network {n:?}",
                        s.dataset
                    )));
                }
            }
        }
        self.compliance
            .check(self.datasets.values().flat_map(|p| &p.profiles))
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for (dataset, p) in &self.datasets {
            for n in &p.networks {
                if self.network(n).is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "datasets.{dataset}: unknown network {n:?}"
                    )));
                }
            }
            for n in &p.overflow {
                if self.network(n).is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "datasets.{dataset}.overflow: unknown network {n:?}"
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
            let erasure = p.erasure().map_err(|e| {
                ConfigError::Invalid(format!("datasets.{dataset}.redundancy = {e}"))
            })?;
            if let Some(e) = erasure {
                if p.min_copies.is_some() {
                    return Err(ConfigError::Invalid(format!(
                        "datasets.{dataset}: min_copies applies to whole copies, not to {e} (which needs {} of its {} shards)",
                        e.k, e.n
                    )));
                }
                if e.n as usize != targets {
                    return Err(ConfigError::Invalid(format!(
                        "datasets.{dataset}.redundancy = {e}: one shard per target network, and it has {targets} ({})",
                        if p.networks.is_empty() { "every configured network".to_string() } else { p.networks.join(", ") }
                    )));
                }
            }
        }
        Ok(())
    }

    /// `quota_bytes` of every network that has one.
    pub fn quotas(&self) -> std::collections::BTreeMap<String, u64> {
        self.networks
            .iter()
            .filter_map(|n| Some((n.name.clone(), n.common.quota_bytes?)))
            .collect()
    }

    /// The passphrase from config, environment or passphrase file.
    pub fn passphrase(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(p) = &self.keys.passphrase {
            if !p.is_empty() {
                return Ok(Some(p.clone()));
            }
        }
        if let Some(path) = &self.keys.passphrase_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                path: path.clone(),
                source,
            })?;
            let line = text.lines().next().unwrap_or("").to_string();
            return Ok(Some(Secret::new(line)).filter(|s| !s.is_empty()));
        }
        Ok(None)
    }

    /// The compliance profiles a backup of `dataset` carrying `tags` is
    /// held to: the dataset's, and those its tags select.
    pub fn profiles_for(
        &self,
        dataset: &str,
        tags: &[String],
    ) -> Vec<(String, cairn_compliance::Profile)> {
        self.selector().applying(dataset, tags)
    }

    /// The profiles and which dataset names which, for the stages.
    pub fn selector(&self) -> cairn_compliance::Selector {
        cairn_compliance::Selector {
            config: self.compliance.clone(),
            datasets: self
                .datasets
                .iter()
                .filter(|(_, p)| !p.profiles.is_empty())
                .map(|(d, p)| (d.clone(), p.profiles.clone()))
                .collect(),
        }
    }

    /// Whether `cairn shred` may destroy `dataset` (`shreddable`, default
    /// true).
    pub fn shreddable(&self, dataset: &str) -> bool {
        self.datasets
            .get(dataset)
            .and_then(|p| p.shreddable)
            .unwrap_or(true)
    }

    /// Every configured network as compliance rules see it.
    pub fn network_facts(&self) -> Vec<cairn_compliance::NetworkFacts> {
        self.networks
            .iter()
            .map(cairn_compliance::NetworkFacts::of)
            .collect()
    }

    pub fn network(&self, name: &str) -> Option<&NetworkConfig> {
        self.networks.iter().find(|n| n.name == name)
    }

    pub fn network_names(&self) -> Vec<String> {
        self.networks.iter().map(|n| n.name.clone()).collect()
    }

    /// Names not among the configured networks (a request's or a CLI
    /// option's), refused with the list of those that are.
    pub fn check_networks<'a>(
        &self,
        names: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), ConfigError> {
        for n in names {
            if self.network(n).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "unknown network {n:?} (configured: {})",
                    self.network_names().join(", ")
                )));
            }
        }
        Ok(())
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
                c.networks[0].kind,
                Kind::Fs(cairn_networks::fs::config::FsConfig {
                    path: Some(PathBuf::from("/home/u/.local/share/cairn/networks/local"))
                })
            );
            jail.create_file(
                "cairn.toml",
                "[nats]\nprefix = \"fromfile\"\nmax_deliver = 7\n",
            )?;
            jail.set_env("CAIRN_NATS__PREFIX", "fromenv");
            jail.set_env("CAIRN_PASSPHRASE", "s3cret");
            // Not configuration: a network's secret, and the test harness's own.
            jail.set_env("CAIRN_LOCAL_SECRET_ACCESS_KEY", "x");
            jail.set_env("CAIRN_KEEP_TEST_DIRS", "1");
            let c = Config::load(None).unwrap();
            assert_eq!(c.nats.prefix, "fromenv");
            assert_eq!(c.nats.max_deliver, 7);
            assert_eq!(c.passphrase().unwrap().unwrap().expose(), "s3cret");
            assert!(!format!("{c:?}").contains("s3cret"));
            assert!(!serde_json::to_string(&c).unwrap().contains("s3cret"));
            Ok(())
        });
    }

    #[test]
    fn a_datasets_policy_replaces_the_default_whole() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "cairn.toml",
                "[retention.default_policy]\nkeep_daily = 7\n[retention.policies.db]\nkeep_last = 2\n",
            )?;
            let c = Config::load(None).unwrap();
            let (p, name) = c.retention.policy_for("other");
            assert_eq!((p.keep_daily, p.keep_within), (Some(7), None), "{p:?}");
            assert_eq!(name, "retention.default_policy");
            assert_eq!(c.retention.policy_for("db").0.keep_last, Some(2));
            jail.create_file("cairn.toml", "")?;
            let c = Config::load(None).unwrap();
            let (p, _) = c.retention.policy_for("db");
            assert_eq!(p, cairn_lifecycle::Policy::seeds_default());
            Ok(())
        });
    }

    #[test]
    fn a_datasets_erasure_coding_is_read_and_checked_against_its_networks() {
        figment::Jail::expect_with(|jail| {
            let nets: String = (1..=5)
                .map(|i| {
                    format!("[[networks]]\nname = \"n{i}\"\nkind = \"fs\"\npath = \"/x/{i}\"\n")
                })
                .collect();
            let load = |jail: &mut figment::Jail, dataset: &str| {
                jail.create_file("cairn.toml", &format!("{nets}[datasets.d]\n{dataset}"))
                    .unwrap();
                Config::load(None).map_err(|e| e.to_string())
            };
            let c = load(jail, "redundancy = \"erasure 3/5\"\n").unwrap();
            let e = c.datasets["d"].erasure().unwrap().unwrap();
            assert_eq!((e.k, e.n), (3, 5));
            let c = load(jail, "redundancy = \"replicate\"\nmin_copies = 2\n").unwrap();
            assert_eq!(c.datasets["d"].erasure(), Ok(None));
            for (bad, says) in [
                (
                    "redundancy = \"erasure 3/4\"\n",
                    "one shard per target network, and it has 5",
                ),
                (
                    "redundancy = \"erasure 2/3\"\nnetworks = [\"n1\", \"n2\"]\n",
                    "it has 2 (n1, n2)",
                ),
                ("redundancy = \"erasure 5/5\"\n", "needs 1 ≤ k < n ≤ 255"),
                (
                    "redundancy = \"erasure three/5\"\n",
                    "\"three\" is not a number",
                ),
                ("redundancy = \"mirror\"\n", "not a redundancy"),
                (
                    "redundancy = \"erasure 3/5\"\nmin_copies = 2\n",
                    "min_copies applies to whole copies",
                ),
            ] {
                let e = load(jail, bad).unwrap_err();
                assert!(e.contains("datasets.d") && e.contains(says), "{bad}: {e}");
            }
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            let err = |jail: &mut figment::Jail, toml: &str| {
                jail.create_file("cairn.toml", toml).unwrap();
                Config::load(None).unwrap_err().to_string()
            };
            let e = err(jail, "[[networks]]\nname = \"a.b\"\nkind = \"fs\"\n");
            assert!(e.contains("network name \"a.b\""), "{e}");
            let e = err(
                jail,
                "[[networks]]\nname = \"x\"\nkind = \"fs\"\nprice_gb_month = -0.5\n",
            );
            assert!(
                e.contains("network \"x\"") && e.contains("price_gb_month = -0.5"),
                "{e}"
            );
            let e = err(
                jail,
                "[[networks]]\nname = \"x\"\nkind = \"fs\"\nquota_bytes = 0\n",
            );
            assert!(e.contains("quota_bytes = 0"), "{e}");
            let e = err(
                jail,
                "[[networks]]\nname = \"x\"\nkind = \"fs\"\n[datasets.d]\noverflow = [\"y\"]\n",
            );
            assert!(
                e.contains("datasets.d.overflow") && e.contains("\"y\""),
                "{e}"
            );
            let e = err(jail, "[[networks]]\nname = \"x\"\nkind = \"tape\"\n");
            assert!(e.contains("unknown kind \"tape\""), "{e}");
            let e = err(jail, "[nats]\nreplica = 3\n");
            assert!(e.contains("`replica`") && e.contains("nats"), "{e}");
            let e = err(jail, "[nats]\nmax_deliver = \"many\"\n");
            assert!(e.contains("max_deliver"), "{e}");
            let e = err(jail, "dtaa_dir = \"/x\"\n");
            assert!(e.contains("`dtaa_dir`"), "{e}");
            let e = err(
                jail,
                "[[networks]]\nname = \"s3\"\nkind = \"s3\"\nbucket = \"b\"\nendpont = \"http://x\"\n",
            );
            assert!(
                e.contains("network \"s3\" (kind s3)") && e.contains("`endpont`"),
                "{e}"
            );
            let e = err(jail, "[telemetry]\nformat = \"xml\"\n");
            assert!(e.contains("xml") && e.contains("json"), "{e}");
            let e = err(jail, "[retention.policies.db]\nkeep_within = \"soon\"\n");
            assert!(e.contains("soon") && e.contains("keep_within"), "{e}");
            let e = err(jail, "[retention.policies.db]\ntimezone = \"UTC\"\n");
            assert!(
                e.contains("retention.policies.db") && e.contains("no keep rule"),
                "{e}"
            );
            let e = err(
                jail,
                "[retention.default_policy]\nkeep_last = 3\ntimezone = \"Europe/Berln\"\n",
            );
            assert!(e.contains("Europe/Berln"), "{e}");
            let sched = |cron: &str, extra: &str| {
                format!("[[schedules]]\ndataset = \"plant\"\ncron = \"{cron}\"\nsource = {{ type = \"paths\", paths = [\"/srv\"] }}\n{extra}")
            };
            let e = err(jail, &sched("0 */6 * *", ""));
            assert!(e.contains("0 */6 * *") && e.contains("plant"), "{e}");
            let e = err(
                jail,
                &sched("0 */6 * * *", "timezone = \"Europe/Atlantis\"\n"),
            );
            assert!(e.contains("Europe/Atlantis"), "{e}");
            let e = err(jail, &sched("0 */6 * * *", "networks = [\"tape\"]\n"));
            assert!(e.contains("unknown network \"tape\""), "{e}");
            let e = err(jail, &sched("0 */6 * * *", "jiter = \"5m\"\n"));
            assert!(e.contains("`jiter`"), "{e}");
            jail.create_file("cairn.toml", &sched("0 */6 * * *", "jitter = \"5m\"\n"))?;
            assert_eq!(Config::load(None).unwrap().schedules.len(), 1);
            let e = err(jail, "[retention.drills]\ncron = \"0 3 * *\"\n");
            assert!(
                e.contains("retention.drills") && e.contains("0 3 * *"),
                "{e}"
            );
            let e = err(
                jail,
                "[retention.drills]\ncron = \"0 3 * * 0\"\ntimezone = \"Mars\"\n",
            );
            assert!(e.contains("retention.drills") && e.contains("Mars"), "{e}");
            jail.create_file(
                "cairn.toml",
                "[retention.drills]\ncron = \"0 3 * * 0\"\nsample = 2\n",
            )?;
            let c = Config::load(None).unwrap();
            assert!(c.retention.drills.cadence().unwrap().is_some());
            assert_eq!(c.retention.drills.sample, 2);
            let e = err(jail, "[retention.policies.db]\nkeep_lats = 3\n");
            assert!(e.contains("`keep_lats`"), "{e}");
            // A typo in a section's variable is named too.
            jail.create_file("cairn.toml", "")?;
            jail.set_env("CAIRN_NATS__URLL", "nats://x");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("`urll`"), "{e}");
            Ok(())
        });
    }
}
