//! What commands need from the configuration: the broker (with the
//! topology in place), the ledger's database under a role, the networks,
//! the passphrase, and who is asking.

use anyhow::Context;
use cairn_bus::Bus;
use cairn_config::Config;
use cairn_ledger::Role;
use cairn_repo::{Credentials, Opened, Repository};
use std::time::Duration;

pub fn passphrase(cfg: &Config) -> anyhow::Result<cairn_crypto::Secret> {
    cfg.passphrase()?
        .context("no passphrase: set CAIRN_PASSPHRASE or keys.passphrase_file")
}

/// What opens the repository: the share files given (`--share`, or
/// `keys.share_files`) or else the passphrase. `why` says what needs it.
pub fn credentials(cfg: &Config, why: &str) -> anyhow::Result<Credentials> {
    if !cfg.keys.share_files.is_empty() {
        let mut shares = Vec::new();
        for path in &cfg.keys.share_files {
            let name = path.display().to_string();
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read key share {name}"))?;
            shares.push((name.clone(), cairn_crypto::Share::from_json(&name, &bytes)?));
        }
        return Ok(Credentials::Shares(shares));
    }
    Ok(Credentials::Passphrase(cfg.passphrase()?.with_context(|| {
        format!("{why}: set CAIRN_PASSPHRASE or keys.passphrase_file, or give key shares with --share FILE")
    })?))
}

/// Whether this process was given a passphrase or key shares.
pub fn has_credentials(cfg: &Config) -> anyhow::Result<bool> {
    Ok(!cfg.keys.share_files.is_empty() || cfg.passphrase()?.is_some())
}

/// The repository opened with [`credentials`]: master key and keyring,
/// for the key commands.
pub async fn open(cfg: &Config, repo: &Repository, why: &str) -> anyhow::Result<Opened> {
    Ok(repo.open_keys(&credentials(cfg, why)?).await?)
}

/// The repository's keyring, opened with [`credentials`].
pub async fn unlock(
    cfg: &Config,
    repo: &Repository,
    why: &str,
) -> anyhow::Result<cairn_crypto::Keyring> {
    Ok(open(cfg, repo, why).await?.keyring)
}

/// What a writer (ingest) holds: from `keys.writer_file` when set (a
/// write-only worker: no passphrase, nothing that opens a backup), else from
/// the keyring the credentials open, keeping only the writer's part. Either
/// way the writer must belong to the repository the networks hold.
pub async fn writer(
    cfg: &Config,
    repo: &Repository,
    why: &str,
) -> anyhow::Result<cairn_crypto::Writer> {
    let config = repo.config().await?;
    let (writer, from) = match &cfg.keys.writer_file {
        Some(path) => {
            let name = path.display().to_string();
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read writer file {name}"))?;
            let file = cairn_crypto::WriterFile::from_json(&name, &bytes)?;
            if file.repo_id != config.repo_id {
                anyhow::bail!(
                    "writer file {name} is for repository {}, the networks hold repository {}",
                    file.repo_id,
                    config.repo_id
                );
            }
            (file.writer()?, format!("writer file {name}"))
        }
        None => {
            let keyring = unlock(cfg, repo, why).await?;
            let w = keyring.writer().with_context(|| {
                format!(
                    "repository {} is of format {}, which predates write-only backups: run `cairn key upgrade` once (this build restores from it but writes only format {})",
                    config.repo_id,
                    config.format,
                    cairn_repo::format::FORMAT
                )
            })?;
            (w, "the repository key".to_string())
        }
    };
    cairn_ingest::job::writes_to(&config, &writer).with_context(|| format!("with {from}"))?;
    Ok(writer)
}

/// Connects to NATS as `name`, with the streams and consumers in place.
pub async fn bus(cfg: &Config, name: &str) -> Result<Bus, cairn_bus::BusError> {
    let b = Bus::connect(&cfg.nats, name).await?;
    b.ensure_topology(&cfg.network_names()).await?;
    Ok(b)
}

/// [`bus`] for commands that work without the broker: the reason it is
/// away instead of an error, within 3 s.
pub async fn bus_if_up(cfg: &Config, name: &str) -> Result<Bus, String> {
    bus_within(cfg, name, Duration::from_secs(3)).await
}

/// [`bus_if_up`], waiting at most `wait`.
pub async fn bus_within(cfg: &Config, name: &str, wait: Duration) -> Result<Bus, String> {
    match tokio::time::timeout(wait, bus(cfg, name)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("NATS did not answer".into()),
    }
}

/// Connects to NATS for an optional side effect (recording an event); a
/// command that works without the broker only warns when it is away.
pub async fn try_bus(cfg: &Config) -> Option<Bus> {
    bus_if_up(cfg, "cairn-cli")
        .await
        .map_err(|e| crate::err!("cairn: warning: not recorded in the ledger: {e}"))
        .ok()
}

/// The ledger's database, migrated, as the login's own role.
pub async fn ledger(cfg: &Config) -> Result<tokio_postgres::Client, cairn_ledger::DbError> {
    cairn_ledger::db::open(&cfg.postgres).await
}

/// The ledger's database, migrated, working as `role`.
pub async fn ledger_as(
    cfg: &Config,
    role: Role,
) -> Result<tokio_postgres::Client, cairn_ledger::DbError> {
    cairn_ledger::db::open_as(&cfg.postgres, role).await
}

/// The ledger as ingest reads it: the reader role, with chunk-index
/// lookups planned by index (`cairn_ledger::marks::plan_lookups_by_index`).
pub async fn ingest_ledger(cfg: &Config) -> Result<tokio_postgres::Client, cairn_ledger::DbError> {
    let pg = ledger_as(cfg, Role::Reader).await?;
    cairn_ledger::marks::plan_lookups_by_index(&pg).await?;
    Ok(pg)
}

/// Every configured network.
pub fn repo(cfg: &Config) -> Result<Repository, cairn_repo::RepoError> {
    Repository::open(&cfg.networks)
}

/// The time a command judges at: `--as-of` (RFC 3339), else now.
pub fn clock(as_of: Option<&str>) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    Ok(match as_of {
        None => chrono::Utc::now(),
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .with_context(|| {
                format!("--as-of {t:?} is not an RFC 3339 time (2027-01-31T00:00:00Z)")
            })?
            .with_timezone(&chrono::Utc),
    })
}

/// The networks of `repo` that cannot delete: they keep every byte
/// written to them.
pub fn cannot_delete(repo: &Repository) -> Vec<String> {
    repo.networks()
        .iter()
        .filter(|n| !n.capabilities().can_delete)
        .map(|n| n.name().to_string())
        .collect()
}

/// The networks of `repo` that could not destroy a dataset's key when it
/// is shredded: they cannot delete, or they lock what they hold.
pub fn cannot_erase(repo: &Repository) -> Vec<String> {
    repo.networks()
        .iter()
        .filter(|n| !n.capabilities().can_delete || n.locks())
        .map(|n| n.name().to_string())
        .collect()
}

fn host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `role@host:pid`: the source of a process's events, one per replica, so
/// the ledger shows which replica did what.
pub fn whoami(role: &str) -> String {
    format!("{role}@{}:{}", host(), std::process::id())
}

/// The user running the CLI, as `user@host` (`requested_by`, `restored_by`).
pub fn user() -> String {
    format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "cli".into()),
        host()
    )
}

/// The configuration file this process was given (`--config`), for
/// commands that write a command line calling cairn again.
static CONFIG_PATH: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();

pub fn set_config_path(p: Option<&std::path::Path>) {
    let _ = CONFIG_PATH.set(p.map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())));
}

/// The `restore_command` a restored data directory runs: this cairn, with
/// this configuration file, fetching WAL of `dataset`.
pub fn wal_fetch_command(dataset: &str) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot tell where this cairn is")?;
    let config = CONFIG_PATH.get().cloned().flatten().or_else(|| {
        std::path::absolute("cairn.toml")
            .ok()
            .filter(|p| p.exists())
    });
    let quote = |s: &str| -> anyhow::Result<String> {
        if s.contains(['"', '\\', '$', '`', '%']) {
            anyhow::bail!("{s:?} cannot be quoted for a restore_command: give --restore-command");
        }
        Ok(format!("\"{s}\""))
    };
    let mut cmd = quote(&exe.to_string_lossy())?;
    if let Some(c) = config {
        cmd += &format!(" --config {}", quote(&c.to_string_lossy())?);
    }
    cmd += &format!(" wal-fetch --dataset {} %f \"%p\"", quote(dataset)?);
    Ok(cmd)
}
