//! `cairn audit log`: the ledger in log order, filtered.

use crate::{context, out, output};
use anyhow::{bail, Context};
use cairn_config::Config;
use cairn_ledger::query::{EntryFilter, EntryRow};

#[derive(clap::Args)]
pub struct Args {
    /// Entries recorded at or after this time (RFC 3339, e.g. 2026-11-24T08:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// One event kind (e.g. backup.completed).
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    dataset: Option<String>,
    #[arg(long)]
    backup: Option<String>,
    #[arg(long)]
    limit: Option<i64>,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Entries {
    entries: Vec<EntryRow>,
}

pub async fn run(cfg: &Config, a: Args) -> anyhow::Result<u8> {
    if let Some(since) = &a.since {
        time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
            .with_context(|| {
                format!("--since {since:?}: expected an RFC 3339 time such as 2026-11-24T08:00:00Z")
            })?;
    }
    if a.limit.is_some_and(|l| l < 0) {
        bail!("--limit must not be negative");
    }
    let filter = EntryFilter {
        since: a.since,
        kind: a.kind,
        dataset: a.dataset,
        backup_id: a.backup,
        limit: a.limit,
    };
    let pg = context::ledger(cfg).await?;
    let entries = cairn_ledger::query::entries(&pg, &filter).await?;
    if a.json {
        output::json(&Entries { entries })?;
        return Ok(0);
    }
    for r in &entries {
        out!(
            "{:>8}  {}  {:<18} {}  {}",
            r.seq,
            r.recorded_at,
            r.kind,
            r.backup_id,
            r.dataset.as_deref().unwrap_or("-")
        );
    }
    Ok(0)
}
