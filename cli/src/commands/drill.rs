//! `cairn drill`: restore backups into a scratch place now and record the
//! result (what the retention service does on `[retention.drills] cron`);
//! `cairn drills`: the latest drill of each dataset and its last success.

use crate::{context, out, output};
use cairn_bus::Bus;
use cairn_config::Config;
use cairn_events::BackupId;
use cairn_retention::drill::{DrillResult, Driller, ScratchServer};

#[derive(clap::Args)]
pub struct DrillArgs {
    /// Only this dataset.
    #[arg(long, conflicts_with = "backup")]
    dataset: Option<String>,
    /// Drill this backup alone.
    #[arg(long)]
    backup: Option<BackupId>,
    /// Older backups per dataset to drill besides the newest (default:
    /// `[retention.drills] sample`).
    #[arg(long)]
    sample: Option<usize>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct DrillsArgs {
    #[arg(long)]
    json: bool,
}

/// What runs drills, for the CLI and the service: it needs the key.
pub async fn driller(
    cfg: &Config,
    bus: &Bus,
    by: String,
    source: String,
) -> anyhow::Result<Driller> {
    let repo = context::repo(cfg)?;
    let keyring = context::unlock(
        cfg,
        &repo,
        "a restore drill decrypts backups and needs the repository key",
    )
    .await?;
    let d = &cfg.retention.drills;
    if let Some(url) = &d.postgres_url {
        cairn_repo::pgtools::check_url(url)
            .map_err(|e| anyhow::anyhow!("retention.drills.postgres_url: {e}"))?;
    }
    Ok(Driller {
        bus: bus.clone(),
        pg: context::ledger_as(cfg, cairn_ledger::Role::Reader).await?,
        restorer: cairn_repo::restore::Restorer::new(
            repo.fastest_first().await,
            keyring.sealer(),
            keyring.id_key(),
        ),
        scratch_dir: d.scratch_dir.clone().unwrap_or_else(std::env::temp_dir),
        postgres: d.postgres_url.clone().map(|url| ScratchServer {
            url,
            password_file: d.postgres_password_file.clone(),
        }),
        by,
        source,
    })
}

pub async fn drill(cfg: &Config, a: DrillArgs) -> anyhow::Result<u8> {
    let bus = context::bus(cfg, "cairn-cli").await?;
    let d = driller(cfg, &bus, context::user(), "cli".into()).await?;
    let results = match &a.backup {
        Some(id) => vec![d.drill_backup(id).await?],
        None => {
            d.drill_picked(
                a.dataset.as_deref(),
                a.sample.unwrap_or(cfg.retention.drills.sample),
            )
            .await?
        }
    };
    let failed = results.iter().filter(|r| !r.ok).count();
    if a.json {
        output::json(&results)?;
    } else {
        for r in &results {
            print_result(r)?;
        }
        if results.is_empty() {
            out!(
                "nothing to drill: no completed or degraded backup{}",
                match &a.dataset {
                    Some(d) => format!(" of dataset {d:?}"),
                    None => String::new(),
                }
            );
        } else {
            out!("{} drilled, {failed} failed", results.len());
        }
    }
    Ok(u8::from(failed > 0))
}

fn print_result(r: &DrillResult) -> anyhow::Result<()> {
    let d = &r.drill;
    match &d.reason {
        None => out!(
            "drill of {} ({}, {}): ok, {} in {} files, {} chunks, {} ms, restored to {} (removed)",
            r.backup_id,
            d.dataset,
            d.pick,
            output::bytes(d.bytes),
            d.files,
            d.chunks,
            d.duration_ms,
            d.target
        ),
        Some(why) => out!(
            "drill of {} ({}, {}): FAILED after {} ms: {why}",
            r.backup_id,
            d.dataset,
            d.pick,
            d.duration_ms
        ),
    }
    Ok(())
}

pub async fn drills(cfg: &Config, a: DrillsArgs) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let rows = cairn_ledger::query::drills(&pg).await?;
    if a.json {
        output::json(&rows)?;
        return Ok(0);
    }
    if rows.is_empty() {
        out!("no drill has run yet: `cairn drill`, or set [retention.drills] cron");
    }
    for r in &rows {
        let l = &r.latest;
        let last_ok = match &r.last_success {
            Some(s) if s == l => String::new(),
            Some(s) => format!(
                "; last success {} ago ({})",
                output::age(s.age_secs),
                s.backup_id
            ),
            None => "; never succeeded".into(),
        };
        out!(
            "{:<16} {} {} ago: backup {} ({}), {} in {} files, {} ms{}{}",
            r.dataset,
            if l.ok { "ok    " } else { "FAILED" },
            output::age(l.age_secs),
            l.backup_id,
            l.pick,
            output::bytes(l.bytes),
            l.files,
            l.duration_ms,
            l.reason
                .as_deref()
                .map(|w| format!(": {w}"))
                .unwrap_or_default(),
            last_ok
        );
    }
    Ok(0)
}
