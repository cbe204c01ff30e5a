//! Quotas at the door: before a backup reads anything, each target network
//! with a quota is asked, through the ledger's count of what it holds,
//! whether this backup fits; one that does not is replaced by an overflow
//! network of the dataset, dropped, or the backup is refused naming the
//! quota ([`cairn_ledger::usage::admit`] decides).

use crate::job::{IngestContext, JobError};
use cairn_events::{BackupRequest, Reroute, Source};
use cairn_ledger::usage;
use std::collections::BTreeMap;
use std::path::Path;

/// Recent backups whose additions bound the estimate.
const RECENT: i64 = 5;

/// Where `req` goes, given the quotas of its `targets`.
pub async fn admit(
    ctx: &IngestContext,
    req: &BackupRequest,
    targets: Vec<String>,
    min_copies: u32,
) -> Result<(Vec<String>, Vec<Reroute>), JobError> {
    let overflow: Vec<String> = ctx
        .policies
        .get(&req.dataset)
        .map(|p| p.overflow.clone())
        .unwrap_or_default();
    let asked: Vec<&String> = targets.iter().chain(overflow.iter()).collect();
    if !asked.iter().any(|n| ctx.quotas.contains_key(*n)) {
        return Ok((targets, Vec::new()));
    }
    let mut room = BTreeMap::new();
    for n in asked {
        if let Some(q) = ctx.quotas.get(n) {
            room.insert(n.clone(), (Some(*q), usage::used(&ctx.pg, n).await?));
        }
    }
    let (estimate, basis) = estimate(&ctx.pg, &req.dataset, &req.source).await?;
    let admitted = usage::admit(&targets, min_copies, &overflow, &room, estimate, &basis)
        .map_err(|e| JobError::Source(e.to_string()))?;
    for r in &admitted.rerouted {
        tracing::warn!(dataset = %req.dataset, from = %r.from, to = ?r.to, reason = %r.reason, "a target network is at its quota");
    }
    Ok((admitted.targets, admitted.rerouted))
}

/// What the backup may add to a network, and on what that rests: a WAL
/// file's size; else the most the dataset's recent completed backups of
/// the same kind of source added (a WAL segment says nothing of a base
/// backup); else, for its first, the size of the files it names (before
/// compression and deduplication, so never less than it will add).
async fn estimate(
    pg: &tokio_postgres::Client,
    dataset: &str,
    source: &Source,
) -> Result<(u64, String), JobError> {
    if let Source::Wal { size, name, .. } = source {
        return Ok((*size, format!("the size of WAL file {name}")));
    }
    let rows = pg
        .query(
            "SELECT coalesce((stats->>'bytes_stored')::bigint, 0) FROM backups
             WHERE dataset = $1 AND status = 'completed' AND source->>'type' = $2
             ORDER BY requested_at DESC NULLS LAST LIMIT $3",
            &[&dataset, &source.kind(), &RECENT],
        )
        .await?;
    if !rows.is_empty() {
        let most = rows.iter().map(|r| r.get::<_, i64>(0)).max().unwrap_or(0) as u64;
        return Ok((
            most,
            format!("the most one of its last {} backups added", rows.len()),
        ));
    }
    match source {
        Source::Paths { paths } => {
            let paths = paths.clone();
            let total = tokio::task::spawn_blocking(move || {
                paths.iter().map(|p| tree_size(Path::new(p))).sum::<u64>()
            })
            .await
            .unwrap_or(0);
            Ok((total, "the size of its files: its dataset's first backup".into()))
        }
        _ => Ok((
            0,
            "unknown before the first backup of a stream or database: the store workers hold it to the quota"
                .into(),
        )),
    }
}

/// Bytes of the regular files under `p` (symbolic links not followed).
fn tree_size(p: &Path) -> u64 {
    walkdir::WalkDir::new(p)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}
