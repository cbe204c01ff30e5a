//! Legal holds on the stored objects themselves: where a network locks
//! objects (S3 Object Lock), a backup under legal hold has an S3 legal hold
//! on every one of its objects (data objects it shares included), so that
//! nobody holding the bucket's keys can delete them either until it is
//! lifted. Cairn's own hold (`backup.held`) is in force already; this is the
//! storage's.

use super::{load, CareError};
use cairn_events::{BackupId, LockReport};
use cairn_repo::Repository;
use futures::StreamExt;

/// Places (`on`) or lifts the legal hold on every object of `id` on each
/// of its networks that lock objects; what each did. Lifting leaves it on
/// the objects another held backup shares. Networks that lock nothing are
/// left out.
pub async fn legal_hold(
    repo: &Repository,
    pg: &tokio_postgres::Client,
    id: &BackupId,
    on: bool,
) -> Result<Vec<LockReport>, CareError> {
    let b = load(repo, pg, id).await?;
    let mut paths = b.objects.paths();
    if !on {
        // What another held backup shares (its chunks, packs) keeps the
        // storage's legal hold: lifting it would expose that backup.
        let mut shared = std::collections::HashSet::new();
        for h in cairn_ledger::query::holds(pg).await? {
            if h.backup_id == id.as_str() {
                continue;
            }
            let Ok(other) = h.backup_id.parse::<BackupId>() else {
                continue;
            };
            match load(repo, pg, &other).await {
                Ok(o) => shared.extend(o.objects.paths()),
                // Unknown: keep every data object held.
                Err(_) => {
                    shared.extend(paths.iter().take(b.objects.chunk_count).cloned());
                }
            }
        }
        paths.retain(|p| !shared.contains(p));
    }
    let mut reports = Vec::new();
    for net in b.targets.networks().iter().filter(|n| n.locks()) {
        let results: Vec<Result<(), String>> = futures::stream::iter(paths.clone())
            .map(|p| {
                let net = net.clone();
                async move {
                    match net.legal_hold(&p, on).await {
                        Ok(Some(l)) if l.legal_hold == on => Ok(()),
                        Ok(_) => Err(format!("{p}: the legal hold did not change")),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        reports.push(LockReport {
            network: net.name().to_string(),
            objects: (paths.len() - failed.len()) as u64,
            failed: failed.len() as u64,
            detail: failed.first().cloned().unwrap_or_default(),
        });
    }
    Ok(reports)
}
