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
    pub recommendations: Vec<String>,
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
    let to_read: Arc<Vec<Expected>> =
        Arc::new(chosen.iter().map(|&i| b.expected[i].clone()).collect());
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
    for net in b.targets.networks() {
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
    Ok(HealthReport {
        backup_id: id.clone(),
        status: Health::of(healthy, networks.len(), root_ok),
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
