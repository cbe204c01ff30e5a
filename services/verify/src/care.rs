//! Health and repair of stored backups, without the key: compare the
//! ciphertext on each network with the digests the ledger recorded at
//! sealing, those digests with the sealed Merkle root recorded when the
//! backup was verified (`rs_merkle` inclusion proofs for sampled chunks), and
//! put back what a network lost from any intact copy. `cairn health`,
//! `cairn repair` and the automatic repair loop (`auto_repair`, run by
//! `cairn serve repair`) all use this.

use crate::{sealed_leaves, BackupObjects};
use anyhow::{bail, Context};
use cairn_bus::Bus;
use cairn_crypto::merkle::{leaf_hash, Rfc6962};
use cairn_events::{BackupId, Envelope, Event, NetworkReport, ObjectDigest, Outcome, Stored};
use cairn_networks::PutMode;
use cairn_repo::check::{self, Expected, Finding};
use cairn_repo::{layout, Repository};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the ledger and the networks say a backup consists of.
pub struct Backup {
    pub id: BackupId,
    pub targets: Repository,
    pub objects: BackupObjects,
    pub expected: Vec<Expected>,
    pub lens: Vec<u64>,
    pub sealed_root: String,
    pub outcome: Option<Outcome>,
}

pub async fn load(
    cfg: &cairn_config::Config,
    pg: &tokio_postgres::Client,
    id: &BackupId,
) -> anyhow::Result<Backup> {
    let row = cairn_audit_ledger::query::backup(pg, id.as_str())
        .await?
        .with_context(|| format!("backup {id} not found in the ledger"))?;
    if row.status == "forgotten" {
        bail!("backup {id} was forgotten");
    }
    let repo = Repository::from_config(cfg)?;
    let names = if row.networks.is_empty() {
        cfg.network_names()
    } else {
        row.networks.clone()
    };
    for n in &names {
        if cfg.network(n).is_none() {
            bail!("backup {id} was stored on network {n:?}, which is not configured here");
        }
    }
    let targets = repo.subset(&names);
    // Page count: the highest page any network holds.
    let mut pages = 0u32;
    for n in targets.networks() {
        if let Ok(list) = n.list(&layout::backup_dir(id)).await {
            for p in list {
                if let Some(k) = p
                    .rsplit_once("/chunks.")
                    .and_then(|(_, k)| k.parse::<u32>().ok())
                {
                    pages = pages.max(k + 1);
                }
            }
        }
    }
    if pages == 0 {
        bail!("no network holds the chunk list of backup {id}");
    }
    let page_data = targets.chunk_pages(id, pages).await?;
    let objects = BackupObjects::of(id, &page_data);
    let paths = objects.paths();
    let digests = cairn_audit_ledger::query::digests(pg, &paths).await?;
    let missing = paths.iter().filter(|p| !digests.contains_key(*p)).count();
    if missing > 0 {
        bail!("the ledger holds no digest for {missing} objects of backup {id}: was it verified?");
    }
    let outcome: Option<Outcome> = row
        .outcome
        .clone()
        .and_then(|o| serde_json::from_value(o).ok());
    Ok(Backup {
        id: id.clone(),
        targets,
        expected: paths
            .iter()
            .map(|p| Expected {
                path: p.clone(),
                sha256: digests[p].0.clone(),
            })
            .collect(),
        lens: paths.iter().map(|p| digests[p].1).collect(),
        sealed_root: outcome
            .as_ref()
            .map(|o| o.sealed_root.clone())
            .unwrap_or_default(),
        outcome,
        objects,
    })
}

/// Checks the digests against the recorded sealed root and returns, for
/// each sampled chunk index, whether its inclusion proof holds.
pub fn merkle_check(b: &Backup, sample: &[usize]) -> (bool, usize) {
    let leaves: Vec<[u8; 32]> = sealed_leaves(&b.objects, |i| b.expected[i].sha256.clone())
        .iter()
        .map(|l| leaf_hash(l))
        .collect();
    if leaves.is_empty() {
        return (
            b.sealed_root.is_empty()
                || b.sealed_root == hex::encode(cairn_crypto::merkle::empty_root()),
            0,
        );
    }
    let tree = rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&leaves);
    let root = tree.root().expect("non-empty tree");
    let matches = hex::encode(root) == b.sealed_root;
    let proven = sample
        .iter()
        .filter(|&&i| i < leaves.len())
        .filter(|&&i| {
            tree.proof(&[i])
                .verify(root, &[i], &[leaves[i]], leaves.len())
        })
        .count();
    (matches, proven)
}

/// Overall state of a backup's copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Every network holds every object intact.
    Healthy,
    /// Some network lacks or damaged something; another holds it all.
    Degraded,
    /// No network holds it whole, or the digests do not match the root.
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// The health report of one backup (the JSON `cairn health --json` prints):
/// per network availability, presence from listings, integrity of a sample
/// (or everything, with `full`), measured read speed and the restore time it
/// implies, and recommended actions.
pub async fn health(
    cfg: &cairn_config::Config,
    pg: &tokio_postgres::Client,
    id: &BackupId,
    full: bool,
) -> anyhow::Result<(Health, serde_json::Value)> {
    let id = id.clone();
    let b = load(cfg, pg, &id).await?;

    // Which objects to read: all with --full, else a sample of chunks plus
    // the chunk lists and the manifest.
    let n = b.objects.chunk_count;
    let mut chosen: BTreeSet<usize> = (n..b.expected.len()).collect();
    let sample: Vec<usize> = if full {
        (0..n).collect()
    } else {
        use rand::seq::SliceRandom;
        let mut all: Vec<usize> = (0..n).collect();
        all.shuffle(&mut rand::thread_rng());
        all.truncate(32);
        all
    };
    chosen.extend(&sample);
    let to_read: Arc<Vec<Expected>> =
        Arc::new(chosen.iter().map(|&i| b.expected[i].clone()).collect());
    let total_bytes: u64 = b.lens.iter().sum();
    let (root_ok, proven) = merkle_check(&b, &sample);

    let mut reports = Vec::new();
    let mut recommendations = Vec::new();
    let mut healthy_networks = 0;
    for net in b.targets.networks() {
        let started = Instant::now();
        let reach = net.health().await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        // Presence of every object, from listings (cheap), then the sample read in full.
        let mut present: BTreeSet<String> = BTreeSet::new();
        for prefix in [layout::CHUNKS_DIR.to_string(), layout::backup_dir(&id)] {
            if let Ok(list) = net.list(&prefix).await {
                present.extend(list);
            }
        }
        let absent: Vec<&Expected> = b
            .expected
            .iter()
            .filter(|e| !present.contains(&e.path))
            .collect();
        let f: Finding = if reach.is_ok() {
            check::check_network(net.clone(), to_read.clone(), tokio::time::Instant::now()).await
        } else {
            Finding {
                network: net.name().to_string(),
                ..Finding::default()
            }
        };
        let mut missing: BTreeSet<String> = absent.iter().map(|e| e.path.clone()).collect();
        missing.extend(f.missing.iter().cloned());
        let ok = reach.is_ok() && missing.is_empty() && f.corrupt.is_empty();
        if ok {
            healthy_networks += 1;
        }
        let throughput = f.throughput();
        if let Err(e) = &reach {
            recommendations.push(format!(
                "network {} is unreachable ({e}): check it, then run `cairn repair {id}`",
                net.name()
            ));
        } else if !ok {
            recommendations.push(format!(
                "network {} lacks {} and holds {} corrupt objects of this backup: run `cairn repair {id}`",
                net.name(),
                missing.len(),
                f.corrupt.len()
            ));
        }
        let remote = match net.remote_copies().await {
            Ok(Some(by_status)) => json!(by_status),
            Ok(None) => serde_json::Value::Null,
            Err(e) => json!({ "error": e.to_string() }),
        };
        reports.push(json!({
            "network": net.name(),
            "remote_copies": remote,
            "reachable": reach.is_ok(),
            "error": reach.err().map(|e| e.to_string()),
            "latency_ms": (latency_ms * 10.0).round() / 10.0,
            "objects": b.expected.len(),
            "missing": missing.len(),
            "corrupt": f.corrupt.len(),
            "corrupt_objects": f.corrupt,
            "missing_objects": missing.iter().take(20).collect::<Vec<_>>(),
            "sampled": to_read.len(),
            "read_mb_per_s": throughput.map(|t| (t / 1e6 * 10.0).round() / 10.0),
            "est_restore_secs": throughput.map(|t| ((total_bytes as f64 / t) * 10.0).round() / 10.0),
            "ok": ok,
        }));
    }
    if !root_ok {
        recommendations.push(
            "the ledger's digests do not match the sealed root recorded when the backup was verified: run `cairn audit verify`".into(),
        );
    }
    let status = if !root_ok || healthy_networks == 0 {
        "unhealthy"
    } else if healthy_networks < b.targets.networks().len() {
        "degraded"
    } else {
        "healthy"
    };
    let report = json!({
        "backup_id": id.to_string(),
        "status": status,
        "full": full,
        "networks": reports,
        "integrity": {
            "sealed_root": b.sealed_root,
            "sealed_root_matches_digests": root_ok,
            "chunks_sampled": sample.len(),
            "inclusion_proofs_verified": proven,
        },
        "bytes": total_bytes,
        "recommendations": recommendations,
    });
    let health = match status {
        "healthy" => Health::Healthy,
        "degraded" => Health::Degraded,
        _ => Health::Unhealthy,
    };
    Ok((health, report))
}

/// Copies every missing or corrupt object of `b` onto the networks that
/// need it, from a network whose copy hashes right. Returns the findings after.
async fn copy_missing(b: &Backup, bus: &Bus, source: &str) -> anyhow::Result<(u64, Vec<Finding>)> {
    let expected = Arc::new(b.expected.clone());
    let now = tokio::time::Instant::now();
    let findings = check::check_all(b.targets.networks(), expected.clone(), now).await;
    let by_path: HashMap<&str, usize> = b
        .expected
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_str(), i))
        .collect();
    let mut copied = 0u64;
    for f in findings.iter().filter(|f| !f.ok()) {
        let net = b.targets.network(&f.network).expect("a target network");
        for path in f.missing.iter().chain(&f.corrupt) {
            let i = by_path[path.as_str()];
            let want = &b.expected[i].sha256;
            let sources = findings.iter().filter(|g| {
                g.network != f.network && !g.missing.contains(path) && !g.corrupt.contains(path)
            });
            let mut done = false;
            for g in sources {
                let src = b.targets.network(&g.network).expect("a target network");
                let Ok(bytes) = src.get(path).await else {
                    continue;
                };
                if &hex::encode(Sha256::digest(&bytes)) != want {
                    continue;
                }
                let len = bytes.len() as u64;
                net.put(path, bytes, PutMode::Overwrite).await?;
                let env = Envelope::new(
                    source.to_string(),
                    b.id.clone(),
                    Event::ObjectStored(Stored {
                        network: f.network.clone(),
                        digest: ObjectDigest {
                            object: b.objects.keys[i].clone(),
                            sha256: want.clone(),
                            len,
                        },
                        existed: false,
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
                done = true;
                break;
            }
            if !done {
                tracing::warn!(network = f.network, path, "no intact copy to repair from");
            }
        }
    }
    let after = if copied > 0 {
        check::check_all(b.targets.networks(), expected, tokio::time::Instant::now()).await
    } else {
        findings
    };
    Ok((copied, after))
}

/// What `repair_backup` did.
#[derive(Debug, Clone)]
pub struct Repaired {
    pub backup_id: BackupId,
    pub objects_copied: u64,
    /// Every network holds every object intact now.
    pub ok: bool,
    /// What is still wrong, per network.
    pub problems: Vec<String>,
}

/// Copies what each network lacks of backup `id` from an intact copy and,
/// once every copy is whole, records the backup as completed.
pub async fn repair_backup(
    cfg: &cairn_config::Config,
    pg: &tokio_postgres::Client,
    bus: &Bus,
    id: &BackupId,
    source: &str,
) -> anyhow::Result<Repaired> {
    let id = id.clone();
    let b = load(cfg, pg, &id).await?;
    let (copied, after) = copy_missing(&b, bus, source).await?;
    let ok = after.iter().all(|f| f.ok());
    let was_completed = b
        .outcome
        .as_ref()
        .map(|o| o.reasons.is_empty())
        .unwrap_or(false);
    if ok && (copied > 0 || !was_completed) {
        // Every copy is whole again: the backup is completed.
        let mut o = b.outcome.clone().unwrap_or_default();
        o.reasons.clear();
        o.networks = after
            .iter()
            .map(|f| NetworkReport {
                network: f.network.clone(),
                ok: true,
                ..Default::default()
            })
            .collect();
        let env = Envelope::new(
            source.to_string(),
            id.clone(),
            Event::BackupCompleted(o),
            &[b"repair", cairn_events::now_rfc3339().as_bytes()],
        );
        bus.publish_event(&env).await?;
    }
    let still: Vec<String> = after
        .iter()
        .filter(|f| !f.ok())
        .map(|f| format!("{}: {}", f.network, f.detail()))
        .collect();
    Ok(Repaired {
        backup_id: id,
        objects_copied: copied,
        ok,
        problems: still,
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
    cfg: cairn_config::Config,
    pg: tokio_postgres::Client,
    bus: Bus,
    interval: Duration,
    source: String,
) -> anyhow::Result<()> {
    let mut attempts: HashMap<String, Attempt> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let degraded: Vec<String> =
            match cairn_audit_ledger::query::list_backups(&pg, None, None).await {
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
            let result = repair_backup(&cfg, &pg, &bus, &id, &source).await;
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
                    tracing::warn!(backup = %id, error = %format!("{e:#}"), "automatic repair failed")
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
