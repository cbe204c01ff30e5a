//! `cairn health` and `cairn repair`: how well each network holds a backup,
//! and putting back what a network lost, from any intact copy. Neither needs
//! the key: they compare ciphertext with the digests the ledger recorded at
//! sealing, and those digests with the sealed Merkle root recorded when the
//! backup was verified (`rs_merkle` inclusion proofs for sampled chunks).

use crate::{exit, output, whoami};
use anyhow::{bail, Context};
use cairn_bus::Bus;
use cairn_crypto::merkle::{leaf_hash, Rfc6962};
use cairn_events::{BackupId, Envelope, Event, NetworkReport, ObjectDigest, Outcome, Stored};
use cairn_networks::PutMode;
use cairn_repo::check::{self, Expected, Finding};
use cairn_repo::{layout, Repository};
use cairn_verify::{sealed_leaves, BackupObjects};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// What the ledger and the networks say a backup consists of.
struct Backup {
    id: BackupId,
    targets: Repository,
    objects: BackupObjects,
    expected: Vec<Expected>,
    lens: Vec<u64>,
    sealed_root: String,
    outcome: Option<Outcome>,
}

async fn load(
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
fn merkle_check(b: &Backup, sample: &[usize]) -> (bool, usize) {
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

pub async fn health(
    cfg: &cairn_config::Config,
    id: &str,
    full: bool,
    as_json: bool,
) -> anyhow::Result<u8> {
    let id = BackupId::parse(id)?;
    let pg = cairn_audit_ledger::db::open_config(cfg).await?;
    let b = load(cfg, &pg, &id).await?;

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
        reports.push(json!({
            "network": net.name(),
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
    if as_json {
        output::json(&report);
    } else {
        println!("backup {id}: {status}");
        for r in report["networks"].as_array().expect("array") {
            println!(
                "  {:<12} {:<11} missing {:>5}  corrupt {:>5}  latency {:>7} ms  est. restore {} s",
                r["network"].as_str().unwrap_or(""),
                if r["ok"].as_bool() == Some(true) {
                    "ok"
                } else if r["reachable"].as_bool() == Some(true) {
                    "incomplete"
                } else {
                    "unreachable"
                },
                r["missing"],
                r["corrupt"],
                r["latency_ms"],
                r["est_restore_secs"]
            );
        }
        println!(
            "  integrity: {} chunks sampled, {} inclusion proofs verified, sealed root {}",
            sample.len(),
            proven,
            if root_ok { "matches" } else { "DOES NOT MATCH" }
        );
        for r in &recommendations {
            println!("  → {r}");
        }
    }
    Ok(match status {
        "healthy" => 0,
        "degraded" => exit::DEGRADED,
        _ => 1,
    })
}

/// Copies every missing or corrupt object of `b` onto the networks that
/// need it, from a network whose copy hashes right. Returns the findings after.
async fn repair_one(b: &Backup, bus: &Bus) -> anyhow::Result<(u64, Vec<Finding>)> {
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
                    whoami("repair"),
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

pub async fn repair(
    cfg: &cairn_config::Config,
    id: Option<&str>,
    all: bool,
    as_json: bool,
) -> anyhow::Result<u8> {
    let pg = cairn_audit_ledger::db::open_config(cfg).await?;
    let ids: Vec<BackupId> = match (id, all) {
        (Some(id), false) => vec![BackupId::parse(id)?],
        (None, true) => cairn_audit_ledger::query::list_backups(&pg, None, None)
            .await?
            .into_iter()
            .filter(|r| matches!(r.status.as_str(), "completed" | "degraded"))
            .filter_map(|r| BackupId::parse(&r.backup_id).ok())
            .collect(),
        _ => bail!("give a BACKUP_ID or --all"),
    };
    let bus = Bus::connect(&cfg.nats, "cairn-repair").await?;
    bus.ensure_topology(&cfg.network_names()).await?;
    let mut results = Vec::new();
    let mut all_ok = true;
    for id in ids {
        let b = load(cfg, &pg, &id).await?;
        let (copied, after) = repair_one(&b, &bus).await?;
        let ok = after.iter().all(|f| f.ok());
        all_ok &= ok;
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
                whoami("repair"),
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
        if !as_json {
            if ok {
                println!("backup {id}: {copied} objects copied; every network holds it intact");
            } else {
                println!(
                    "backup {id}: {copied} objects copied; still incomplete: {}",
                    still.join("; ")
                );
            }
        }
        results.push(json!({"backup_id": id.to_string(), "objects_copied": copied, "ok": ok, "problems": still}));
    }
    if as_json {
        output::json(&json!({"repaired": results, "ok": all_ok}));
    }
    Ok(if all_ok { 0 } else { exit::DEGRADED })
}
