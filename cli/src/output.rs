//! What the CLI prints: one JSON object per command with `--json`, short
//! human lines otherwise.

use cairn_events::{BackupId, Outcome};

pub fn json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string(v).expect("JSON value serializes")
    );
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn backup_outcome(id: &BackupId, status: &str, o: &Outcome, as_json: bool) {
    if as_json {
        json(&serde_json::json!({
            "backup_id": id.to_string(),
            "status": status,
            "bytes_read": o.stats.bytes_read,
            "bytes_stored": o.stats.bytes_stored,
            "chunks_total": o.stats.chunks_total,
            "chunks_new": o.stats.chunks_new,
            "files": o.stats.files,
            "merkle_root": o.merkle_root,
            "sealed_root": o.sealed_root,
            "networks": o.networks,
            "reasons": o.reasons,
        }));
        return;
    }
    let s = &o.stats;
    println!(
        "backup {id} {status}: {} read, {} stored, {} chunks ({} new), {} files",
        bytes(s.bytes_read),
        bytes(s.bytes_stored),
        s.chunks_total,
        s.chunks_new,
        s.files
    );
    for r in &o.reasons {
        eprintln!("  {r}");
    }
    if o.reasons.is_empty() {
        for n in o.networks.iter().filter(|n| !n.ok) {
            eprintln!(
                "  warning: network {} does not hold a verified copy ({}); the policy is met by the others. `cairn repair {id}` once it is back",
                n.network, n.detail
            );
        }
    }
}
