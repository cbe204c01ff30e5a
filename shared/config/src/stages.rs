//! The stages' own settings: how many messages each works on at once, how
//! long verify waits, how often repair and the checkpoint signer run, and
//! the per-dataset redundancy policies. (Shared components define their
//! sections beside themselves; a stage's tunables are read by `cairn serve`,
//! which hands each stage its numbers.)

use cairn_lifecycle::{Policy, PolicyError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a dataset's backups go and how many verified copies they need.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetPolicy {
    /// Target networks (empty: every configured network).
    pub networks: Vec<String>,
    /// Verified copies for `completed` (unset: every target network).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_copies: Option<u32>,
    /// `"replicate"` (the default: every pack whole on every target
    /// network) or `"erasure k/n"`: each pack cut into `n` Reed-Solomon
    /// shards, one per target network in the order `networks` gives, any
    /// `k` of which rebuild it (`n/k` of the size; `n - k` networks may be
    /// lost). Backup metadata and keys stay whole on every target network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<String>,
    /// Whether `cairn shred` can destroy this dataset (default true): its
    /// key is kept only on networks that can delete. `false` puts its key
    /// on every target network, so that one that cannot delete (Arweave)
    /// restores it alone, and no shred can ever destroy it there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shreddable: Option<bool>,
    /// Compliance profiles every backup of the dataset is held to
    /// (`["sox"]`), besides those its tags select.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Networks a backup goes to instead of a target network it would take
    /// past its `quota_bytes`, in order of preference. With none that has
    /// room, the full network is dropped if `min_copies` allows, and
    /// otherwise the backup is refused, naming the quota.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overflow: Vec<String>,
}

impl DatasetPolicy {
    /// The erasure coding `redundancy` names, if any.
    pub fn erasure(&self) -> Result<Option<cairn_events::Erasure>, String> {
        match self.redundancy.as_deref().map(str::trim) {
            None | Some("replicate") => Ok(None),
            Some(r) if r.starts_with("erasure") => cairn_events::Erasure::parse(r).map(Some),
            Some(r) => Err(format!(
                "{r:?}: not a redundancy (\"replicate\" or \"erasure k/n\", e.g. \"erasure 3/5\")"
            )),
        }
    }
}

/// `[ingest]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Backups one ingest worker reads at once.
    pub concurrency: usize,
    /// Keep a files cache (restic's and borg's): a file whose size, mtime,
    /// ctime and inode are unchanged since the dataset's last completed
    /// backup on this host is not read again. `cairn backup --force-read`
    /// reads everything once.
    #[serde(default = "yes")]
    pub files_cache: bool,
    /// Where the files caches live (default `<data_dir>/cache/files`). They
    /// hold keyed hashes of paths, file stats and chunk ids: no names, no data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_cache_dir: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            concurrency: 2,
            files_cache: true,
            files_cache_dir: None,
        }
    }
}

/// `[encrypt]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptConfig {
    /// Chunks one encrypt worker seals at once.
    pub concurrency: usize,
}

impl Default for EncryptConfig {
    fn default() -> Self {
        EncryptConfig { concurrency: 8 }
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Objects one store worker writes to its network at once (raise it for
    /// networks with long round trips, e.g. Arweave with `confirmations`).
    pub concurrency: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { concurrency: 8 }
    }
}

/// `[verify]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Seconds verify waits for every object to reach the networks before
    /// declaring the backup degraded or failed.
    pub timeout_secs: u64,
    /// Backups one verify worker checks at once.
    pub concurrency: usize,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            timeout_secs: 300,
            concurrency: 4,
        }
    }
}

/// `[ledger]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// Events appended in one transaction, at most.
    pub batch: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig { batch: 500 }
    }
}

/// `[retention]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// A backup the ledger shows unfinished holds off a sweep of the
    /// collector on its networks (it may have deduplicated against a marked
    /// chunk) until it finishes, or until nothing has been recorded of it
    /// for this many seconds (it was abandoned, and may be forgotten).
    pub running_backup_secs: u64,
    /// The collector deletes a chunk only once it has been found
    /// unreferenced for this long: longer than any backup runs. At least
    /// `running_backup_secs`.
    pub gc_grace_secs: u64,
    /// Pause between condemning due chunks and the collector's last look at
    /// the references, for a backup that looked them up just before.
    pub gc_settle_secs: u64,
    /// Seconds between two collections by the retention service; 0 (the
    /// default) leaves collecting to `cairn gc`.
    pub collect_interval_secs: u64,
    /// Seconds between two rounds in which the retention service applies
    /// the policies (forgets what `cairn retention plan` drops); 0 (the
    /// default) leaves it to `cairn retention apply`.
    pub apply_interval_secs: u64,
    /// Seconds between two rounds in which the retention service migrates
    /// backups to the archives their compliance profiles name; 0 (the
    /// default) leaves it to `cairn compliance migrate`.
    #[serde(default)]
    pub migrate_interval_secs: u64,
    /// The policy of every dataset without its own
    /// (`[retention.default_policy]`; unset: the seeds' 90 days, 2555 days
    /// for backups tagged `compliance`). Given, it replaces that default
    /// whole rather than adding to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_policy: Option<Policy>,
    /// A dataset's own policy (`[retention.policies.<dataset>]`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, Policy>,
    /// Scheduled restore drills (`[retention.drills]`).
    #[serde(default)]
    pub drills: DrillsConfig,
}

/// `[retention.drills]`: when the retention service restores backups to
/// prove they come back. Drills read backup data, so they need the
/// repository passphrase: they run only where one is configured, and no
/// other service but restore ever decrypts data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrillsConfig {
    /// When drills run (`0 3 * * 0`, seconds optional); unset: never (run
    /// one with `cairn drill`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA time zone `cron` is read in (default UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Older backups drilled per dataset, chosen at random, besides the
    /// dataset's newest.
    pub sample: usize,
    /// Where file backups are restored (a private directory is made in it
    /// and removed afterwards); unset: the system's temporary directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch_dir: Option<PathBuf>,
    /// A PostgreSQL server on which a drill may create a scratch database
    /// to restore a dump into, and drop it after (a role with CREATEDB;
    /// never a production server). Unset: dumps are read and checked, not
    /// loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_url: Option<String>,
    /// A file holding that server's password (first line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_password_file: Option<PathBuf>,
}

impl Default for DrillsConfig {
    fn default() -> Self {
        DrillsConfig {
            cron: None,
            timezone: None,
            sample: 1,
            scratch_dir: None,
            postgres_url: None,
            postgres_password_file: None,
        }
    }
}

impl DrillsConfig {
    /// When drills are due, if they are scheduled; a bad expression or
    /// zone is refused by name.
    pub fn cadence(
        &self,
    ) -> Result<Option<cairn_lifecycle::Checked>, cairn_lifecycle::ScheduleError> {
        match &self.cron {
            None => Ok(None),
            Some(c) => {
                cairn_lifecycle::cadence("retention.drills", c, self.timezone.as_deref()).map(Some)
            }
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            running_backup_secs: 3600,
            gc_grace_secs: 86_400,
            gc_settle_secs: 30,
            collect_interval_secs: 0,
            apply_interval_secs: 0,
            migrate_interval_secs: 0,
            default_policy: None,
            policies: BTreeMap::new(),
            drills: DrillsConfig::default(),
        }
    }
}

impl RetentionConfig {
    /// The policy that decides `dataset`'s backups, and the name errors
    /// give it.
    pub fn policy_for(&self, dataset: &str) -> (Policy, String) {
        match self.policies.get(dataset) {
            Some(p) => (p.clone(), format!("retention.policies.{dataset}")),
            None => (
                self.default_policy
                    .clone()
                    .unwrap_or_else(Policy::seeds_default),
                "retention.default_policy".into(),
            ),
        }
    }

    /// Every policy refused now, at load, rather than when it first runs.
    pub fn check(&self) -> Result<(), PolicyError> {
        if let Some(p) = &self.default_policy {
            p.check("retention.default_policy")?;
        }
        for (dataset, p) in &self.policies {
            p.check(&format!("retention.policies.{dataset}"))?;
        }
        Ok(())
    }
}

/// `[repair]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairConfig {
    /// Seconds between two looks for degraded backups by the automatic
    /// repair (`cairn serve repair`, part of `all`); 0 turns it off. A
    /// backup that stays degraded is tried again after twice the wait each
    /// time, up to six hours.
    pub interval_secs: u64,
}

impl Default for RepairConfig {
    fn default() -> Self {
        RepairConfig { interval_secs: 300 }
    }
}

/// `[audit]`: the ledger's checkpoint signer and the witness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The file holding the ledger's checkpoint signing key (made by `cairn
    /// audit keygen`; keep it off the database host). Its neighbour
    /// `<file>.last` remembers the last checkpoint signed, so that no
    /// inconsistent one is ever signed.
    pub signing_key_file: Option<PathBuf>,
    /// The log's public key (a file made by `cairn audit keygen`), for hosts
    /// that check checkpoints without the secret key. Default: the signing
    /// key file's `.pub` neighbour.
    pub public_key_file: Option<PathBuf>,
    /// The witness's own key (made by `cairn audit keygen`, like the log's,
    /// and kept apart from it): the verify service then cosigns each
    /// checkpoint it has proven consistent with the last one it saw. Its
    /// `.last` neighbour remembers that checkpoint.
    pub witness_key_file: Option<PathBuf>,
    /// Seconds between checkpoints signed by `cairn serve checkpoint` (part
    /// of `all` when a signing key is configured), while the ledger grows;
    /// also how often the witness looks.
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

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            signing_key_file: None,
            public_key_file: None,
            witness_key_file: None,
            checkpoint_interval_secs: 300,
        }
    }
}

/// `[console]`: the ops console (`cairn console`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Where it listens (`--listen` overrides).
    pub listen: String,
    /// Listen on an address other machines reach. Off: the console is for
    /// this machine (reach it over SSH); on, put TLS in front of it.
    pub allow_remote: bool,
    /// Operators who may act (repair...): one `NAME SHA256-OF-TOKEN` per
    /// line, as `cairn console token NAME` prints. None: read-only.
    pub operators_file: Option<std::path::PathBuf>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            listen: "127.0.0.1:8321".into(),
            allow_remote: false,
            operators_file: None,
        }
    }
}
