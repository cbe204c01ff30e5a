//! The short commands: init, setup, list, show, restore, forget, audit.

use crate::{output, whoami};
use anyhow::{bail, Context};
use cairn_bus::Bus;
use cairn_crypto::KdfParams;
use cairn_events::{BackupId, Envelope, Event, Restored, Source};
use cairn_repo::restore::{DirSink, Restorer, WriterSink};
use cairn_repo::Repository;
use futures::StreamExt;
use std::path::PathBuf;
use std::time::Duration;

fn passphrase(cfg: &cairn_config::Config) -> anyhow::Result<cairn_crypto::Secret> {
    cfg.passphrase()?
        .context("no passphrase: set CAIRN_PASSPHRASE or keys.passphrase_file")
}

/// Connects to NATS as `name`, with the streams and consumers in place.
async fn bus(cfg: &cairn_config::Config, name: &str) -> Result<Bus, cairn_bus::BusError> {
    let b = Bus::connect(&cfg.nats, name).await?;
    b.ensure_topology(&cfg.network_names()).await?;
    Ok(b)
}

/// [`bus`] for commands that work without the broker: the reason it is
/// away instead of an error, within 3 s.
async fn bus_if_up(cfg: &cairn_config::Config, name: &str) -> Result<Bus, String> {
    match tokio::time::timeout(Duration::from_secs(3), bus(cfg, name)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("NATS did not answer".into()),
    }
}

/// Connects to NATS for an optional side effect (recording an event); a
/// command that works without the broker only warns when it is away.
async fn try_bus(cfg: &cairn_config::Config) -> Option<Bus> {
    bus_if_up(cfg, "cairn-cli")
        .await
        .map_err(|e| eprintln!("cairn: warning: not recorded in the ledger: {e}"))
        .ok()
}

#[derive(clap::Args)]
pub struct InitArgs {
    /// Argon2id memory in KiB (default 65536).
    #[arg(long)]
    kdf_memory_kib: Option<u32>,
    /// Argon2id passes (default 3).
    #[arg(long)]
    kdf_iterations: Option<u32>,
    #[arg(long)]
    json: bool,
}

pub async fn init(cfg: &cairn_config::Config, a: InitArgs) -> anyhow::Result<u8> {
    let pass = passphrase(cfg)?;
    let mut kdf = KdfParams::default();
    if let Some(m) = a.kdf_memory_kib {
        kdf.memory_kib = m;
    }
    if let Some(t) = a.kdf_iterations {
        kdf.iterations = t;
    }
    let repo = Repository::from_config(cfg)?;
    let (config, key) = repo.init(&pass, kdf).await?;
    if let Some(bus) = try_bus(cfg).await {
        let env = Envelope::new(
            "cli",
            BackupId::repo(),
            Event::RepoInitialised {
                repo_id: config.repo_id.clone(),
                key_id: key.key_id.clone(),
                networks: cfg.network_names(),
            },
            &[config.repo_id.as_bytes()],
        );
        bus.publish_event(&env).await?;
    }
    if a.json {
        output::json(
            &serde_json::json!({"repo_id": config.repo_id, "key_id": key.key_id, "networks": cfg.network_names()}),
        );
    } else {
        println!(
            "repository {} initialised on {} (key {}). Keep the passphrase safe: without it nothing can be restored.",
            config.repo_id,
            cfg.network_names().join(", "),
            key.key_id
        );
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct SetupArgs {
    /// Print the stream and consumer definitions as JSON instead.
    #[arg(long)]
    print: bool,
}

pub async fn setup(cfg: &cairn_config::Config, a: SetupArgs) -> anyhow::Result<u8> {
    let subjects =
        cairn_events::subjects::Subjects::new(&cfg.nats.prefix).map_err(anyhow::Error::msg)?;
    if a.print {
        let streams = cairn_bus::topology::streams(&subjects, &cfg.nats);
        let consumers: Vec<serde_json::Value> =
            cairn_bus::topology::all_consumers(&subjects, &cfg.nats, &cfg.network_names())
                .into_iter()
                .map(|c| serde_json::json!({"stream": c.stream, "config": c.config}))
                .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"streams": streams, "consumers": consumers})
            )?
        );
        return Ok(0);
    }
    bus(cfg, "cairn-setup").await?;
    cairn_audit_ledger::db::open_config(cfg).await?;
    println!(
        "streams, consumers and database schema are in place (prefix {})",
        cfg.nats.prefix
    );
    Ok(0)
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    dataset: Option<String>,
    #[arg(long)]
    tag: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn list(cfg: &cairn_config::Config, a: ListArgs) -> anyhow::Result<u8> {
    let pg = cairn_audit_ledger::db::open_config(cfg).await?;
    let rows = cairn_audit_ledger::query::list_backups(&pg, a.dataset.as_deref(), a.tag.as_deref())
        .await?;
    if a.json {
        output::json(&serde_json::json!({ "backups": rows }));
        return Ok(0);
    }
    println!(
        "{:<36}  {:<16} {:<10} {:<20} {:>10} {:>10}  TAGS",
        "ID", "DATASET", "STATUS", "REQUESTED", "READ", "STORED"
    );
    for r in rows {
        let stat = |k: &str| {
            r.stats
                .as_ref()
                .and_then(|s| s[k].as_u64())
                .map(output::bytes)
                .unwrap_or_default()
        };
        println!(
            "{:<36}  {:<16} {:<10} {:<20} {:>10} {:>10}  {}",
            r.backup_id,
            r.dataset,
            r.status,
            r.requested_at.clone().unwrap_or_default(),
            stat("bytes_read"),
            stat("bytes_stored"),
            r.tags.join(",")
        );
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct ShowArgs {
    backup_id: String,
    #[arg(long)]
    json: bool,
}

pub async fn show(cfg: &cairn_config::Config, a: ShowArgs) -> anyhow::Result<u8> {
    let id = BackupId::parse(&a.backup_id)?;
    let pg = cairn_audit_ledger::db::open_config(cfg).await?;
    let Some(row) = cairn_audit_ledger::query::backup(&pg, id.as_str()).await? else {
        bail!("backup {id} not found in the ledger");
    };
    if a.json {
        output::json(&serde_json::to_value(&row)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&row)?);
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    backup_id: String,
    /// Restore files under this directory.
    #[arg(long, conflicts_with_all = ["to_postgres", "stdout"])]
    to: Option<PathBuf>,
    /// pg_restore a database backup into this database.
    #[arg(long, value_name = "URL", conflicts_with = "stdout")]
    to_postgres: Option<String>,
    /// Write the backup's single file to standard output.
    #[arg(long)]
    stdout: bool,
    #[arg(long)]
    json: bool,
}

pub async fn restore(cfg: &cairn_config::Config, a: RestoreArgs) -> anyhow::Result<u8> {
    let id = BackupId::parse(&a.backup_id)?;
    if a.to.is_none() && a.to_postgres.is_none() && !a.stdout {
        bail!("say where to restore: --to DIR, --to-postgres URL or --stdout");
    }
    let repo = Repository::from_config(cfg)?;
    let keyring = repo.unlock(&passphrase(cfg)?).await?;
    let restorer = Restorer::new(
        repo.fastest_first().await,
        keyring.sealer(),
        keyring.id_key(),
    );
    let manifest = restorer.manifest(&id).await?;
    // Progress on stderr when it is a terminal (stdout may carry the data).
    let bar = (!a.json && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let b = indicatif::ProgressBar::new(manifest.stats.bytes_read);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(format!("restore {id}"));
        b
    });
    let progress = |n: u64| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    };
    let (target, report) = if let Some(dir) = &a.to {
        let mut sink = DirSink::new(dir)?;
        let r = restorer.restore(&manifest, &mut sink, &progress).await?;
        (format!("dir:{}", dir.display()), r)
    } else if let Some(url) = &a.to_postgres {
        if !matches!(manifest.source, Source::Postgres { .. }) {
            bail!(
                "backup {id} is not a PostgreSQL dump (its source is {:?})",
                manifest.source
            );
        }
        let mut child = tokio::process::Command::new("pg_restore")
            .args([
                "--no-owner",
                "--exit-on-error",
                "--no-password",
                "--dbname",
                url,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("cannot run pg_restore (is postgresql-client installed?)")?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut sink = WriterSink::new(stdin);
        let r = restorer.restore(&manifest, &mut sink, &progress).await;
        drop(sink);
        let out = child.wait_with_output().await?;
        let r = r?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            bail!(
                "pg_restore failed ({}): {}",
                out.status,
                err.trim().lines().last().unwrap_or("")
            );
        }
        let safe_url = url.split('@').next_back().unwrap_or(url);
        (format!("postgres:{safe_url}"), r)
    } else {
        let mut sink = WriterSink::new(tokio::io::stdout());
        let r = restorer.restore(&manifest, &mut sink, &progress).await?;
        ("stdout".to_string(), r)
    };
    let networks: Vec<String> = report
        .chunks_from
        .iter()
        .map(|(n, c)| format!("{n}:{c}"))
        .collect();
    if let Some(bus) = try_bus(cfg).await {
        let env = Envelope::new(
            "cli",
            id.clone(),
            Event::BackupRestored(Restored {
                target: target.clone(),
                bytes_written: report.bytes_written,
                files: report.files,
                networks: networks.clone(),
                restored_by: whoami(&std::env::var("USER").unwrap_or_else(|_| "cli".into())),
            }),
            &[cairn_events::now_rfc3339().as_bytes()],
        );
        if let Err(e) = bus.publish_event(&env).await {
            eprintln!("cairn: warning: restore not recorded in the ledger: {e}");
        }
    }
    let summary = serde_json::json!({
        "backup_id": id.to_string(),
        "target": target,
        "bytes_written": report.bytes_written,
        "files": report.files,
        "dirs": report.dirs,
        "symlinks": report.symlinks,
        "chunks_from": report.chunks_from,
    });
    if a.json {
        output::json(&summary);
    } else if !a.stdout {
        println!(
            "restored backup {id} to {target}: {} in {} files (every chunk and the Merkle root verified)",
            output::bytes(report.bytes_written),
            report.files
        );
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct ForgetArgs {
    backup_id: String,
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the retention worker.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

pub async fn forget(cfg: &cairn_config::Config, a: ForgetArgs) -> anyhow::Result<u8> {
    let id = BackupId::parse(&a.backup_id)?;
    let repo = Repository::from_config(cfg)?;
    if !repo.list_backups().await?.contains(&id) {
        bail!(
            "backup {id} not found on any network ({})",
            cfg.network_names().join(", ")
        );
    }
    let bus = bus(cfg, "cairn-cli").await?;
    let mut events = bus
        .client
        .subscribe(format!(
            "{}.evt.backup.forgotten.{id}",
            bus.subjects.prefix()
        ))
        .await?;
    let env = Envelope::new(
        "cli",
        id.clone(),
        Event::ForgetRequested {
            requested_by: whoami(&std::env::var("USER").unwrap_or_else(|_| "cli".into())),
        },
        &[cairn_events::now_rfc3339().as_bytes()],
    );
    bus.publish_event(&env).await?;
    let got = tokio::time::timeout(Duration::from_secs(a.timeout), events.next()).await;
    let Ok(Some(msg)) = got else {
        eprintln!("cairn: no retention worker answered within {} s; the request stays queued. Start one with `cairn serve retention`.", a.timeout);
        return Ok(crate::exit::NO_WORKER);
    };
    let env: Envelope = cairn_events::decode(&msg.payload, "event")?;
    let Event::BackupForgotten(f) = env.event else {
        bail!("unexpected answer {}", env.event.kind());
    };
    if a.json {
        output::json(
            &serde_json::json!({"backup_id": id.to_string(), "status": "forgotten", "chunks_deleted": f.chunks_deleted, "networks": f.networks, "retained_on": f.retained_on}),
        );
    } else {
        println!(
            "forgot backup {id}: {} chunks deleted from {}",
            f.chunks_deleted,
            f.networks.join(", ")
        );
    }
    Ok(0)
}

/// The log's public key: `--key` (the key or a file holding it), else the
/// configured one, if its file exists.
fn log_public_key(cfg: &cairn_config::Config, key: Option<&str>) -> anyhow::Result<Option<String>> {
    let (key, from) = if let Some(k) = key {
        (read_key_arg(k), "--key".to_string())
    } else {
        match cfg.audit.public_key_path() {
            Some(p) if p.exists() => (
                std::fs::read_to_string(&p)
                    .with_context(|| p.display().to_string())?
                    .trim()
                    .to_string(),
                p.display().to_string(),
            ),
            _ => return Ok(None),
        }
    };
    cairn_tlog::checkpoint::key_name(&key).with_context(|| {
        format!("{from}: expected the log's public key (<origin>+<id>+<key>, `cairn audit keygen`'s KEY_FILE.pub)")
    })?;
    Ok(Some(key))
}

/// A key given on the command line, or the file holding it.
fn read_key_arg(key: &str) -> String {
    match std::fs::read_to_string(key) {
        Ok(text) => text.trim().to_string(),
        Err(_) => key.trim().to_string(),
    }
}

pub async fn audit_verify(
    cfg: &cairn_config::Config,
    key: Option<&str>,
    as_json: bool,
) -> anyhow::Result<u8> {
    let pg = cairn_audit_ledger::db::open_config(cfg).await?;
    let key = log_public_key(cfg, key)?;
    let bus = bus_if_up(cfg, "cairn-audit").await;
    let repo = cairn_repo::Repository::from_config(cfg)?;
    let state = cfg
        .audit
        .signing_key_file
        .as_deref()
        .map(cairn_audit_ledger::checkpoint::state_file);
    let witnesses = cairn_audit_ledger::check::gather(
        key,
        bus.as_ref().map_err(Clone::clone),
        Some(&repo),
        state.as_deref(),
    )
    .await;
    let report = cairn_audit_ledger::check::verify(&pg, witnesses).await?;
    let ok = report.problems.is_empty();
    if as_json {
        output::json(&serde_json::json!({"ok": ok, "report": report}));
    } else {
        for n in &report.notes {
            eprintln!("warning: {n}");
        }
        if ok {
            let held = report.checkpoints.iter().map(|c| c.size).max();
            println!(
                "ledger intact: {} entries, chain {}, Merkle root {}",
                report.entries, report.chain_hash, report.merkle_root
            );
            println!(
                "held against {} signed checkpoints (newest at {}) and {} entries published on audit.entry",
                report.checkpoints.len(),
                held.map_or("-".to_string(), |s| s.to_string()),
                report.published_entries_compared
            );
        } else {
            for p in &report.problems {
                eprintln!("{p}");
            }
        }
    }
    if ok {
        Ok(0)
    } else {
        bail!("ledger tampered: {}", report.problems[0])
    }
}

pub async fn audit_rebuild(cfg: &cairn_config::Config, as_json: bool) -> anyhow::Result<u8> {
    let pg = cairn_audit_ledger::db::open_as(cfg, cairn_audit_ledger::db::Role::Ledger).await?;
    let bus = bus(cfg, "cairn-audit").await?;
    let rebuilt = cairn_audit_ledger::rebuild::rebuild(&bus, pg).await?;
    if as_json {
        output::json(&serde_json::to_value(&rebuilt)?);
    } else {
        println!(
            "rebuilt {} entries, Merkle root {}; signed checkpoints matching: {}",
            rebuilt.entries,
            rebuilt.root,
            rebuilt.checkpoints_matching.len()
        );
    }
    if let Some(size) = rebuilt.checkpoints_not_matching.first() {
        bail!(
            "the rebuilt log does not have the root signed at size {size}: the copy on audit.entry is incomplete or not this log's"
        );
    }
    Ok(0)
}

pub fn audit_keygen(origin: &str, key_file: &std::path::Path) -> anyhow::Result<u8> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (skey, vkey) = cairn_tlog::checkpoint::generate(origin)?;
    let public = {
        let mut p = key_file.as_os_str().to_owned();
        p.push(".pub");
        std::path::PathBuf::from(p)
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(key_file)
        .with_context(|| {
            format!(
                "{} (an existing key is never overwritten)",
                key_file.display()
            )
        })?;
    f.write_all(format!("{skey}\n").as_bytes())?;
    std::fs::write(&public, format!("{vkey}\n")).with_context(|| public.display().to_string())?;
    println!("{vkey}");
    eprintln!(
        "signing key in {} (keep it off the database host); public key in {}: give it to auditors",
        key_file.display(),
        public.display()
    );
    Ok(0)
}

pub async fn audit_checkpoint(cfg: &cairn_config::Config, as_json: bool) -> anyhow::Result<u8> {
    let key_file =
        cfg.audit.signing_key_file.as_deref().context(
            "no signing key: set [audit] signing_key_file (`cairn audit keygen` makes one)",
        )?;
    let mut pg = cairn_audit_ledger::db::open_as(cfg, cairn_audit_ledger::db::Role::Ledger).await?;
    let issued = cairn_audit_ledger::checkpoint::issue(&mut pg, key_file).await?;
    // Copies outside the database: the AUDIT stream and every network.
    let bus = bus_if_up(cfg, "cairn-audit")
        .await
        .map_err(|e| tracing::warn!(error = e, "the checkpoint is not published"))
        .ok();
    let repo = cairn_repo::Repository::from_config(cfg)?;
    let copies = cairn_audit_ledger::checkpoint::send_out(&issued, bus.as_ref(), &repo).await;
    let status = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    if as_json {
        output::json(&serde_json::json!({
            "size": issued.size,
            "root": hex::encode(issued.root.0),
            "extends": issued.extends,
            "checkpoint": String::from_utf8_lossy(&issued.note),
            "published": status(&copies.published),
            "networks": copies.networks.iter().map(|(n, r)| (n.clone(), status(r))).collect::<std::collections::BTreeMap<_, _>>(),
        }));
    } else {
        print!("{}", String::from_utf8_lossy(&issued.note));
        eprintln!("published: {}", status(&copies.published));
        for (n, r) in &copies.networks {
            eprintln!("network {n}: {}", status(r));
        }
    }
    Ok(0)
}

pub async fn audit_prove(
    cfg: &cairn_config::Config,
    seq: u64,
    out: &std::path::Path,
) -> anyhow::Result<u8> {
    if seq == 0 {
        bail!("entries are numbered from 1");
    }
    let pg = cairn_audit_ledger::db::open_config(cfg).await?;
    let cosigned = cosigned_if_up(cfg).await;
    let p = cairn_audit_ledger::prove::inclusion(&pg, seq, &cosigned).await?;
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    let entry = out.join(format!("entry-{seq}.bin"));
    let proof = out.join(format!("entry-{seq}.tlog-proof"));
    std::fs::write(&entry, &p.entry).with_context(|| entry.display().to_string())?;
    std::fs::write(&proof, &p.file).with_context(|| proof.display().to_string())?;
    println!(
        "entry {seq}: {} and {} (against the checkpoint of size {})",
        entry.display(),
        proof.display(),
        p.checkpoint_size
    );
    Ok(0)
}

pub async fn audit_export(
    cfg: &cairn_config::Config,
    dir: &std::path::Path,
    as_json: bool,
) -> anyhow::Result<u8> {
    let pg = cairn_audit_ledger::db::open_config(cfg).await?;
    let cosigned = cosigned_if_up(cfg).await;
    let done = cairn_audit_ledger::export::export(&pg, dir, &cosigned).await?;
    if as_json {
        output::json(&serde_json::to_value(&done)?);
    } else {
        println!(
            "{}: {} entries in {} entry bundles, {} hash tiles, and the checkpoint",
            dir.display(),
            done.size,
            done.entry_bundles,
            done.hash_tiles
        );
    }
    Ok(0)
}

pub async fn audit_evidence(
    cfg: &cairn_config::Config,
    backup_id: &str,
    out: Option<&std::path::Path>,
    as_json: bool,
) -> anyhow::Result<u8> {
    let id = BackupId::parse(backup_id)?;
    let pg = cairn_audit_ledger::db::open_config(cfg).await?;
    let cosigned = cosigned_if_up(cfg).await;
    let ev = cairn_audit_ledger::evidence::build(&pg, id.as_str(), &cosigned).await?;
    let bundle = serde_json::to_vec_pretty(&ev)?;
    if let Some(out) = out {
        std::fs::write(out, &bundle).with_context(|| out.display().to_string())?;
    }
    if as_json {
        println!("{}", String::from_utf8_lossy(&bundle));
        return Ok(0);
    }
    print_evidence(&ev.backup_id, &ev.summary);
    let size = cairn_tlog::checkpoint::unverified(ev.checkpoint.as_bytes())
        .ok()
        .map(|(s, _)| s);
    println!(
        "{} ledger entries, each with an inclusion proof against the checkpoint of size {}{}",
        ev.entries.len(),
        size.map_or("?".into(), |s| s.to_string()),
        if cosigned.contains_key(&size.unwrap_or(0)) {
            " (cosigned)"
        } else {
            ""
        }
    );
    match out {
        Some(out) => println!(
            "bundle: {} (check it with `cairn audit check-proof {} --key LOG.pub`)",
            out.display(),
            out.display()
        ),
        None => println!("write the bundle with --out FILE"),
    }
    Ok(0)
}

fn print_evidence(backup_id: &str, s: &cairn_audit_ledger::evidence::Summary) {
    println!(
        "backup {backup_id} ({}), dataset {:?}, requested by {} at {}",
        if s.status.is_empty() {
            "in progress"
        } else {
            &s.status
        },
        s.dataset,
        s.requested_by,
        s.requested_at
    );
    if let Some(m) = &s.manifest {
        println!("manifest {}: sha256 {} ({} bytes)", m.path, m.sha256, m.len);
    }
    println!(
        "Merkle root {} (chunks), {} (sealed)",
        s.merkle_root, s.sealed_root
    );
    for (net, n) in &s.networks {
        let verified = match n.verified {
            Some(true) => "verified",
            Some(false) => "NOT verified",
            None => "not yet verified",
        };
        println!(
            "network {net}: {} objects stored, {verified}; {}",
            n.objects_stored,
            n.locators.join(", ")
        );
    }
}

/// The witnesses' cosigned checkpoints, when the broker answers (proofs
/// then prefer them); none otherwise, with a warning.
async fn cosigned_if_up(cfg: &cairn_config::Config) -> std::collections::BTreeMap<u64, Vec<u8>> {
    let got = match bus_if_up(cfg, "cairn-audit").await {
        Ok(bus) => cairn_audit_ledger::prove::cosigned(&bus)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    got.unwrap_or_else(|e| {
        eprintln!("warning: cosigned checkpoints not read ({e}); proving against the log's own");
        Default::default()
    })
}

pub async fn audit_consistency(
    cfg: &cairn_config::Config,
    old: u64,
    new: u64,
    out: &std::path::Path,
) -> anyhow::Result<u8> {
    let pg = cairn_audit_ledger::db::open_config(cfg).await?;
    let file = cairn_audit_ledger::prove::consistency(&pg, old, new).await?;
    std::fs::write(out, file).with_context(|| out.display().to_string())?;
    println!("consistency of sizes {old} and {new}: {}", out.display());
    Ok(0)
}

/// The witness of this host: its key, the log's public key, the database
/// (for consistency proofs, checked against signed roots) and the broker.
pub async fn witness(
    cfg: &cairn_config::Config,
) -> anyhow::Result<Option<cairn_verify::witness::Witness>> {
    let Some(key_file) = cfg.audit.witness_key_file.clone() else {
        return Ok(None);
    };
    let log_vkey = log_public_key(cfg, None)?.with_context(|| {
        format!(
            "the witness ({}) needs the log's public key: set [audit] public_key_file",
            key_file.display()
        )
    })?;
    let pg = cairn_audit_ledger::db::open_as(cfg, cairn_audit_ledger::db::Role::Reader).await?;
    let bus = bus(cfg, "cairn-witness").await?;
    Ok(Some(cairn_verify::witness::Witness::new(
        key_file, log_vkey, pg, bus,
    )?))
}

pub async fn audit_witness(cfg: &cairn_config::Config, as_json: bool) -> anyhow::Result<u8> {
    use cairn_verify::witness::Witnessed;
    let w = witness(cfg)
        .await?
        .context("no witness key: set [audit] witness_key_file (`cairn audit keygen` makes one)")?;
    let done = w.witness_once().await?;
    let (status, size) = match &done {
        Witnessed::NoCheckpoint => ("no checkpoint yet", None),
        Witnessed::Unchanged { size } => ("already cosigned", Some(*size)),
        Witnessed::Older { size, .. } => ("older than the last cosigned", Some(*size)),
        Witnessed::Cosigned { size, .. } => ("cosigned", Some(*size)),
    };
    if as_json {
        let mut v = serde_json::json!({ "status": status, "size": size });
        if let Witnessed::Cosigned { note, extends, .. } = &done {
            v["checkpoint"] = String::from_utf8_lossy(note).into();
            v["extends"] = serde_json::json!(extends);
        }
        output::json(&v);
    } else {
        match &done {
            Witnessed::Cosigned { note, .. } => print!("{}", String::from_utf8_lossy(note)),
            _ => println!(
                "{status}{}",
                size.map(|s| format!(" (size {s})")).unwrap_or_default()
            ),
        }
    }
    Ok(0)
}

pub fn audit_check_proof(
    proof: &std::path::Path,
    entry: Option<&std::path::Path>,
    key: &str,
    witness_key: Option<&str>,
) -> anyhow::Result<u8> {
    let vkey = read_key_arg(key);
    let witness_vkey = witness_key.map(read_key_arg);
    let cosigned_by = |note: &[u8]| -> anyhow::Result<()> {
        if let Some(w) = &witness_vkey {
            cairn_tlog::checkpoint::verify_cosigned(note, &vkey, w)
                .context("the checkpoint is not cosigned by the witness")?;
        }
        Ok(())
    };
    let file = std::fs::read(proof).with_context(|| proof.display().to_string())?;
    let format = (file.first() == Some(&b'{'))
        .then(|| serde_json::from_slice::<serde_json::Value>(&file).ok())
        .flatten()
        .and_then(|v| v["format"].as_str().map(str::to_string));
    if format.as_deref() == Some(cairn_audit_ledger::evidence::FORMAT) {
        let c = cairn_audit_ledger::evidence::check(&file, &vkey, witness_vkey.as_deref())
            .with_context(|| format!("{} is not valid evidence", proof.display()))?;
        print_evidence(&c.backup_id, &c.summary);
        println!(
            "all {} entries are in log {} (checkpoint of size {}{})",
            c.entries,
            c.origin,
            c.checkpoint_size,
            if c.cosigned {
                ", cosigned by the witness"
            } else {
                ""
            }
        );
        return Ok(0);
    }
    if file.first() == Some(&b'{') {
        if witness_vkey.is_some() {
            bail!("--witness-key applies to inclusion proofs; a consistency proof relates two of the log's own checkpoints");
        }
        let (old, new) = cairn_tlog::proof_file::check_consistency(&file, &vkey)
            .with_context(|| format!("{} is not a valid consistency proof", proof.display()))?;
        println!(
            "log {}: the tree of {} entries extends the tree of {} (roots {} and {})",
            new.origin(),
            new.size(),
            old.size(),
            hex::encode(new.hash().0),
            hex::encode(old.hash().0)
        );
        return Ok(0);
    }
    let entry = entry.context("an inclusion proof needs the entry's bytes: --entry FILE")?;
    let bytes = std::fs::read(entry).with_context(|| entry.display().to_string())?;
    let (p, cp) = cairn_tlog::proof_file::check(&file, &bytes, &vkey)
        .with_context(|| format!("{} does not prove {}", proof.display(), entry.display()))?;
    cosigned_by(&p.checkpoint)?;
    println!(
        "entry {} is in log {} (checkpoint of size {}, root {})",
        p.index + 1,
        cp.origin(),
        cp.size(),
        hex::encode(cp.hash().0)
    );
    Ok(0)
}

pub async fn audit_log(
    cfg: &cairn_config::Config,
    filter: cairn_audit_ledger::query::EntryFilter,
    as_json: bool,
) -> anyhow::Result<u8> {
    if let Some(since) = &filter.since {
        time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
            .with_context(|| {
                format!("--since {since:?}: expected an RFC 3339 time such as 2026-11-24T08:00:00Z")
            })?;
    }
    if filter.limit.is_some_and(|l| l < 0) {
        bail!("--limit must not be negative");
    }
    let pg = cairn_audit_ledger::db::open_config(cfg).await?;
    let rows = cairn_audit_ledger::query::entries(&pg, &filter).await?;
    if as_json {
        output::json(&serde_json::json!({ "entries": rows }));
    } else {
        for r in &rows {
            println!(
                "{:>8}  {}  {:<18} {}  {}",
                r.seq,
                r.recorded_at,
                r.kind,
                r.backup_id,
                r.dataset.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(0)
}
