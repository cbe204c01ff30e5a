//! `cairn health`: how well each network holds one backup. Per target
//! network: reachable, whether it holds the repository files it needs to
//! restore on its own, which objects are missing (from listings) or corrupt
//! (a sample read in full, or everything with `full`), read speed and the
//! restore time it implies; the digests held against the sealed root; and
//! what to do about anything wrong.

use super::{load, merkle_check, CareError};
use cairn_events::BackupId;
use cairn_repo::check::{self, Expected, Finding};
use cairn_repo::complete::{presence, Presence};
use cairn_repo::{layout, Repository};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

/// Overall state of a backup's copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
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

    /// From how many of `targets` networks hold the backup whole, and
    /// whether the digests match the sealed root.
    pub fn of(healthy_networks: usize, targets: usize, root_ok: bool) -> Health {
        if !root_ok || healthy_networks == 0 {
            Health::Unhealthy
        } else if healthy_networks < targets {
            Health::Degraded
        } else {
            Health::Healthy
        }
    }
}

/// The report `cairn health` prints (`--json`: this, serialized).
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub backup_id: BackupId,
    pub status: Health,
    /// Every object was read, not a sample.
    pub full: bool,
    pub networks: Vec<NetworkHealth>,
    pub integrity: Integrity,
    /// Sealed bytes of the backup.
    pub bytes: u64,
    /// Whether each configured network holds the repository config and key
    /// files (targets of this backup and others alike).
    pub repository: Vec<RepositoryFiles>,
    /// For an erasure-coded backup: how many shards of each pack survive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasure: Option<ErasureHealth>,
    pub recommendations: Vec<String>,
}

/// How an erasure-coded backup's packs stand: a pack survives while `k`
/// of its `n` shards do, and is at risk with exactly `k` (one more lost
/// network loses it).
#[derive(Debug, Clone, Serialize)]
pub struct ErasureHealth {
    pub k: u32,
    pub n: u32,
    pub packs: usize,
    /// Packs by how many intact shards they have left (found listed, and
    /// intact where read; an unreachable network's count as lost).
    pub by_shards_left: BTreeMap<usize, usize>,
    /// Packs with exactly `k` shards left, and the chunks in them.
    pub packs_at_risk: usize,
    pub chunks_at_risk: usize,
    /// Packs with fewer than `k`: they cannot be rebuilt, nor their chunks
    /// restored.
    pub packs_lost: usize,
    pub chunks_lost: usize,
    /// The first 20 packs at risk or lost, with their shards left.
    pub worst: Vec<String>,
}

/// One target network's copy of the backup.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkHealth {
    pub network: String,
    /// Copies the network keeps elsewhere, by status (IPFS pinning).
    pub remote_copies: Option<RemoteCopies>,
    pub reachable: bool,
    pub error: Option<String>,
    pub latency_ms: f64,
    /// Objects of the backup (chunks, chunk lists, manifest).
    pub objects: usize,
    pub missing: usize,
    pub corrupt: usize,
    pub corrupt_objects: Vec<String>,
    /// The first 20 missing.
    pub missing_objects: Vec<String>,
    /// Objects read in full.
    pub sampled: usize,
    pub read_mb_per_s: Option<f64>,
    pub est_restore_secs: Option<f64>,
    /// It holds every object intact and the repository files: it alone
    /// could restore the backup.
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RemoteCopies {
    ByStatus(BTreeMap<String, u64>),
    Unknown { error: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Integrity {
    pub sealed_root: String,
    pub sealed_root_matches_digests: bool,
    pub chunks_sampled: usize,
    pub inclusion_proofs_verified: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepositoryFiles {
    pub network: String,
    /// None when the network could not be asked.
    pub holds: Option<Presence>,
    pub error: Option<String>,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The health report of backup `id` on its target networks among `repo`
/// (every configured network).
pub async fn health(
    repo: &Repository,
    pg: &tokio_postgres::Client,
    id: &BackupId,
    full: bool,
) -> Result<HealthReport, CareError> {
    let b = load(repo, pg, id).await?;

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
    let total_bytes: u64 = b.lens.iter().sum();
    let (root_ok, proven) = merkle_check(&b, &sample);

    let mut repository = Vec::new();
    let mut recommendations = Vec::new();
    for net in repo.networks() {
        let (holds, error) = match presence(net).await {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e.to_string())),
        };
        if holds.as_ref().is_some_and(|p| !p.complete()) {
            recommendations.push(format!(
                "network {} lacks the repository config or key files, so it cannot restore on its own: run `cairn init` (it copies them) or start its store worker",
                net.name()
            ));
        }
        repository.push(RepositoryFiles {
            network: net.name().to_string(),
            holds,
            error,
        });
    }

    let mut networks = Vec::new();
    // Per network, the erasure-coded packs it does not hold intact.
    let mut lacking: Vec<BTreeSet<String>> = Vec::new();
    for net in b.targets.networks() {
        let mine: Vec<Expected> = b.expected_on(net.name());
        let to_read: Arc<Vec<Expected>> =
            Arc::new(chosen.iter().map(|&i| mine[i].clone()).collect());
        let started = Instant::now();
        let reach = net.health().await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        // Presence of every object, from listings (cheap), then the sample read in full.
        let mut present: BTreeSet<String> = BTreeSet::new();
        for prefix in [
            layout::CHUNKS_DIR.to_string(),
            layout::PACKS_DIR.to_string(),
            layout::DATA_KEYS_DIR.to_string(),
            layout::backup_dir(id),
        ] {
            if let Ok(list) = net.list(&prefix).await {
                present.extend(list);
            }
        }
        let f: Finding = if reach.is_ok() {
            check::check_network(net.clone(), to_read.clone(), tokio::time::Instant::now()).await
        } else {
            Finding {
                network: net.name().to_string(),
                ..Finding::default()
            }
        };
        let mut missing: BTreeSet<String> = b
            .expected
            .iter()
            .filter(|e| !present.contains(&e.path))
            .map(|e| e.path.clone())
            .collect();
        missing.extend(f.missing.iter().cloned());
        let whole_repo = repository
            .iter()
            .find(|r| r.network == net.name())
            .and_then(|r| r.holds.as_ref())
            .is_some_and(Presence::complete);
        let ok = reach.is_ok() && missing.is_empty() && f.corrupt.is_empty() && whole_repo;
        lacking.push(
            b.shards
                .keys()
                .filter(|p| reach.is_err() || missing.contains(*p) || f.corrupt.contains(*p))
                .cloned()
                .collect(),
        );
        if let Err(e) = &reach {
            recommendations.push(format!(
                "network {} is unreachable ({e}): check it, then run `cairn repair {id}`",
                net.name()
            ));
        } else if !missing.is_empty() || !f.corrupt.is_empty() {
            recommendations.push(format!(
                "network {} lacks {} and holds {} corrupt objects of this backup: run `cairn repair {id}`",
                net.name(),
                missing.len(),
                f.corrupt.len()
            ));
        }
        let remote_copies = match net.remote_copies().await {
            Ok(Some(by_status)) => Some(RemoteCopies::ByStatus(by_status)),
            Ok(None) => None,
            Err(e) => Some(RemoteCopies::Unknown {
                error: e.to_string(),
            }),
        };
        let throughput = f.throughput();
        networks.push(NetworkHealth {
            network: net.name().to_string(),
            remote_copies,
            reachable: reach.is_ok(),
            error: reach.err().map(|e| e.to_string()),
            latency_ms: round1(latency_ms),
            objects: b.expected.len(),
            missing: missing.len(),
            corrupt: f.corrupt.len(),
            corrupt_objects: f.corrupt.clone(),
            missing_objects: missing.iter().take(20).cloned().collect(),
            sampled: to_read.len(),
            read_mb_per_s: throughput.map(|t| round1(t / 1e6)),
            est_restore_secs: throughput.map(|t| round1(total_bytes as f64 / t)),
            ok,
        });
    }
    if !root_ok {
        recommendations.push(
            "the ledger's digests do not match the sealed root recorded when the backup was verified: run `cairn audit verify`".into(),
        );
    }
    let healthy = networks.iter().filter(|n| n.ok).count();
    let erasure = erasure_health(&b, &lacking);
    let mut status = Health::of(healthy, networks.len(), root_ok);
    if let Some(e) = &erasure {
        // No network holds an erasure-coded backup whole by itself: it
        // stands or falls by its packs' shards.
        status = if !root_ok || e.packs_lost > 0 {
            Health::Unhealthy
        } else if healthy < networks.len() {
            Health::Degraded
        } else {
            Health::Healthy
        };
        if e.packs_lost > 0 {
            recommendations.push(format!(
                "{} pack(s) ({} chunks) have fewer than the {} intact shards that rebuild them: bring their networks back; until then those chunks cannot be restored",
                e.packs_lost, e.chunks_lost, e.k
            ));
        }
        if e.packs_at_risk > 0 {
            recommendations.push(format!(
                "{} pack(s) ({} chunks) are down to {} shards: one more lost network loses them; run `cairn repair {id}`",
                e.packs_at_risk, e.chunks_at_risk, e.k
            ));
        }
    }
    Ok(HealthReport {
        backup_id: id.clone(),
        status,
        erasure,
        full,
        networks,
        integrity: Integrity {
            sealed_root: b.sealed_root.clone(),
            sealed_root_matches_digests: root_ok,
            chunks_sampled: sample.len(),
            inclusion_proofs_verified: proven,
        },
        bytes: total_bytes,
        repository,
        recommendations,
    })
}

/// How many shards of each erasure-coded pack of `b` survive, given what
/// each target network (in `b.targets` order) lacks.
fn erasure_health(b: &super::Backup, lacking: &[BTreeSet<String>]) -> Option<ErasureHealth> {
    let first = b.shards.values().next()?;
    let (k, n) = (first.k, first.files.len() as u32);
    let paths = b.objects.paths();
    let mut chunks_in: std::collections::HashMap<&str, usize> = Default::default();
    for c in &b.objects.chunks {
        *chunks_in.entry(paths[c.object].as_str()).or_default() += 1;
    }
    let mut e = ErasureHealth {
        k,
        n,
        packs: b.shards.len(),
        by_shards_left: BTreeMap::new(),
        packs_at_risk: 0,
        chunks_at_risk: 0,
        packs_lost: 0,
        chunks_lost: 0,
        worst: Vec::new(),
    };
    let mut worst: Vec<(usize, &String)> = Vec::new();
    for (path, files) in &b.shards {
        let held = files.files.len().min(lacking.len());
        let left = held - lacking.iter().filter(|l| l.contains(path)).count();
        *e.by_shards_left.entry(left).or_default() += 1;
        let chunks = chunks_in.get(path.as_str()).copied().unwrap_or(0);
        if left < files.k as usize {
            e.packs_lost += 1;
            e.chunks_lost += chunks;
        } else if left == files.k as usize {
            e.packs_at_risk += 1;
            e.chunks_at_risk += chunks;
        } else {
            continue;
        }
        worst.push((left, path));
    }
    worst.sort();
    e.worst = worst
        .into_iter()
        .take(20)
        .map(|(left, p)| format!("{p}: {left} of {n} shards left"))
        .collect();
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn health_follows_whole_copies_and_the_root() {
        assert_eq!(Health::of(2, 2, true), Health::Healthy);
        assert_eq!(Health::of(1, 2, true), Health::Degraded);
        assert_eq!(Health::of(0, 2, true), Health::Unhealthy);
        assert_eq!(Health::of(2, 2, false), Health::Unhealthy);
    }
}
