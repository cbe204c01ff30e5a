//! `cairn health` and `cairn repair`: print what `cairn_verify::care` finds
//! and does.

use crate::{exit, output, whoami};
use anyhow::bail;
use cairn_bus::Bus;
use cairn_events::BackupId;
use cairn_verify::care::{self, Health};
use serde_json::json;

pub async fn health(
    cfg: &cairn_config::Config,
    id: &str,
    full: bool,
    as_json: bool,
) -> anyhow::Result<u8> {
    let id = BackupId::parse(id)?;
    let pg = cairn_audit_ledger::db::open_config(cfg).await?;
    let (health, report) = care::health(cfg, &pg, &id, full).await?;
    let status = health.as_str();
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
        let integrity = &report["integrity"];
        println!(
            "  integrity: {} chunks sampled, {} inclusion proofs verified, sealed root {}",
            integrity["chunks_sampled"],
            integrity["inclusion_proofs_verified"],
            if integrity["sealed_root_matches_digests"] == true {
                "matches"
            } else {
                "DOES NOT MATCH"
            }
        );
        for r in report["recommendations"].as_array().into_iter().flatten() {
            println!("  → {}", r.as_str().unwrap_or_default());
        }
    }
    Ok(match health {
        Health::Healthy => 0,
        Health::Degraded => exit::DEGRADED,
        Health::Unhealthy => 1,
    })
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
        let r = care::repair_backup(cfg, &pg, &bus, &id, &whoami("repair")).await?;
        all_ok &= r.ok;
        if !as_json {
            if r.ok {
                println!(
                    "backup {id}: {} objects copied; every network holds it intact",
                    r.objects_copied
                );
            } else {
                println!(
                    "backup {id}: {} objects copied; still incomplete: {}",
                    r.objects_copied,
                    r.problems.join("; ")
                );
            }
        }
        results.push(json!({"backup_id": id.to_string(), "objects_copied": r.objects_copied, "ok": r.ok, "problems": r.problems}));
    }
    if as_json {
        output::json(&json!({"repaired": results, "ok": all_ok}));
    }
    Ok(if all_ok { 0 } else { exit::DEGRADED })
}
