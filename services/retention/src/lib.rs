//! The retention stage. For now: `forget`. It removes a backup's manifest
//! first (so the backup is gone even if what follows is interrupted), then its
//! chunk list, then every chunk that no other backup's chunk list names.
//! It needs no key: chunk lists are public. Policies and schedules come later.

use cairn_bus::{Bus, Delivery, Failure, Handler};
use cairn_events::subjects::stage;
use cairn_events::{decode, BackupId, ChunkId, Envelope, Event, Forgotten, ObjectKey};
use cairn_repo::{layout, Repository};
use std::collections::HashSet;
use std::sync::Arc;

pub struct RetentionWorker {
    pub bus: Bus,
    pub repo: Repository,
    pub source: String,
}

/// The chunk ids a backup's chunk list pages name, read from any network.
async fn chunks_of(repo: &Repository, backup: &BackupId) -> Result<HashSet<ChunkId>, String> {
    let mut pages = HashSet::new();
    for n in repo.networks() {
        if let Ok(list) = n.list(&layout::backup_dir(backup)).await {
            pages.extend(list.into_iter().filter(|p| p.contains("/chunks.")));
        }
    }
    let mut ids = HashSet::new();
    for path in pages {
        let page: u32 = path
            .rsplit('.')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let (p, _) = repo
            .fetch(&path, &path, |b| cairn_repo::decode_page(backup, page, &b))
            .await
            .map_err(|e| e.to_string())?;
        ids.extend(p.ids);
    }
    Ok(ids)
}

impl RetentionWorker {
    async fn forget(&self, backup: &BackupId) -> Result<Forgotten, String> {
        let doomed = chunks_of(&self.repo, backup).await?;
        let mut live = HashSet::new();
        for other in self.repo.list_backups().await.map_err(|e| e.to_string())? {
            if &other != backup {
                live.extend(chunks_of(&self.repo, &other).await?);
            }
        }
        let mut removed_from = Vec::new();
        let mut retained_on = Vec::new();
        let mut deleted = 0u64;
        for net in self.repo.networks() {
            if !net.capabilities().can_delete {
                retained_on.push(net.name().to_string());
                continue;
            }
            let manifest = layout::object(&ObjectKey::Manifest {
                backup_id: backup.clone(),
            });
            net.delete(&manifest).await.map_err(|e| e.to_string())?;
            for p in net
                .list(&layout::backup_dir(backup))
                .await
                .map_err(|e| e.to_string())?
            {
                net.delete(&p).await.map_err(|e| e.to_string())?;
            }
            for id in doomed.difference(&live) {
                let object = ObjectKey::Chunk { id: *id };
                let path = layout::object(&object);
                if net.exists(&path).await.map_err(|e| e.to_string())? {
                    net.delete(&path).await.map_err(|e| e.to_string())?;
                    let env = Envelope::new(
                        self.source.clone(),
                        backup.clone(),
                        Event::ObjectDeleted {
                            network: net.name().to_string(),
                            object,
                        },
                        &[net.name().as_bytes(), path.as_bytes()],
                    );
                    self.bus
                        .publish_event(&env)
                        .await
                        .map_err(|e| e.to_string())?;
                    deleted += 1;
                }
            }
            removed_from.push(net.name().to_string());
        }
        Ok(Forgotten {
            chunks_deleted: deleted,
            networks: removed_from,
            retained_on,
        })
    }
}

#[async_trait::async_trait]
impl Handler for RetentionWorker {
    async fn handle(&self, d: &Delivery) -> Result<(), Failure> {
        let env: Envelope =
            decode(&d.payload, "event").map_err(|e| Failure::Permanent(e.to_string()))?;
        if !matches!(env.event, Event::ForgetRequested { .. }) {
            return Err(Failure::Permanent(format!(
                "expected forget.requested on {}, got {}",
                d.subject,
                env.event.kind()
            )));
        }
        let result = self.forget(&env.backup_id).await.map_err(Failure::Retry)?;
        tracing::info!(backup = %env.backup_id, chunks = result.chunks_deleted, "forgotten");
        let out = Envelope::new(
            self.source.clone(),
            env.backup_id.clone(),
            Event::BackupForgotten(result),
            &[env.id.as_str().as_bytes()],
        );
        self.bus
            .publish_event(&out)
            .await
            .map_err(|e| Failure::Retry(e.to_string()))
    }
}

/// Runs the retention worker until the process stops.
pub async fn run(worker: RetentionWorker) -> anyhow::Result<()> {
    let bus = worker.bus.clone();
    cairn_bus::worker::run(bus, stage::RETENTION, None, 1, Arc::new(worker)).await?;
    Ok(())
}
