//! `cairn serve`: runs the chosen stages in this process until it is
//! stopped, and fails loudly if any of them stops. Each stage gets its
//! numbers (concurrency, timeouts, intervals) from its section of the
//! configuration.

use crate::context::{self, whoami};
use anyhow::bail;
use cairn_config::Config;
use cairn_events::Stage;
use cairn_ledger::Role;
use clap::builder::PossibleValue;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// `all`, or one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Which(Option<Stage>);

impl Which {
    const VALUES: [Which; 9] = [
        Which(None),
        Which(Some(Stage::Ingest)),
        Which(Some(Stage::Encrypt)),
        Which(Some(Stage::Store)),
        Which(Some(Stage::Verify)),
        Which(Some(Stage::Ledger)),
        Which(Some(Stage::Retention)),
        Which(Some(Stage::Repair)),
        Which(Some(Stage::Checkpoint)),
    ];
}

impl clap::ValueEnum for Which {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::VALUES
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self.0 {
            None => PossibleValue::new("all").help("every stage in this process"),
            Some(s) => PossibleValue::new(s.name()).help(s.about()),
        })
    }
}

#[derive(clap::Args)]
pub struct ServeArgs {
    #[arg(value_enum, default_value = "all")]
    stages: Vec<Which>,
    /// Store workers only for these networks (default: all configured).
    #[arg(long = "network")]
    networks: Vec<String>,
}

fn spawn<E: std::fmt::Display>(
    tasks: &mut tokio::task::JoinSet<(Stage, Result<(), String>)>,
    stage: Stage,
    f: impl Future<Output = Result<(), E>> + Send + 'static,
) {
    tasks.spawn(async move { (stage, f.await.map_err(|e| e.to_string())) });
}

pub async fn serve(cfg: &Config, a: ServeArgs) -> anyhow::Result<u8> {
    // Caught from the start: a stop that comes while the stages are still
    // being set up (a service manager, a test that finished its backup
    // before the last stage started) is a clean stop, not a kill.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let has = |s: Stage| a.stages.iter().any(|w| w.0.is_none() || w.0 == Some(s));
    cfg.check_networks(&a.networks)?;
    let bus = context::bus(cfg, "cairn-serve").await?;
    // Kept by the quorum watch (started below), read by verify.
    let outages = cairn_bus::quorum::Outages::default();
    let repo = context::repo(cfg)?;
    // Every stage that reads the ledger first makes sure it is migrated.
    if [
        Stage::Ingest,
        Stage::Verify,
        Stage::Ledger,
        Stage::Retention,
        Stage::Repair,
    ]
    .into_iter()
    .any(has)
        || (has(Stage::Store) && !cfg.quotas().is_empty())
    {
        context::ledger(cfg).await?;
    }
    // Ingest holds a writer's key only (the chunk-id key and the public
    // key); encrypt holds none of its own.
    let writer = if has(Stage::Ingest) {
        Some(
            context::writer(
                cfg,
                &repo,
                "ingest needs the repository key (or keys.writer_file)",
            )
            .await?,
        )
    } else {
        None
    };
    let mut tasks = tokio::task::JoinSet::new();
    if has(Stage::Ledger) {
        let pg = context::ledger_as(cfg, Role::Ledger).await?;
        let run = cairn_audit_ledger::run(bus.clone(), pg, cfg.ledger.batch);
        spawn(&mut tasks, Stage::Ledger, run);
    }
    if let Some(writer) = writer {
        {
            let repo_config = repo.config().await?;
            let files_cache = cfg
                .files_cache_dir()
                .map(|d| cairn_ingest::files_cache::Store::new(d, &repo_config.repo_id));
            let ctx = Arc::new(cairn_ingest::job::IngestContext {
                bus: bus.clone(),
                repo: repo_config,
                writer,
                pg: context::ingest_ledger(cfg).await?,
                networks: cfg.network_names(),
                policies: cfg.datasets.clone(),
                compliance: cfg.compliance.clone(),
                network_facts: cfg.network_facts(),
                source: whoami("ingest"),
                files_cache,
                cannot_erase: context::cannot_erase(&repo),
                quotas: cfg.quotas(),
            });
            let run = cairn_ingest::run(ctx, cfg.ingest.concurrency);
            spawn(&mut tasks, Stage::Ingest, run);
        }
    }
    if has(Stage::Encrypt) {
        let w = cairn_encrypt::EncryptWorker {
            bus: bus.clone(),
            source: whoami("encrypt"),
        };
        let run = cairn_encrypt::run(w, cfg.encrypt.concurrency);
        spawn(&mut tasks, Stage::Encrypt, run);
    }
    if has(Stage::Store) {
        for net in repo.networks() {
            if !a.networks.is_empty() && !a.networks.iter().any(|n| n == net.name()) {
                continue;
            }
            // A quota is held to the ledger's count.
            let quota = cfg
                .network(net.name())
                .and_then(|n| n.common.quota_bytes)
                .map(|bytes| cairn_store::Quota {
                    bytes,
                    ledger: cfg.postgres.clone(),
                });
            let run = cairn_store::run(
                bus.clone(),
                repo.clone(),
                net.clone(),
                quota,
                cfg.store.concurrency,
            );
            spawn(&mut tasks, Stage::Store, run);
        }
    }
    if has(Stage::Verify) {
        let w = cairn_verify::VerifyWorker {
            bus: bus.clone(),
            repo: repo.clone(),
            pg: context::ledger_as(cfg, Role::Reader).await?,
            timeout: Duration::from_secs(cfg.verify.timeout_secs),
            outages: Some(outages.clone()),
            source: whoami("verify"),
            read_back: cfg
                .networks
                .iter()
                .map(|n| (n.name.clone(), n.read_back()))
                .collect(),
        };
        let run = cairn_verify::run(w, cfg.verify.concurrency);
        spawn(&mut tasks, Stage::Verify, run);
        if let Some(witness) = super::audit::witness(cfg).await? {
            let every = Duration::from_secs(cfg.audit.checkpoint_interval_secs.max(1));
            spawn(&mut tasks, Stage::Verify, witness.run(every));
        }
    }
    if has(Stage::Retention) {
        let w = cairn_retention::RetentionWorker {
            bus: bus.clone(),
            repo: repo.clone(),
            pg: context::ledger_as(cfg, Role::Reader).await?,
            running_window: Duration::from_secs(cfg.retention.running_backup_secs),
            selector: cfg.selector(),
            source: whoami("retention"),
        };
        spawn(&mut tasks, Stage::Retention, cairn_retention::run(w));
        if cfg.retention.collect_interval_secs > 0 {
            let c = super::gc::collector(cfg, &bus, repo.clone(), None).await?;
            let every = Duration::from_secs(cfg.retention.collect_interval_secs);
            spawn(
                &mut tasks,
                Stage::Retention,
                cairn_retention::collect::run(c, every),
            );
        }
        if cfg.retention.apply_interval_secs > 0 {
            let a = super::retention::applier(cfg, &bus, "retention-policy".into()).await?;
            let every = Duration::from_secs(cfg.retention.apply_interval_secs);
            spawn(
                &mut tasks,
                Stage::Retention,
                cairn_retention::apply::run(a, every),
            );
        }
        if cfg.retention.migrate_interval_secs > 0 {
            let every = Duration::from_secs(cfg.retention.migrate_interval_secs);
            let datasets = cfg.datasets.clone();
            let run = cairn_verify::care::migrate::run(
                repo.clone(),
                context::ledger_as(cfg, Role::Reader).await?,
                bus.clone(),
                cfg.selector(),
                Box::new(move |d: &str| datasets.get(d).and_then(|p| p.shreddable).unwrap_or(true)),
                whoami("retention"),
                every,
            );
            spawn(&mut tasks, Stage::Retention, run);
        }
        if let Some(cadence) = cfg.retention.drills.cadence()? {
            // Drills decrypt: only where the operator gave this process the key.
            if context::has_credentials(cfg)? {
                let d =
                    super::drill::driller(cfg, &bus, "retention".into(), whoami("drills")).await?;
                let run = cairn_retention::drill::run(d, cadence, cfg.retention.drills.sample);
                spawn(&mut tasks, Stage::Retention, run);
            } else {
                tracing::warn!("retention.drills.cron is set but this process has no passphrase (CAIRN_PASSPHRASE or keys.passphrase_file): no drills run here");
            }
        }
        if cfg.telemetry.metrics_on() {
            let w = cairn_retention::vitals::Watch {
                bus: bus.clone(),
                pg: context::ledger_as(cfg, Role::Reader).await?,
                networks: cfg.network_names(),
                price_gb_month: cfg
                    .networks
                    .iter()
                    .filter_map(|n| n.common.price_gb_month.map(|p| (n.name.clone(), p)))
                    .collect(),
            };
            let every = Duration::from_secs(cfg.telemetry.vitals_interval_secs.max(1));
            spawn(
                &mut tasks,
                Stage::Retention,
                cairn_retention::vitals::run(w, every),
            );
        }
        // Always: schedules may be added at run time (`cairn schedule add`).
        {
            let s = cairn_retention::scheduler::Scheduler::new(
                bus.clone(),
                context::ledger_as(cfg, Role::Reader).await?,
                &cfg.schedules,
                Duration::from_secs(cfg.retention.running_backup_secs),
                whoami("scheduler"),
            )
            .await?;
            spawn(
                &mut tasks,
                Stage::Retention,
                cairn_retention::scheduler::run(s),
            );
        }
    }
    if has(Stage::Repair) && cfg.repair.interval_secs > 0 {
        let pg = context::ledger_as(cfg, Role::Reader).await?;
        let every = Duration::from_secs(cfg.repair.interval_secs);
        let run = cairn_verify::care::auto_repair(
            repo.clone(),
            pg,
            bus.clone(),
            every,
            whoami("repair"),
            cfg.quotas(),
        );
        spawn(&mut tasks, Stage::Repair, run);
    }
    // The signer runs where its key is: only with a key configured.
    match cfg.audit.signing_key_file.clone() {
        Some(key) if has(Stage::Checkpoint) => {
            let pg = context::ledger_as(cfg, Role::Ledger).await?;
            let every = Duration::from_secs(cfg.audit.checkpoint_interval_secs.max(1));
            let run =
                cairn_audit_ledger::checkpoint::run(pg, key, bus.clone(), repo.clone(), every);
            spawn(&mut tasks, Stage::Checkpoint, run);
        }
        None if a.stages.contains(&Which(Some(Stage::Checkpoint))) => {
            bail!(
                "serve checkpoint needs [audit] signing_key_file (`cairn audit keygen` makes one)"
            )
        }
        _ => {}
    }
    if let Some(addr) = cfg.telemetry.prometheus_listen.clone() {
        // Bound before "serving" is logged: a taken port fails the start.
        let serving = cairn_telemetry::metrics::bind(&addr).await?;
        tokio::spawn(async move {
            if let Err(e) = serving.await {
                tracing::error!(error = %e, "the metrics endpoint stopped");
            }
        });
    }
    // Says why nothing moves when JetStream has no quorum.
    tokio::spawn(bus.clone().watch_quorum(outages));
    // What the stages ask of the networks (egress, requests), into the
    // ledger every so often and once more at a clean stop.
    let purpose = match a.stages.as_slice() {
        [Which(Some(s))] => s.name().to_string(),
        _ => "serve".to_string(),
    };
    tokio::spawn(cairn_ledger::usage::record_traffic_every(
        bus.clone(),
        purpose.clone(),
        whoami("serve"),
        cairn_ledger::usage::TRAFFIC_EVERY,
    ));
    tracing::info!(
        workers = tasks.len(),
        prefix = bus.subjects.prefix(),
        "serving"
    );
    let stopped = async {
        if let Err(e) = cairn_ledger::usage::record_traffic(&bus, &purpose, &whoami("serve")).await
        {
            tracing::warn!(error = %e, "the last network traffic was not recorded");
        }
        Ok(0)
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => stopped.await,
        _ = term.recv() => stopped.await,
        Some(done) = tasks.join_next() => {
            match done {
                Ok((stage, Err(e))) => bail!("the {stage} worker stopped: {e}"),
                Ok((stage, Ok(()))) => bail!("the {stage} worker stopped"),
                Err(e) => bail!("a worker crashed: {e}"),
            }
        }
    }
}
