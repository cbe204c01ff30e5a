//! `cairn serve`: runs the chosen stage workers in this process until it is
//! stopped, and fails loudly if any of them stops.

use crate::Stage;
use anyhow::{bail, Context};
use cairn_audit_ledger::db::{open_as, Role};
use cairn_bus::Bus;
use cairn_repo::Repository;
use std::sync::Arc;
use std::time::Duration;

pub async fn serve(
    cfg: &cairn_config::Config,
    stages: &[Stage],
    only_networks: &[String],
) -> anyhow::Result<u8> {
    let has = |s: Stage| stages.contains(&Stage::All) || stages.contains(&s);
    let bus = Bus::connect(&cfg.nats, "cairn-serve").await?;
    bus.ensure_topology(&cfg.network_names()).await?;
    let repo = Repository::from_config(cfg)?;
    for n in only_networks {
        if cfg.network(n).is_none() {
            bail!(
                "unknown network {n:?} (configured: {})",
                cfg.network_names().join(", ")
            );
        }
    }
    if has(Stage::Ingest) || has(Stage::Verify) || has(Stage::Ledger) || has(Stage::Repair) {
        cairn_audit_ledger::db::open_config(cfg).await?;
    }
    let keyring = if has(Stage::Ingest) || has(Stage::Encrypt) {
        let pass = cfg
            .passphrase()?
            .context("ingest and encrypt need the repository passphrase: set CAIRN_PASSPHRASE or keys.passphrase_file")?;
        Some(repo.unlock(&pass).await?)
    } else {
        None
    };
    let mut tasks = tokio::task::JoinSet::new();
    let whoami = crate::whoami;
    if has(Stage::Ledger) {
        let (bus, client) = (bus.clone(), open_as(cfg, Role::Ledger).await?);
        tasks.spawn(async move { ("ledger", cairn_audit_ledger::run(bus, client).await) });
    }
    if has(Stage::Ingest) {
        let ctx = Arc::new(cairn_ingest::job::IngestContext {
            bus: bus.clone(),
            repo: repo.config().await?,
            id_key: keyring.as_ref().expect("unlocked").id_key(),
            pg: open_as(cfg, Role::Reader).await?,
            networks: cfg.network_names(),
            policies: cfg.datasets.clone(),
            source: whoami("ingest"),
        });
        let n = cfg.ingest.concurrency;
        tasks.spawn(async move { ("ingest", cairn_ingest::run(ctx, n).await) });
    }
    if has(Stage::Encrypt) {
        let w = cairn_encrypt::EncryptWorker {
            bus: bus.clone(),
            sealer: Arc::new(keyring.as_ref().expect("unlocked").sealer()),
            source: whoami("encrypt"),
        };
        tasks.spawn(async move { ("encrypt", cairn_encrypt::run(w, 8).await) });
    }
    if has(Stage::Store) {
        for net in repo.networks() {
            if !only_networks.is_empty() && !only_networks.iter().any(|n| n == net.name()) {
                continue;
            }
            let (bus, net) = (bus.clone(), net.clone());
            let quota = cfg.network(net.name()).and_then(|n| n.quota_bytes);
            tasks.spawn(async move { ("store", cairn_store::run(bus, net, quota, 8).await) });
        }
    }
    if has(Stage::Verify) {
        let w = cairn_verify::VerifyWorker {
            bus: bus.clone(),
            repo: repo.clone(),
            pg: open_as(cfg, Role::Reader).await?,
            timeout: Duration::from_secs(cfg.verify.timeout_secs),
            source: whoami("verify"),
        };
        tasks.spawn(async move { ("verify", cairn_verify::run(w, 4).await) });
        if let Some(witness) = crate::commands::witness(cfg).await? {
            let every = Duration::from_secs(cfg.audit.checkpoint_interval_secs.max(1));
            tasks.spawn(async move { ("witness", witness.run(every).await) });
        }
    }
    if has(Stage::Retention) {
        let w = cairn_retention::RetentionWorker {
            bus: bus.clone(),
            repo: repo.clone(),
            source: whoami("retention"),
        };
        tasks.spawn(async move { ("retention", cairn_retention::run(w).await) });
    }
    if has(Stage::Repair) && cfg.repair.interval_secs > 0 {
        let (cfg, bus) = (cfg.clone(), bus.clone());
        let pg = open_as(&cfg, Role::Reader).await?;
        let every = Duration::from_secs(cfg.repair.interval_secs);
        tasks.spawn(async move {
            let r = cairn_verify::care::auto_repair(cfg, pg, bus, every, whoami("repair")).await;
            ("repair", r)
        });
    }
    // The signer runs where its key is: only with a key configured.
    let key = cfg.audit.signing_key_file.clone();
    if let Some(key) = key.filter(|_| has(Stage::Checkpoint)) {
        let pg = open_as(cfg, Role::Ledger).await?;
        let every = Duration::from_secs(cfg.audit.checkpoint_interval_secs.max(1));
        let (bus, repo) = (bus.clone(), repo.clone());
        tasks.spawn(async move {
            let r = cairn_audit_ledger::checkpoint::run(pg, key, bus, repo, every).await;
            ("checkpoint", r)
        });
    } else if stages.contains(&Stage::Checkpoint) {
        bail!("serve checkpoint needs [audit] signing_key_file (`cairn audit keygen` makes one)");
    }
    tracing::info!(
        workers = tasks.len(),
        prefix = bus.subjects.prefix(),
        "serving"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(0),
        _ = term.recv() => Ok(0),
        Some(done) = tasks.join_next() => {
            match done {
                Ok((stage, Err(e))) => bail!("the {stage} worker stopped: {e:#}"),
                Ok((stage, Ok(()))) => bail!("the {stage} worker stopped"),
                Err(e) => bail!("a worker crashed: {e}"),
            }
        }
    }
}
