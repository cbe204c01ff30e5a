//! `cairn recover`: the day everything but one network is gone (for an
//! erasure-coded dataset, all but `k`). `list` and `restore` read those
//! networks with the key alone — no broker, no ledger
//! database is contacted; `rebuild` records its backups again in a new,
//! empty ledger so that the services go on (a new log: the old one went
//! with the database and the AUDIT stream).

use crate::commands::restore::{print_report, restore_from, TargetArgs};
use crate::{context, out, output};
use anyhow::Context;
use cairn_config::Config;
use cairn_events::BackupId;
use cairn_repo::catalogue::{Listed, Presence};
use cairn_repo::Repository;

#[derive(clap::Subcommand)]
pub enum RecoverCommand {
    /// List the backups one network holds, from its encrypted catalogue.
    List(ListArgs),
    /// Restore a backup from one network alone (an erasure-coded one from
    /// any `k` of its networks: name each).
    Restore(Box<RestoreArgs>),
    /// Record a repository's backups in a new, empty ledger (after the
    /// database and the broker were lost), so that the services go on.
    Rebuild(RebuildArgs),
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// The network to read (a name from the configuration).
    #[arg(long)]
    network: String,
    #[arg(long)]
    dataset: Option<String>,
    #[arg(long)]
    tag: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    backup_id: BackupId,
    /// The network to read (a name from the configuration); repeat it for
    /// an erasure-coded backup, which needs `k` of its networks.
    #[arg(long, required = true)]
    network: Vec<String>,
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: &Config, c: RecoverCommand) -> anyhow::Result<u8> {
    match c {
        RecoverCommand::List(a) => list(cfg, a).await,
        RecoverCommand::Restore(a) => restore(cfg, *a).await,
        RecoverCommand::Rebuild(a) => rebuild(cfg, a).await,
    }
}

/// Only the named network of the configuration.
fn one_network(cfg: &Config, name: &str) -> anyhow::Result<Repository> {
    let repo = context::repo(cfg)?;
    let known: Vec<&str> = repo.networks().iter().map(|n| n.name()).collect();
    if !known.contains(&name) {
        anyhow::bail!(
            "no network {name} in the configuration (it names: {})",
            known.join(", ")
        );
    }
    Ok(repo.subset(&[name.to_string()]))
}

#[derive(serde::Serialize)]
struct Listing<'a> {
    network: &'a str,
    backups: Vec<Listed>,
}

async fn list(cfg: &Config, a: ListArgs) -> anyhow::Result<u8> {
    let repo = one_network(cfg, &a.network)?;
    let keyring = context::unlock(cfg, &repo, "listing backups reads the catalogue").await?;
    let net = repo.networks()[0].clone();
    let mut backups = repo
        .catalogue(&net, &keyring.sealer())
        .await
        .with_context(|| format!("cannot list the backups on network {}", a.network))?;
    backups.retain(|l| match &l.entry {
        Some(e) => {
            a.dataset.as_ref().is_none_or(|d| &e.dataset == d)
                && a.tag.as_ref().is_none_or(|t| e.tags.contains(t))
        }
        // Unreadable: shown unless filtering by what cannot be read.
        None => a.dataset.is_none() && a.tag.is_none(),
    });
    backups.reverse();
    if a.json {
        output::json(&Listing {
            network: &a.network,
            backups,
        })?;
        return Ok(0);
    }
    out!(
        "{:<36}  {:<16} {:<8} {:<20} {:>10} {:>7}  {:<7}  TAGS",
        "ID",
        "DATASET",
        "SOURCE",
        "REQUESTED",
        "READ",
        "CHUNKS",
        "HERE"
    );
    for l in &backups {
        let here = match &l.presence {
            Presence::Whole => "whole",
            Presence::Partial { .. } => "partial",
        };
        match &l.entry {
            Some(e) => out!(
                "{:<36}  {:<16} {:<8} {:<20} {:>10} {:>7}  {:<7}  {}",
                l.backup_id,
                e.dataset,
                cairn_repo::catalogue::source_kind(&e.source),
                to_the_second(&e.requested_at),
                output::bytes(e.stats.bytes_read),
                e.stats.chunks_total,
                here,
                e.tags.join(",")
            ),
            None => out!(
                "{:<36}  unreadable: {}",
                l.backup_id,
                l.unreadable.as_deref().unwrap_or("")
            ),
        }
        if let Presence::Partial { missing } = &l.presence {
            out!("    missing on {}: {}", a.network, missing.join(", "));
        }
    }
    Ok(0)
}

/// An RFC 3339 time without its fraction of a second, as `cairn list`
/// shows it.
fn to_the_second(t: &str) -> String {
    match (t.find('.'), t.ends_with('Z')) {
        (Some(dot), true) => format!("{}Z", &t[..dot]),
        _ => t.to_string(),
    }
}

async fn restore(cfg: &Config, a: RestoreArgs) -> anyhow::Result<u8> {
    for n in &a.network {
        one_network(cfg, n)?;
    }
    let repo = context::repo(cfg)?.subset(&a.network);
    a.target.check()?;
    let keyring = context::unlock(cfg, &repo, "restoring decrypts the backup").await?;
    // Nothing is recorded: on the day this runs there may be no broker, and
    // waiting for one would only delay the restore.
    if let Some((target, report)) =
        restore_from(repo, &keyring, &a.backup_id, a.target, a.json).await?
    {
        print_report(&a.backup_id, &target, &report, a.json)?;
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct RebuildArgs {
    /// A network to read (repeat it); every configured network by default.
    #[arg(long)]
    network: Vec<String>,
    /// Seconds to wait for the audit-ledger service to record what was
    /// found (0: publish and return).
    #[arg(long, default_value_t = 300)]
    wait: u64,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Rebuilt {
    repo_id: String,
    networks: Vec<String>,
    backups: Vec<RebuiltBackup>,
    skipped: Vec<String>,
    objects: u64,
    bytes_read: u64,
    /// Whether the ledger recorded every backup within `--wait`.
    recorded: bool,
}

#[derive(serde::Serialize)]
struct RebuiltBackup {
    backup_id: BackupId,
    dataset: String,
    status: String,
    networks: Vec<String>,
}

/// Most objects in one `objects.recovered` event: a pack's digest names up
/// to 256 chunks (~25 KiB of JSON), and an event must stay well under NATS's
/// 1 MiB message.
const OBJECTS_PER_EVENT: usize = 24;

async fn rebuild(cfg: &Config, a: RebuildArgs) -> anyhow::Result<u8> {
    use cairn_events::{Envelope, Event, RecoveredBackup, RecoveredObjects, Recovery};
    let repo = if a.network.is_empty() {
        context::repo(cfg)?
    } else {
        let mut names = Vec::new();
        for n in &a.network {
            one_network(cfg, n)?;
            names.push(n.clone());
        }
        context::repo(cfg)?.subset(&names)
    };
    // An empty ledger only: recording a repository twice in one log would
    // tell an auditor the same history twice.
    let pg = context::ledger(cfg).await?;
    let (entries, backups) = cairn_ledger::query::recorded(&pg).await?;
    if entries > 0 || backups > 0 {
        anyhow::bail!(
            "the ledger already holds {entries} log entries and {backups} backups: `cairn recover rebuild` only fills an empty ledger (after the database was lost). If the log was lost but the AUDIT stream survives, `cairn audit rebuild` is the way"
        );
    }
    let bus = context::bus(cfg, "cairn-recover").await?;
    let keyring = context::unlock(cfg, &repo, "rebuilding reads the encrypted catalogue").await?;
    let survey = repo.survey(&keyring.sealer()).await?;
    let by = context::user();
    let first = Envelope::new(
        "cli",
        BackupId::repo(),
        Event::LedgerRecovered(Recovery {
            repo_id: survey.repo_id.clone(),
            networks: survey.networks.clone(),
            backups: survey.backups.len() as u64,
            skipped: survey.skipped.clone(),
            by: by.clone(),
        }),
        &[survey.repo_id.as_bytes()],
    );
    bus.publish_event(&first).await?;
    // The datasets' keys (format 4), so that the next backup of a dataset
    // wraps to the key its earlier backups used and deduplicates against
    // them, instead of starting a new key.
    if let Some(writer) = keyring.writer() {
        let found = repo.dataset_keys(&keyring.sealer()).await;
        let names: std::collections::BTreeSet<&str> = survey
            .backups
            .iter()
            .map(|f| f.entry.dataset.as_str())
            .collect();
        for name in names {
            let tag = writer.dataset_tag(name);
            for (fingerprint, (t, public)) in &found {
                if *t != tag {
                    continue;
                }
                let env = Envelope::new(
                    "cli",
                    BackupId::repo(),
                    Event::DatasetKeyed(cairn_events::DatasetKeyed {
                        tag: cairn_events::KeyId(tag.0),
                        fingerprint: cairn_events::KeyId(*fingerprint),
                        public_key: public.to_hex(),
                        mac: hex::encode(writer.public_mac(name, public)),
                    }),
                    &[public.to_hex().as_bytes()],
                );
                bus.publish_event(&env).await?;
            }
        }
    }
    let mut objects = 0u64;
    let mut listed = Vec::new();
    for f in &survey.backups {
        let id = &f.entry.backup_id;
        // Objects grouped by the networks holding them, then in batches.
        let mut by_networks: std::collections::BTreeMap<&Vec<String>, Vec<_>> = Default::default();
        for (d, on) in &f.objects {
            by_networks.entry(on).or_default().push(d.clone());
        }
        for (on, ds) in by_networks {
            for batch in ds.chunks(OBJECTS_PER_EVENT) {
                objects += batch.len() as u64;
                let env = Envelope::new(
                    "cli",
                    id.clone(),
                    Event::ObjectsRecovered(RecoveredObjects {
                        networks: on.clone(),
                        objects: batch.to_vec(),
                        shards: batch
                            .iter()
                            .flat_map(|d| {
                                let path = cairn_repo::layout::object(&d.object);
                                f.shards.get(&path).into_iter().flatten().map(
                                    move |(network, index)| cairn_events::RecoveredShard {
                                        path: path.clone(),
                                        network: network.clone(),
                                        index: *index,
                                    },
                                )
                            })
                            .collect(),
                    }),
                    &[batch[0].sha256.as_bytes()],
                );
                bus.publish_event(&env).await?;
            }
        }
        let status = if f.missing_on.is_empty() {
            "completed"
        } else {
            "degraded"
        };
        let e = &f.entry;
        // Ingest wrote the entry before anything was stored: what the backup
        // added is what was first seen with it.
        let stats = cairn_events::Stats {
            bytes_stored: f.objects.iter().map(|(d, _)| d.len).sum(),
            ..e.stats.clone()
        };
        let env = Envelope::new(
            "cli",
            id.clone(),
            Event::BackupRecovered(RecoveredBackup {
                dataset: e.dataset.clone(),
                tags: e.tags.clone(),
                source: e.source.clone(),
                requested_at: e.requested_at.clone(),
                requested_by: e.requested_by.clone(),
                ingested_at: e.ingested_at.clone(),
                stats,
                networks: f.holders.clone(),
                status: status.into(),
                chunk_pages: e.chunk_pages,
                merkle_root: e.merkle_root.clone(),
                sealed_root: f.sealed_root.clone(),
                data_key: e
                    .data_key
                    .as_deref()
                    .and_then(|k| cairn_events::KeyId::parse(k).ok()),
                wal: e.wal.clone(),
            }),
            &[e.merkle_root.as_bytes()],
        );
        bus.publish_event(&env).await?;
        listed.push(RebuiltBackup {
            backup_id: id.clone(),
            dataset: e.dataset.clone(),
            status: status.into(),
            networks: f.holders.clone(),
        });
    }
    let recorded = wait_recorded(&pg, listed.len() as i64, a.wait).await?;
    let report = Rebuilt {
        repo_id: survey.repo_id,
        networks: survey.networks,
        backups: listed,
        skipped: survey.skipped,
        objects,
        bytes_read: survey.bytes_read,
        recorded,
    };
    if a.json {
        output::json(&report)?;
    } else {
        for b in &report.backups {
            out!(
                "{}  {:<16} {:<10} on {}",
                b.backup_id,
                b.dataset,
                b.status,
                b.networks.join(", ")
            );
        }
        for s in &report.skipped {
            out!("skipped {s}");
        }
        out!(
            "found {} backups and {} objects on {} ({} read and hashed); {}",
            report.backups.len(),
            report.objects,
            report.networks.join(", "),
            output::bytes(report.bytes_read),
            if report.recorded {
                "the ledger records them (a new log, whose first entry is ledger.recovered)"
            } else {
                "published on the AUDIT stream, not yet recorded: start the audit-ledger service (`cairn serve`)"
            }
        );
    }
    Ok(if report.recorded && report.skipped.is_empty() {
        0
    } else {
        crate::exit::DEGRADED
    })
}

/// Waits up to `secs` for the ledger to hold `want` backups.
async fn wait_recorded(pg: &tokio_postgres::Client, want: i64, secs: u64) -> anyhow::Result<bool> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let (_, backups) = cairn_ledger::query::recorded(pg).await?;
        if backups >= want {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
