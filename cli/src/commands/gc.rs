//! `cairn gc`: one collection now. Deletes chunks that no remaining backup
//! references, once they have stayed unreferenced for the grace period
//! (`[retention] gc_grace_secs`); prints, per network, what it marked,
//! revived and freed, or why it swept nothing. Exit 1 when a network's
//! sweep was aborted.

use crate::{context, out, output};
use cairn_bus::Bus;
use cairn_config::Config;
use cairn_repo::Repository;
use cairn_retention::collect::Collector;
use std::time::Duration;

#[derive(clap::Args)]
pub struct GcArgs {
    #[arg(long)]
    json: bool,
    /// Override `[retention] gc_grace_secs` for this run (`0s`, `2h`, `7d`).
    /// With `0s` a chunk found unreferenced is deleted in the same run:
    /// only for a repository no backup is writing to.
    #[arg(long, value_parser = humantime::parse_duration)]
    grace: Option<Duration>,
}

/// The collector as configured (`grace` overrides the grace period).
pub async fn collector(
    cfg: &Config,
    bus: &Bus,
    repo: Repository,
    grace: Option<Duration>,
) -> anyhow::Result<Collector> {
    Ok(Collector {
        bus: bus.clone(),
        repo,
        pg: context::ledger(cfg).await?,
        grace: grace.unwrap_or(Duration::from_secs(cfg.retention.gc_grace_secs)),
        settle: Duration::from_secs(cfg.retention.gc_settle_secs),
        running_window: Duration::from_secs(cfg.retention.running_backup_secs),
        source: context::whoami("gc"),
    })
}

pub async fn gc(cfg: &Config, a: GcArgs) -> anyhow::Result<u8> {
    let bus = context::bus(cfg, "cairn-gc").await?;
    let c = collector(cfg, &bus, context::repo(cfg)?, a.grace).await?;
    let done = c.collect(chrono::Utc::now()).await?;
    let aborted = done.networks.iter().any(|n| n.outcome == "aborted");
    if a.json {
        output::json(&done)?;
    } else {
        for n in &done.networks {
            out!(
                "{}: {} ({} chunks, {} referenced; {} marked, {} revived, {} waiting; {} deleted, {} freed){}",
                n.network,
                n.outcome,
                n.chunks,
                n.referenced,
                n.marked,
                n.revived,
                n.waiting,
                n.deleted,
                output::bytes(n.bytes_freed),
                n.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
            );
        }
    }
    Ok(if aborted { 1 } else { 0 })
}
