//! The verify stage: after `backup.ingested`, reads every object of the
//! backup back from every target network and checks it against the digest the
//! ledger recorded when it was sealed; checks the public chunk list against the
//! Merkle root ingest reported; then emits `backup.completed`, `.degraded` or
//! `.failed` with per-network findings. It holds no key: everything it checks
//! is ciphertext and hashes.

use cairn_bus::{Bus, Delivery, Failure, Handler};
use cairn_crypto::merkle::RootBuilder;
use cairn_events::subjects::stage;
use cairn_events::{
    decode, BackupId, Envelope, Event, Ingested, NetworkReport, ObjectKey, Outcome, Stats,
};
use cairn_networks::DynNetwork;
use cairn_repo::{chunklist, layout, Repository};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub struct VerifyWorker {
    pub bus: Bus,
    pub repo: Repository,
    pub pg: tokio_postgres::Client,
    pub timeout: Duration,
    pub source: String,
}

const POLL: Duration = Duration::from_millis(200);
const READS_IN_FLIGHT: usize = 8;

#[derive(Default)]
struct NetFinding {
    missing: u64,
    corrupt: u64,
    detail: String,
}

/// Checks one network: every object present and hashing to its digest.
/// Keeps polling missing objects until `deadline` (stores may lag).
async fn check_network(
    net: DynNetwork,
    objects: Arc<Vec<(String, String)>>,
    deadline: Instant,
) -> NetFinding {
    let mut pending: Vec<usize> = (0..objects.len()).collect();
    let mut f = NetFinding::default();
    loop {
        let results: Vec<(usize, Result<bool, String>)> = futures::stream::iter(pending.clone())
            .map(|i| {
                let net = net.clone();
                let objects = objects.clone();
                async move {
                    let (path, want) = &objects[i];
                    let got = match net.get(path).await {
                        Ok(bytes) => {
                            let sha = tokio::task::spawn_blocking(move || {
                                hex::encode(Sha256::digest(&bytes))
                            })
                            .await
                            .unwrap_or_default();
                            Ok(&sha == want)
                        }
                        Err(e) if e.is_not_found() => Err(format!("{path} missing")),
                        Err(e) => Err(e.to_string()),
                    };
                    (i, got)
                }
            })
            .buffer_unordered(READS_IN_FLIGHT)
            .collect()
            .await;
        pending.clear();
        let mut last_err = String::new();
        for (i, r) in results {
            match r {
                Ok(true) => {}
                Ok(false) => {
                    f.corrupt += 1;
                    if f.detail.is_empty() {
                        f.detail = format!("{} does not match its recorded SHA-256", objects[i].0);
                    }
                }
                Err(e) => {
                    pending.push(i);
                    last_err = e;
                }
            }
        }
        if pending.is_empty() || Instant::now() >= deadline {
            f.missing = pending.len() as u64;
            if f.missing > 0 && f.detail.is_empty() {
                f.detail = format!(
                    "{} objects not readable after waiting; last error: {last_err}",
                    f.missing
                );
            }
            return f;
        }
        pending.sort_unstable();
        tokio::time::sleep(POLL).await;
    }
}

impl VerifyWorker {
    async fn outcome(&self, backup: &BackupId, ing: &Ingested) -> Outcome {
        let deadline = Instant::now() + self.timeout;
        let mut outcome = Outcome {
            stats: ing.stats.clone(),
            merkle_root: ing.merkle_root.clone(),
            ..Default::default()
        };
        let targets = self.repo.subset(&ing.networks);
        let unknown: Vec<&String> = ing
            .networks
            .iter()
            .filter(|n| self.repo.network(n).is_none())
            .collect();
        for n in &unknown {
            outcome.networks.push(NetworkReport {
                network: (*n).clone(),
                ok: false,
                detail: "not configured on this verify worker".into(),
                ..Default::default()
            });
        }

        // 1. The public chunk list, checked against the root from ingest.
        let pages = loop {
            match targets.chunk_pages(backup, ing.chunk_pages).await {
                Ok(p) => break p,
                Err(e) if Instant::now() >= deadline => {
                    outcome.reasons.push(format!("chunk list unreadable: {e}"));
                    return outcome;
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        };
        let (count, root) = chunklist::root_of_pages(&pages);
        if hex::encode(root) != ing.merkle_root || count != ing.stats.chunks_total {
            outcome.reasons.push(format!(
                "chunk list ({count} chunks, root {}) does not match what ingest reported ({} chunks, root {})",
                hex::encode(root),
                ing.stats.chunks_total,
                ing.merkle_root
            ));
            return outcome;
        }

        // 2. Every object's expected digest, from the ledger.
        let mut keys: Vec<ObjectKey> = Vec::with_capacity(count as usize + pages.len() + 1);
        let mut new_chunks = Vec::new();
        for p in &pages {
            let fresh: std::collections::HashSet<u32> = p.new.iter().copied().collect();
            for (i, id) in p.ids.iter().enumerate() {
                keys.push(ObjectKey::Chunk { id: *id });
                if fresh.contains(&(i as u32)) {
                    new_chunks.push(keys.len() - 1);
                }
            }
        }
        let chunk_count = keys.len();
        for page in 0..ing.chunk_pages {
            keys.push(ObjectKey::ChunkList {
                backup_id: backup.clone(),
                page,
            });
        }
        keys.push(ObjectKey::Manifest {
            backup_id: backup.clone(),
        });
        let paths: Vec<String> = keys.iter().map(layout::object).collect();
        let mut digests: HashMap<String, (String, u64)> = HashMap::new();
        loop {
            let missing: Vec<String> = paths
                .iter()
                .filter(|p| !digests.contains_key(*p))
                .cloned()
                .collect();
            if missing.is_empty() {
                break;
            }
            for part in missing.chunks(10_000) {
                match cairn_audit_ledger::query::digests(&self.pg, part).await {
                    Ok(found) => digests.extend(found),
                    Err(e) => tracing::warn!(error = %e, "digest lookup failed"),
                }
            }
            if Instant::now() >= deadline {
                let n = paths.iter().filter(|p| !digests.contains_key(*p)).count();
                outcome.reasons.push(format!(
                    "{n} objects have no digest in the ledger (is the ledger worker running?)"
                ));
                return outcome;
            }
            if paths.iter().any(|p| !digests.contains_key(p)) {
                tokio::time::sleep(POLL).await;
            }
        }
        let objects: Arc<Vec<(String, String)>> = Arc::new(
            paths
                .iter()
                .map(|p| (p.clone(), digests[p].0.clone()))
                .collect(),
        );

        // 3. Every network, in parallel.
        let checks = targets
            .networks()
            .iter()
            .map(|n| {
                let n = n.clone();
                let objects = objects.clone();
                async move {
                    (
                        n.name().to_string(),
                        check_network(n, objects, deadline).await,
                    )
                }
            })
            .collect::<Vec<_>>();
        for (name, f) in futures::future::join_all(checks).await {
            let ok = f.missing == 0 && f.corrupt == 0;
            if !ok {
                outcome
                    .reasons
                    .push(format!("network {name}: {}", f.detail));
            }
            outcome.networks.push(NetworkReport {
                network: name,
                ok,
                missing: f.missing,
                corrupt: f.corrupt,
                detail: f.detail,
            });
        }

        // 4. Figures and the sealed root (chunk id ‖ ciphertext digest).
        let mut sealed = RootBuilder::new();
        for (key, path) in keys.iter().zip(&paths).take(chunk_count) {
            if let ObjectKey::Chunk { id } = key {
                let mut leaf = id.0.to_vec();
                leaf.extend(hex::decode(&digests[path].0).unwrap_or_default());
                sealed.push(&leaf);
            }
        }
        outcome.sealed_root = hex::encode(sealed.root());
        let meta_bytes: u64 = paths[chunk_count..].iter().map(|p| digests[p].1).sum();
        let chunk_bytes: u64 = new_chunks.iter().map(|&i| digests[&paths[i]].1).sum();
        outcome.stats = Stats {
            bytes_stored: chunk_bytes + meta_bytes,
            chunks_new: new_chunks.len() as u64,
            ..ing.stats.clone()
        };
        outcome
    }
}

#[async_trait::async_trait]
impl Handler for VerifyWorker {
    async fn handle(&self, d: &Delivery) -> Result<(), Failure> {
        let env: Envelope =
            decode(&d.payload, "event").map_err(|e| Failure::Permanent(e.to_string()))?;
        let Event::BackupIngested(ing) = &env.event else {
            return Err(Failure::Permanent(format!(
                "expected backup.ingested on {}, got {}",
                d.subject,
                env.event.kind()
            )));
        };
        let outcome = self.outcome(&env.backup_id, ing).await;
        let healthy = outcome.networks.iter().filter(|n| n.ok).count();
        let event = if outcome.reasons.is_empty() {
            Event::BackupCompleted(outcome)
        } else if healthy > 0 {
            Event::BackupDegraded(outcome)
        } else {
            Event::BackupFailed(outcome)
        };
        tracing::info!(backup = %env.backup_id, result = event.kind(), "verified");
        let out = Envelope::new(
            self.source.clone(),
            env.backup_id.clone(),
            event,
            &[env.id.as_str().as_bytes()],
        );
        self.bus
            .publish_event(&out)
            .await
            .map_err(|e| Failure::Retry(e.to_string()))
    }
}

/// Runs the verify worker until the process stops.
pub async fn run(worker: VerifyWorker, concurrency: usize) -> anyhow::Result<()> {
    let bus = worker.bus.clone();
    cairn_bus::worker::run(bus, stage::VERIFY, None, concurrency, Arc::new(worker)).await?;
    Ok(())
}
