//! `cairn compliance migrate`: a backup copied to the archive network its
//! compliance profile names (permanent, or locked), found whole there, and
//! only then, if the profile says so, gone from its regular networks.
//!
//! Every step is ledgered and safe to repeat, so a run killed at any point
//! leaves the backup whole somewhere and the next run carries on:
//! 1. each object the archive lacks is copied from a regular network whose
//!    copy hashes right (`object.stored`, as repair records a copy);
//! 2. the archive is read back whole against the ledger's digests, and
//!    where it locks objects, every object locked as long as a rule keeps
//!    the backup;
//! 3. `backup.migrated` is recorded, and the run waits until the ledger
//!    shows it: nothing is deleted on the strength of an unrecorded step;
//! 4. with `release_regular`, unless the backup is held, and once the
//!    archive is read back whole again: `backup.left` is recorded (naming
//!    the regular networks that can delete, never an archive of its
//!    profiles), the run waits for the ledger to show it, and then its
//!    manifest first, its chunk list and catalogue entry are deleted there
//!    (as `forget` does). A run cut short after the record finishes the
//!    deletions. Its chunks there are the collector's, once no other backup
//!    uses them.

use super::{load, CareError};
use cairn_bus::Bus;
use cairn_events::{BackupId, Envelope, Event, Left, Migrated, ObjectKey};
use cairn_repo::check;
use cairn_repo::{layout, Repository};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a migration did.
#[derive(Debug, Clone, Serialize)]
pub struct Migration {
    pub backup_id: BackupId,
    pub to: String,
    /// `migrated` (the archive holds it whole, recorded), `left` (and it is
    /// gone from its regular networks), or `unrecorded` (the ledger did not
    /// record the migration in time: nothing was deleted).
    pub status: &'static str,
    pub copied: u64,
    pub present: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
    /// Where its dataset key is: copied to the archive too when the
    /// archive can delete it (or the dataset is not shreddable); else it
    /// stays on the regular networks alone, so that the dataset can still
    /// be shredded, and restoring from the archive needs one of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_key: Option<String>,
    /// Regular networks it left, and those that cannot delete and keep it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_on: Vec<String>,
    /// Its manifest, chunk-list pages and catalogue entries deleted there.
    pub deleted: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Care(#[from] CareError),
    #[error("archive network {0:?} is not configured")]
    NoArchive(String),
    #[error("backup {id}: no regular network holds an intact copy of {path}; nothing was deleted")]
    NoSource { id: BackupId, path: String },
    #[error(
        "backup {id} is not whole on archive {to} after copying ({detail}); nothing was deleted"
    )]
    NotWhole {
        id: BackupId,
        to: String,
        detail: String,
    },
    #[error("backup {0} is under legal hold: it stays on its regular networks (its archive copy is made and recorded); nothing was deleted")]
    Held(BackupId),
    #[error("backup {id}: the lock on archive {to} failed ({detail}); nothing was deleted")]
    NotLocked {
        id: BackupId,
        to: String,
        detail: String,
    },
}

/// The `backup.migrated` and `backup.left` entries the ledger holds for
/// `backup`, in log order.
async fn recorded(pg: &tokio_postgres::Client, backup: &BackupId) -> Result<Vec<Event>, CareError> {
    let mut out = Vec::new();
    for r in pg
        .query(
            "SELECT entry FROM ledger_entries WHERE backup_id = $1
             AND kind IN ('backup.migrated', 'backup.left') ORDER BY seq",
            &[&backup.as_str()],
        )
        .await?
    {
        if let Ok(env) = cairn_events::decode::<Envelope>(&r.get::<_, Vec<u8>>(0), "entry") {
            out.push(env.event);
        }
    }
    Ok(out)
}

fn migrated_to(events: &[Event], to: &str) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::BackupMigrated(m) if m.to == to))
}

fn left_for(events: &[Event], to: &str) -> Option<Vec<String>> {
    events.iter().find_map(|e| match e {
        Event::BackupLeft(l) if l.to == to => Some(l.networks.clone()),
        _ => None,
    })
}

/// Reads every object of `b` back from `archive` against the ledger's
/// digests: an error unless it is whole there.
async fn whole_on(
    archive: &cairn_networks::DynNetwork,
    b: &super::Backup,
    id: &BackupId,
    to: &str,
) -> Result<(), MigrateError> {
    let f = check::check_network(
        archive.clone(),
        Arc::new(b.expected.clone()),
        tokio::time::Instant::now(),
    )
    .await;
    if f.ok() {
        Ok(())
    } else {
        Err(MigrateError::NotWhole {
            id: id.clone(),
            to: to.to_string(),
            detail: f.detail(),
        })
    }
}

/// What one migration is to do.
pub struct Plan<'a> {
    /// The archive network.
    pub to: &'a str,
    /// Leave the regular networks once the archive holds the backup.
    pub release: bool,
    /// The dataset's `shreddable`: a shreddable dataset's key never goes to
    /// an archive that cannot delete.
    pub shreddable: bool,
    /// Networks the backup never leaves: every archive a rule of its
    /// profiles names.
    pub archives: &'a [String],
    /// Who is migrating (recorded).
    pub by: &'a str,
    /// How long to wait for the ledger to record a step before anything is
    /// deleted on its strength.
    pub wait: Duration,
}

async fn wait_recorded(
    pg: &tokio_postgres::Client,
    id: &BackupId,
    wait: Duration,
    done: impl Fn(&[Event]) -> bool,
) -> Result<bool, CareError> {
    let deadline = Instant::now() + wait;
    loop {
        if done(&recorded(pg, id).await?) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Migrates backup `id` as `plan` says.
pub async fn migrate(
    repo: &Repository,
    pg: &tokio_postgres::Client,
    bus: &Bus,
    id: &BackupId,
    plan: &Plan<'_>,
) -> Result<Migration, MigrateError> {
    let (to, release, shreddable, by, wait) =
        (plan.to, plan.release, plan.shreddable, plan.by, plan.wait);
    let archive = repo
        .network(to)
        .cloned()
        .ok_or_else(|| MigrateError::NoArchive(to.to_string()))?;
    let b = load(repo, pg, id).await?;
    let regular: Vec<_> = b
        .targets
        .networks()
        .iter()
        .filter(|n| n.name() != to)
        .cloned()
        .collect();
    let mut m = Migration {
        backup_id: id.clone(),
        to: to.to_string(),
        status: "migrated",
        copied: 0,
        present: 0,
        bytes: 0,
        locked_until: None,
        dataset_key: None,
        left: Vec::new(),
        kept_on: Vec::new(),
        deleted: 0,
    };
    let until = b.retain_until.as_deref().and_then(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(std::time::SystemTime::from)
    });
    let history = recorded(pg, id).await?;
    if !migrated_to(&history, to) {
        // 1. Copy what the archive lacks.
        for (i, want) in b.expected.iter().enumerate() {
            if archive.exists(&want.path).await.map_err(CareError::from)? {
                // Recorded again (the same event id: the ledger keeps one),
                // so that a copy a killed run made but did not record is
                // known; step 2 reads it back.
                let len = b.lens.get(i).copied().unwrap_or_default();
                let env = super::stored(
                    b"migrate",
                    by,
                    id,
                    to,
                    &b.objects.keys[i],
                    &want.sha256,
                    len,
                    true,
                );
                bus.publish_event(&env).await.map_err(CareError::from)?;
                m.present += 1;
                continue;
            }
            let intact = |bytes: &bytes::Bytes| hex::encode(Sha256::digest(bytes)) == want.sha256;
            let mut found = None;
            for src in &regular {
                if let Ok(bytes) = src.get(&want.path).await {
                    if intact(&bytes) {
                        found = Some(bytes);
                        break;
                    }
                }
            }
            // An erasure-coded pack goes to the archive whole, rebuilt from
            // the regular networks' shards: the archive alone restores it.
            if found.is_none() && b.shards.contains_key(&want.path) {
                let from = cairn_repo::Repository::new(regular.to_vec()).shards_first(true);
                if let Ok((bytes, _)) = from.fetch_pack(&want.path, None, &want.path, Ok).await {
                    found = Some(bytes).filter(intact);
                }
            }
            let Some(bytes) = found else {
                return Err(MigrateError::NoSource {
                    id: id.clone(),
                    path: want.path.clone(),
                });
            };
            let len = bytes.len() as u64;
            let key = &b.objects.keys[i];
            archive
                .put_until(&want.path, bytes, layout::put_mode(key), until)
                .await
                .map_err(CareError::from)?;
            let env = super::stored(b"migrate", by, id, to, key, &want.sha256, len, false);
            bus.publish_event(&env).await.map_err(CareError::from)?;
            m.copied += 1;
            m.bytes += len;
        }
        // Its dataset key, where it may go.
        if let Some(k) = b.dataset_key {
            m.dataset_key = Some(
                match super::copy_dataset_key(
                    b"migrate", pg, bus, id, by, k, &regular, &archive, shreddable,
                )
                .await?
                {
                    super::KeyCopy::Kept => format!(
                        "kept on {} only: {to} cannot delete, and the dataset is shreddable",
                        regular
                            .iter()
                            .map(|n| n.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    super::KeyCopy::There => format!("on {to} already"),
                    super::KeyCopy::Copied => format!("copied to {to}"),
                    super::KeyCopy::NoSource(path) => {
                        return Err(MigrateError::NoSource {
                            id: id.clone(),
                            path,
                        })
                    }
                },
            );
        }
        // 2. Whole on the archive, and locked as long as a rule keeps it.
        whole_on(&archive, &b, id, to).await?;
        if let (Some(u), true) = (until, archive.locks()) {
            crate::lock_all(&archive, &b.objects.paths(), u)
                .await
                .map_err(|detail| MigrateError::NotLocked {
                    id: id.clone(),
                    to: to.to_string(),
                    detail,
                })?;
            m.locked_until = b.retain_until.clone();
        }
        // 3. Recorded before anything is deleted.
        let env = Envelope::new(
            by.to_string(),
            id.clone(),
            Event::BackupMigrated(Migrated {
                to: to.to_string(),
                copied: m.copied,
                present: m.present,
                bytes: m.bytes,
                locked_until: m.locked_until.clone(),
                by: by.to_string(),
            }),
            &[to.as_bytes()],
        );
        bus.publish_event(&env).await.map_err(CareError::from)?;
        if !wait_recorded(pg, id, wait, |h| migrated_to(h, to)).await? {
            m.status = "unrecorded";
            return Ok(m);
        }
    }
    if !release {
        return Ok(m);
    }
    // 4. Leave the regular networks: never while the backup is held, never
    // an archive, and only with the archive found whole just now.
    if cairn_ledger::query::hold(pg, id.as_str())
        .await
        .map_err(CareError::from)?
        .is_some()
    {
        return Err(MigrateError::Held(id.clone()));
    }
    whole_on(&archive, &b, id, to).await?;
    let history = recorded(pg, id).await?;
    let leaving: Vec<String> = match left_for(&history, to) {
        // A run that recorded its leaving and was cut short: finish it.
        Some(networks) => networks,
        None => {
            let mut leaving = Vec::new();
            for net in &regular {
                let name = net.name().to_string();
                let archive = plan.archives.contains(&name) || migrated_to(&history, &name);
                if archive {
                    continue;
                }
                if net.capabilities().can_delete {
                    leaving.push(name);
                } else {
                    m.kept_on.push(name);
                }
            }
            // Recorded before anything is deleted: from then on repair no
            // longer puts it back there, and the collector may free its
            // chunks there once its chunk list is gone.
            let env = Envelope::new(
                by.to_string(),
                id.clone(),
                Event::BackupLeft(Left {
                    to: to.to_string(),
                    networks: leaving.clone(),
                    kept_on: m.kept_on.clone(),
                    by: by.to_string(),
                }),
                &[to.as_bytes()],
            );
            bus.publish_event(&env).await.map_err(CareError::from)?;
            if !wait_recorded(pg, id, wait, |h| left_for(h, to).is_some()).await? {
                m.status = "unrecorded";
                return Ok(m);
            }
            leaving
        }
    };
    // The manifest first, so that the backup is gone from a network even if
    // what follows is cut short; all of it safe to do again.
    let manifest = layout::object(&ObjectKey::Manifest {
        backup_id: id.clone(),
    });
    for name in &leaving {
        let Some(net) = repo.network(name) else {
            continue;
        };
        if net.exists(&manifest).await.map_err(CareError::from)? {
            net.delete(&manifest).await.map_err(CareError::from)?;
            m.deleted += 1;
        }
        for p in net
            .list(&layout::backup_dir(id))
            .await
            .map_err(CareError::from)?
        {
            net.delete(&p).await.map_err(CareError::from)?;
            m.deleted += 1;
        }
    }
    m.left = leaving;
    m.status = "left";
    Ok(m)
}

/// One migration a profile asks for, and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub backup_id: String,
    pub to: String,
    #[serde(flatten)]
    pub migration: Option<Migration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Attempt {
    /// Whether it is done (not failed, not waiting for the ledger).
    pub fn done(&self) -> bool {
        self.migration
            .as_ref()
            .is_some_and(|m| m.status != "unrecorded")
    }
}

/// Every migration the compliance profiles ask for among backups `ids`:
/// each archive the profiles of each completed backup name. Backups no
/// archive rule applies to, and those not completed, are passed over.
#[allow(clippy::too_many_arguments)]
pub async fn migrate_all(
    repo: &Repository,
    pg: &tokio_postgres::Client,
    bus: &Bus,
    selector: &cairn_compliance::Selector,
    shreddable: &(dyn Fn(&str) -> bool + Sync),
    ids: &[String],
    by: &str,
    wait: Duration,
) -> Result<Vec<Attempt>, CareError> {
    let mut out = Vec::new();
    for id in ids {
        let Some(row) = cairn_ledger::query::backup(pg, id).await? else {
            continue;
        };
        let archives = selector.archives(&row.dataset, &row.tags);
        if archives.is_empty() || row.status != "completed" {
            continue;
        }
        let Ok(backup) = id.parse::<BackupId>() else {
            continue;
        };
        let names: Vec<String> = archives.iter().map(|(n, _)| n.clone()).collect();
        for (to, release) in &archives {
            let plan = Plan {
                to,
                release: *release,
                shreddable: shreddable(&row.dataset),
                archives: &names,
                by,
                wait,
            };
            let (migration, error) = match migrate(repo, pg, bus, &backup, &plan).await {
                Ok(m) => (Some(m), None),
                Err(e) => (None, Some(e.to_string())),
            };
            out.push(Attempt {
                backup_id: id.clone(),
                to: to.clone(),
                migration,
                error,
            });
        }
    }
    Ok(out)
}

/// The retention service's migrations: every `every`, one replica per
/// round (a claim on the bus), every migration the profiles ask for. A
/// failed one is logged and tried again next round.
pub async fn run(
    repo: Repository,
    pg: tokio_postgres::Client,
    bus: Bus,
    selector: cairn_compliance::Selector,
    shreddable: Box<dyn Fn(&str) -> bool + Send + Sync>,
    by: String,
    every: Duration,
) -> Result<(), cairn_bus::BusError> {
    let claims = cairn_bus::claims::Claims::new(&bus);
    let secs = every.as_secs().max(1) as i64;
    loop {
        let round = chrono::Utc::now().timestamp() / secs;
        let claimed = match claims.claim_round("compliance-migrate", round).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "migrations: could not claim the round");
                false
            }
        };
        if claimed {
            let ids: Vec<String> = match pg
                .query(
                    "SELECT backup_id FROM backups WHERE status = 'completed' ORDER BY requested_at",
                    &[],
                )
                .await
            {
                Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
                Err(e) => {
                    tracing::error!(error = %e, "migrations: the ledger did not answer");
                    Vec::new()
                }
            };
            match migrate_all(&repo, &pg, &bus, &selector, &*shreddable, &ids, &by, every).await {
                Ok(attempts) => {
                    for a in attempts.iter().filter(|a| !a.done()) {
                        tracing::warn!(backup = %a.backup_id, to = %a.to, error = ?a.error, "migration not finished; next round tries again");
                    }
                    let done = attempts.iter().filter(|a| a.done()).count();
                    if done > 0 {
                        tracing::info!(done, "compliance migrations");
                    }
                }
                Err(e) => tracing::error!(error = %e, "migrations"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = cairn_ledger::db::closed(&pg) => {
                return Err(cairn_bus::BusError::Stopped(cairn_ledger::db::gone("the migration loop")));
            }
        }
    }
}
