//! `cairn repair` and the automatic repair loop: copy each missing or
//! corrupt object of a backup onto the networks that need it, from a
//! network whose copy hashes right (a missing shard of an erasure-coded
//! pack: cut again from the pack rebuilt out of `k` intact shards), record each copy (`object.stored`) and,
//! once every copy is whole, the backup as completed. A network with a
//! quota gets back no more than its quota lets it hold, as the ledger
//! counts. The same copying puts a new network in the place of one lost or
//! retired (`replace_network`, `cairn repair --replace OLD=NEW`).

use super::{load, Backup, CareError};
use bytes::Bytes;
use cairn_bus::Bus;
use cairn_events::{
    BackupId, Envelope, Event, Moved, NetworkReport, ObjectDigest, ShardOf, Stored,
};
use cairn_networks::PutMode;
use cairn_repo::check::{self, Finding};
use cairn_repo::Repository;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Copies every missing or corrupt object of `b` onto the networks that
/// need it, from a network whose copy hashes right. Returns the findings after.
async fn copy_missing(
    b: &Backup,
    bus: &Bus,
    source: &str,
    pg: &tokio_postgres::Client,
    quotas: &BTreeMap<String, u64>,
) -> Result<(u64, Vec<Finding>, Vec<String>), CareError> {
    // Per network with a quota: (quota, what the ledger counts there plus
    // what this repair has written), asked once per repair.
    let mut room: HashMap<String, (u64, u64)> = HashMap::new();
    let mut over: Vec<String> = Vec::new();
    let now = tokio::time::Instant::now();
    let findings = check_each(b, now).await;
    let by_path: HashMap<&str, usize> = b
        .expected
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_str(), i))
        .collect();
    let mut copied = 0u64;
    for f in findings.iter().filter(|f| !f.ok()) {
        let Some(net) = b.targets.network(&f.network) else {
            continue;
        };
        for path in f.missing.iter().chain(&f.corrupt) {
            let Some(&i) = by_path.get(path.as_str()) else {
                continue;
            };
            let intact: Vec<String> = findings
                .iter()
                .filter(|g| {
                    g.network != f.network && !g.missing.contains(path) && !g.corrupt.contains(path)
                })
                .map(|g| g.network.clone())
                .collect();
            let shard = b.shard_on(path, &f.network);
            let found = match &shard {
                Some((of, want, _)) => rebuild_shard(b, &intact, path, *of, want).await,
                None => whole_copy(b, &intact, path, &b.expected[i].sha256).await,
            };
            let Some(bytes) = found else {
                tracing::warn!(network = f.network, path, "no intact copy to repair from");
                continue;
            };
            let len = bytes.len() as u64;
            let sha256 = hex::encode(Sha256::digest(&bytes));
            if let Some(&quota) = quotas.get(&f.network) {
                if !room.contains_key(&f.network) {
                    let used = cairn_ledger::usage::used(pg, &f.network).await?;
                    room.insert(f.network.clone(), (quota, used));
                }
                let (quota, used) = room[&f.network];
                // A corrupt copy is replaced, not added to; a lost one
                // the ledger still counts is counted once.
                let counted = f.corrupt.contains(path)
                    || cairn_ledger::usage::holds(pg, &f.network, path).await?;
                let adds = if counted { 0 } else { len };
                if used + adds > quota {
                    over.push(format!(
                        "{}: {path} not copied back: the network holds {used} of its {quota} bytes (quota_bytes), as the ledger counts them, and it needs {len} more",
                        f.network
                    ));
                    continue;
                }
                room.insert(f.network.clone(), (quota, used + adds));
            }
            net.put(path, bytes, PutMode::Overwrite).await?;
            let env = Envelope::new(
                source.to_string(),
                b.id.clone(),
                Event::ObjectStored(Stored {
                    network: f.network.clone(),
                    digest: ObjectDigest {
                        object: b.objects.keys[i].clone(),
                        sha256,
                        len,
                        packed: Vec::new(),
                        run: None,
                        shards: None,
                    },
                    existed: false,
                    shard: shard.map(|(of, _, _)| of),
                }),
                &[
                    b"repair",
                    f.network.as_bytes(),
                    path.as_bytes(),
                    cairn_events::now_rfc3339().as_bytes(),
                ],
            );
            bus.publish_event(&env).await?;
            copied += 1;
        }
    }
    let after = if copied > 0 {
        check_each(b, tokio::time::Instant::now()).await
    } else {
        findings
    };
    Ok((copied, after, over))
}

/// Every target network of `b` checked against what it must hold (its
/// own shard of an erasure-coded pack).
async fn check_each(b: &Backup, deadline: tokio::time::Instant) -> Vec<Finding> {
    let checks = b
        .targets
        .networks()
        .iter()
        .map(|n| check::check_network(n.clone(), Arc::new(b.expected_on(n.name())), deadline));
    futures::future::join_all(checks).await
}

/// `path` whole from the first of `intact` whose copy hashes to `want`.
async fn whole_copy(b: &Backup, intact: &[String], path: &str, want: &str) -> Option<Bytes> {
    for src in intact.iter().filter_map(|n| b.targets.network(n)) {
        if let Ok(bytes) = src.get(path).await {
            if hex::encode(Sha256::digest(&bytes)) == want {
                return Some(bytes);
            }
        }
    }
    None
}

/// Shard `of` of pack `path`, cut again from the pack rebuilt out of the
/// shards on `intact` (any `k`), if it hashes to `want`.
async fn rebuild_shard(
    b: &Backup,
    intact: &[String],
    path: &str,
    of: ShardOf,
    want: &str,
) -> Option<Bytes> {
    let from = b.targets.subset(intact).shards_first(true);
    let (pack, _) = match from.fetch_pack(path, None, path, Ok).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(path, error = %e, "cannot rebuild the pack to cut its missing shard");
            return None;
        }
    };
    let file = cairn_repo::erasure::encode(&pack, of.k, of.n)
        .ok()?
        .into_iter()
        .nth(of.index as usize)?;
    (hex::encode(Sha256::digest(&file)) == want).then(|| Bytes::from(file))
}

/// What `repair_backup` did.
#[derive(Debug, Clone, Serialize)]
pub struct Repaired {
    pub backup_id: BackupId,
    pub objects_copied: u64,
    /// Every network holds every object intact now.
    pub ok: bool,
    /// What is still wrong, per network.
    pub problems: Vec<String>,
    /// The network put in another's place (`--replace`), moved only if `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Replace>,
}

/// Copies what each network lacks of backup `id` from an intact copy and,
/// once every copy is whole, records the backup as completed.
pub async fn repair_backup(
    repo: &Repository,
    pg: &tokio_postgres::Client,
    bus: &Bus,
    id: &BackupId,
    source: &str,
    quotas: &BTreeMap<String, u64>,
) -> Result<Repaired, CareError> {
    let b = load(repo, pg, id).await?;
    repair_loaded(b, pg, bus, source, quotas, None).await
}

/// A network to stand in for another among a backup's networks: one lost
/// for good, or being retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replace {
    pub from: String,
    pub to: String,
}

/// Puts network `replace.to` in the place of `replace.from` among backup
/// `id`'s networks: copies onto it everything the backup keeps there (of
/// an erasure-coded pack, the shard `from` held, cut again from `k`
/// intact ones; of anything else the whole object), and the repository's
/// config and key files and the backup's dataset key, records each copy,
/// and, once `to` holds every object intact as read back, records the move
/// (`backup.moved`). Nothing is deleted anywhere: `from` need not even be
/// reachable. Until the move is recorded the backup stays on `from`, so a
/// run cut short is run again.
#[allow(clippy::too_many_arguments)]
pub async fn replace_network(
    repo: &Repository,
    pg: &tokio_postgres::Client,
    bus: &Bus,
    id: &BackupId,
    source: &str,
    quotas: &BTreeMap<String, u64>,
    replace: &Replace,
    shreddable: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Repaired, CareError> {
    let b = super::load_as(repo, pg, id, Some(replace)).await?;
    let to = b
        .targets
        .network(&replace.to)
        .ok_or_else(|| CareError::NotConfigured {
            id: id.clone(),
            network: replace.to.clone(),
        })?
        .clone();
    let mut problems = Vec::new();
    // A whole repository there: `recover` reads config and keys from it.
    if let Err(e) = repo.complete_on(&to).await {
        problems.push(format!(
            "{}: the repository config and key files not copied: {e}",
            replace.to
        ));
    }
    if let Some(k) = b.dataset_key {
        let others: Vec<_> = b
            .targets
            .networks()
            .iter()
            .filter(|n| n.name() != replace.to)
            .cloned()
            .collect();
        let copy = super::copy_dataset_key(
            b"replace",
            pg,
            bus,
            id,
            source,
            k,
            &others,
            &to,
            shreddable(&b.dataset),
        )
        .await?;
        if let super::KeyCopy::NoSource(path) = copy {
            problems.push(format!(
                "{}: its dataset key {path} not copied: no other network holds it as the ledger recorded it",
                replace.to
            ));
        }
    }
    let mut r = repair_loaded(b, pg, bus, source, quotas, Some((replace, problems))).await?;
    r.replaced = Some(replace.clone());
    Ok(r)
}

/// Repairs loaded backup `b`; with `moving`, records the move (after the
/// copies, before the backup is completed) once its new network holds
/// every object intact and nothing else stood in the way (`moving.1`).
async fn repair_loaded(
    b: super::Backup,
    pg: &tokio_postgres::Client,
    bus: &Bus,
    source: &str,
    quotas: &BTreeMap<String, u64>,
    moving: Option<(&Replace, Vec<String>)>,
) -> Result<Repaired, CareError> {
    let id = b.id.clone();
    let (copied, after, over) = copy_missing(&b, bus, source, pg, quotas).await?;
    let mut ok = after.iter().all(|f| f.ok());
    let mut not_moved = Vec::new();
    if let Some((r, problems)) = moving {
        let whole = after.iter().any(|f| f.network == r.to && f.ok());
        if whole && problems.is_empty() {
            let env = Envelope::new(
                source.to_string(),
                id.clone(),
                Event::BackupMoved(Moved {
                    from: r.from.clone(),
                    to: r.to.clone(),
                    copied,
                    by: source.to_string(),
                }),
                &[b"moved", r.from.as_bytes(), r.to.as_bytes()],
            );
            bus.publish_event(&env).await?;
        } else {
            // Completed on its new networks would claim what is not
            // recorded: it stays on `from` until a run moves it.
            ok = false;
            not_moved = problems;
            not_moved.push(format!(
                "not moved from {} to {}: {}",
                r.from,
                r.to,
                if whole {
                    "see above"
                } else {
                    "it does not hold every object intact yet"
                }
            ));
        }
    }
    let was_completed = b
        .outcome
        .as_ref()
        .map(|o| o.reasons.is_empty())
        .unwrap_or(false);
    let mut unlocked: Vec<String> = Vec::new();
    if ok && (copied > 0 || !was_completed) {
        // Every copy is whole again: the backup is completed.
        let mut o = b.outcome.clone().unwrap_or_default();
        o.reasons.clear();
        // A backup a compliance rule keeps: locked as long again where the
        // network locks objects (what was copied back included).
        let until = b.retain_until.as_deref().and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(std::time::SystemTime::from)
        });
        let mut networks = Vec::new();
        for f in &after {
            let mut r = NetworkReport {
                network: f.network.clone(),
                ok: true,
                ..Default::default()
            };
            if let (Some(until), Some(net)) = (until, b.targets.network(&f.network)) {
                if net.locks() {
                    match crate::lock_all(net, &b.objects.paths(), until).await {
                        Ok(()) => r.locked_until = b.retain_until.clone(),
                        Err(e) => {
                            r.ok = false;
                            r.detail = format!(
                                "not locked until {}: {e}",
                                b.retain_until.as_deref().unwrap_or_default()
                            );
                        }
                    }
                }
            }
            networks.push(r);
        }
        unlocked = networks
            .iter()
            .filter(|r| !r.ok)
            .map(|r| format!("{}: {}", r.network, r.detail))
            .collect();
        if unlocked.is_empty() {
            o.networks = networks;
            let env = Envelope::new(
                source.to_string(),
                id.clone(),
                Event::BackupCompleted(o),
                &[b"repair", cairn_events::now_rfc3339().as_bytes()],
            );
            bus.publish_event(&env).await?;
        }
    }
    let mut still: Vec<String> = after
        .iter()
        .filter(|f| !f.ok())
        .map(|f| format!("{}: {}", f.network, f.detail()))
        .collect();
    still.extend(unlocked);
    still.extend(over);
    still.extend(not_moved);
    let ok = still.is_empty();
    Ok(Repaired {
        backup_id: id,
        objects_copied: copied,
        ok,
        problems: still,
        replaced: None,
    })
}

/// When the automatic repair loop next tries a degraded backup.
struct Attempt {
    next: Instant,
    wait: Duration,
}

/// Longest wait between two automatic repairs of one backup.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// Repairs degraded backups on its own, until the process stops: every
/// `interval` it asks the ledger which backups are degraded and repairs
/// those that are due. A backup that stays degraded (its network still
/// down) waits twice as long before each next try, up to six hours; one
/// that was repaired drops out of the ledger's degraded list.
pub async fn auto_repair(
    repo: Repository,
    pg: tokio_postgres::Client,
    bus: Bus,
    interval: Duration,
    source: String,
    quotas: BTreeMap<String, u64>,
) -> Result<(), CareError> {
    let mut attempts: HashMap<String, Attempt> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = cairn_ledger::db::closed(&pg) => {
                return Err(cairn_bus::BusError::Stopped(cairn_ledger::db::gone("the repair loop")).into());
            }
        }
        let degraded: Vec<String> = match cairn_ledger::query::list_backups(&pg, None, None).await {
            Ok(rows) => rows
                .into_iter()
                .filter(|r| r.status == "degraded")
                .map(|r| r.backup_id)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "automatic repair: cannot read the ledger");
                continue;
            }
        };
        attempts.retain(|id, _| degraded.contains(id));
        for raw in degraded {
            let now = Instant::now();
            if attempts.get(&raw).is_some_and(|a| a.next > now) {
                continue;
            }
            let Ok(id) = BackupId::parse(&raw) else {
                continue;
            };
            let result = repair_backup(&repo, &pg, &bus, &id, &source, &quotas).await;
            match &result {
                Ok(r) if r.ok => {
                    tracing::info!(backup = %id, copied = r.objects_copied, "automatic repair: every network holds it intact");
                    attempts.remove(&raw);
                    continue;
                }
                Ok(r) => {
                    tracing::warn!(backup = %id, copied = r.objects_copied, problems = ?r.problems, "automatic repair: still degraded")
                }
                Err(e) => {
                    tracing::warn!(backup = %id, error = %e, "automatic repair failed")
                }
            }
            let a = attempts.entry(raw).or_insert(Attempt {
                next: now,
                wait: interval,
            });
            a.wait = (a.wait * 2).min(MAX_BACKOFF);
            a.next = now + a.wait;
        }
    }
}
