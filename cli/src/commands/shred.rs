//! `cairn shred`: crypto-shredding one dataset (GDPR erasure on storage
//! that keeps what it is given). The dataset's keys are destroyed on every
//! network that can delete, its backups leave the catalogue, its files
//! caches on this host go, and the act is ledgered with what was destroyed
//! and which networks keep ciphertext no key opens.

use crate::{context, out, output};
use anyhow::bail;
use cairn_config::Config;
use cairn_events::{BackupId, Envelope, Event, KeyId, Shredded};

#[derive(clap::Args)]
pub struct ShredArgs {
    /// The dataset whose every backup becomes unreadable, everywhere.
    #[arg(long)]
    dataset: String,
    /// The dataset's name again: nothing is shredded without it.
    #[arg(long)]
    confirm: String,
    #[arg(long)]
    json: bool,
}

pub async fn shred(cfg: &Config, a: ShredArgs) -> anyhow::Result<u8> {
    let dataset = &a.dataset;
    if a.confirm != *dataset {
        bail!("--confirm must repeat the dataset's name ({dataset:?}), not {:?}: nothing was shredded", a.confirm);
    }
    let repo = context::repo(cfg)?;
    let config = repo.config().await?;
    if config.format < 4 {
        bail!(
            "repository {} is of format {}, whose datasets share keys: run `cairn key upgrade` first (backups made after it can be shredded). Nothing was shredded",
            config.repo_id,
            config.format
        );
    }
    // The act must be ledgered: the broker and the database first, before
    // anything is destroyed.
    let pg = context::ledger(cfg).await?;
    let bus = context::bus(cfg, "cairn-cli").await?;
    let keyring = context::unlock(cfg, &repo, "shredding finds the dataset's keys").await?;
    let writer = keyring
        .writer()
        .ok_or_else(|| anyhow::anyhow!("this keyring has no key pair"))?;
    let backups = cairn_ledger::query::dataset_backups(&pg, dataset).await?;
    let mut held = Vec::new();
    for (id, _) in &backups {
        if let Some(h) = cairn_ledger::query::hold(&pg, id).await? {
            held.push(format!(
                "{id} (held by {} since {}: {})",
                h.held_by, h.held_at, h.reason
            ));
        }
    }
    if !held.is_empty() {
        bail!(
            "dataset {dataset:?} has backups under legal hold: {}. Nothing was shredded; lift the holds first (`cairn release ID --reason ...`)",
            held.join(", ")
        );
    }
    // A retention a compliance rule demands outweighs erasure (GDPR Art.
    // 17(3)(b): erasure yields to a legal obligation to keep).
    let mut kept = Vec::new();
    for (id, _) in &backups {
        let Some(b) = cairn_ledger::query::backup(&pg, id).await? else {
            continue;
        };
        let profiles = cfg.profiles_for(&b.dataset, &b.tags);
        if let Some(r) = cairn_compliance::kept_by_rule(
            &profiles,
            &b.status,
            b.requested_at.as_deref(),
            b.finished_at.as_deref(),
            chrono::Utc::now(),
        ) {
            kept.push(format!("{id} ({r})"));
        }
    }
    if !kept.is_empty() {
        bail!(
            "dataset {dataset:?} has backups a compliance rule keeps: {}. Nothing was shredded",
            kept.join(", ")
        );
    }
    let running: Vec<String> = cairn_ledger::query::unfinished_backups(&pg)
        .await?
        .into_iter()
        // One silent for longer than `running_backup_secs` was abandoned.
        .filter(|u| u.dataset == *dataset && u.idle_secs <= cfg.retention.running_backup_secs)
        .map(|u| format!("{} ({})", u.backup_id, u.status))
        .collect();
    if !running.is_empty() {
        bail!(
            "dataset {dataset:?} has backups still being written: {}. Nothing was shredded; shred once they have finished",
            running.join(", ")
        );
    }
    let tag = writer.dataset_tag(dataset);
    let known: Vec<KeyId> = cairn_ledger::query::dataset_keys(&pg, &tag.to_hex())
        .await?
        .iter()
        .filter_map(|k| KeyId::parse(&k.fingerprint).ok())
        .collect();
    let ids: Vec<BackupId> = backups
        .iter()
        .filter_map(|(id, _)| BackupId::parse(id).ok())
        .collect();
    let report = repo
        .shred(&keyring.sealer(), tag, dataset, &known, &ids)
        .await?;
    let caches_removed = match cfg.files_cache_dir() {
        Some(dir) => cairn_ingest::files_cache::Store::new(dir, &config.repo_id)
            .forget_dataset(dataset)
            .unwrap_or_else(|e| {
                crate::err!("cairn: warning: the dataset's files cache was not removed: {e}");
                0
            }),
        None => 0,
    };
    let shredded = Shredded {
        dataset: dataset.clone(),
        tag: KeyId(tag.0),
        keys: report.keys.clone(),
        backups: report.backups.clone(),
        deleted_from: report.deleted_from.clone(),
        ciphertext_kept_on: report.ciphertext_kept_on.clone(),
        keys_kept_on: report.keys_kept_on.clone(),
        caches_removed,
        by: context::user(),
    };
    let env = Envelope::new(
        "cli",
        BackupId::repo(),
        Event::DatasetShredded(shredded.clone()),
        &[
            tag.to_hex().as_bytes(),
            cairn_events::now_rfc3339().as_bytes(),
        ],
    );
    bus.publish_event(&env).await?;
    if a.json {
        output::json(&shredded)?;
    } else {
        out!(
            "shredded dataset {dataset:?}: {} keys destroyed, {} backups unreadable everywhere ({} objects deleted from {})",
            report.keys.len(),
            report.backups.len(),
            report.objects_deleted,
            report.deleted_from.join(", ")
        );
        out!(
            "ciphertext no key opens stays on: {} (`cairn gc` frees its chunks on networks that can delete)",
            report.ciphertext_kept_on.join(", ")
        );
        for k in &report.keys_kept_on {
            out!("NOT destroyed: {k}");
        }
    }
    Ok(if report.keys_kept_on.is_empty() {
        0
    } else {
        crate::exit::DEGRADED
    })
}
