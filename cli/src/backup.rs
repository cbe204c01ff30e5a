//! `cairn backup`: publishes `backup.requested`, follows the backup's events
//! (with a progress bar on a terminal) and reports the outcome. For `--stdin`
//! the CLI runs the ingest stage itself, since only it can read its input.

use crate::{exit, output, whoami};
use anyhow::{bail, Context};
use cairn_bus::Bus;
use cairn_events::{BackupId, BackupRequest, Envelope, Event, Outcome, Source};
use cairn_ingest::source::{Counters, Input};
use futures::StreamExt;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct BackupArgs {
    /// Files and directories to back up.
    paths: Vec<PathBuf>,
    /// Back up standard input (needs --dataset).
    #[arg(long, conflicts_with_all = ["paths", "postgres"])]
    stdin: bool,
    /// File name given to the stdin stream in the backup.
    #[arg(long, default_value = "stdin", requires = "stdin")]
    stdin_name: String,
    /// Back up a PostgreSQL database (pg_dump, custom format).
    #[arg(long, value_name = "URL", conflicts_with = "paths")]
    postgres: Option<String>,
    /// Dataset name (default: the first path's name, or the database name).
    #[arg(long)]
    dataset: Option<String>,
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Target networks (default: the dataset's policy, else every configured network).
    #[arg(long = "network")]
    networks: Vec<String>,
    /// Verified copies needed for `completed` (default: the dataset's policy,
    /// else every target network).
    #[arg(long)]
    min_copies: Option<u32>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for a worker to take the request.
    #[arg(long, default_value_t = 5)]
    start_timeout: u64,
    /// Seconds to wait for the outcome.
    #[arg(long, default_value_t = 6 * 3600)]
    timeout: u64,
}

fn request(args: &BackupArgs) -> anyhow::Result<BackupRequest> {
    let (source, default_dataset) = if args.stdin {
        (
            Source::Stdin {
                name: args.stdin_name.clone(),
            },
            None,
        )
    } else if let Some(url) = &args.postgres {
        cairn_ingest::source::check_pg_url(url).map_err(anyhow::Error::msg)?;
        (
            Source::Postgres { url: url.clone() },
            Some(cairn_ingest::source::database_name(url)),
        )
    } else if !args.paths.is_empty() {
        let mut abs = Vec::new();
        for p in &args.paths {
            let a = std::path::absolute(p).with_context(|| format!("{}", p.display()))?;
            std::fs::symlink_metadata(&a)
                .with_context(|| format!("cannot read {}", p.display()))?;
            abs.push(a.to_string_lossy().into_owned());
        }
        let first = cairn_ingest::source::labels(&args.paths.to_vec())
            .into_iter()
            .next();
        (Source::Paths { paths: abs }, first)
    } else {
        bail!("nothing to back up: give PATHs, --stdin or --postgres URL");
    };
    let dataset = match (&args.dataset, default_dataset) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => d,
        (None, None) => bail!("--stdin needs --dataset NAME"),
    };
    if dataset.is_empty() {
        bail!("--dataset must not be empty");
    }
    Ok(BackupRequest {
        dataset,
        tags: args.tags.clone(),
        source,
        networks: args.networks.clone(),
        min_copies: args.min_copies,
        requested_by: whoami(&std::env::var("USER").unwrap_or_else(|_| "cli".into())),
    })
}

pub async fn backup(cfg: &cairn_config::Config, args: BackupArgs) -> anyhow::Result<u8> {
    let req = request(&args)?;
    for n in &req.networks {
        if cfg.network(n).is_none() {
            bail!(
                "unknown network {n:?} (configured: {})",
                cfg.network_names().join(", ")
            );
        }
    }
    let bus = Bus::connect(&cfg.nats, "cairn-cli").await?;
    bus.ensure_topology(&cfg.network_names()).await?;
    let backup_id = BackupId::generate();
    let prefix = bus.subjects.prefix().to_string();
    let mut events = bus
        .client
        .subscribe(format!("{prefix}.evt.backup.*.{backup_id}"))
        .await?;
    let mut progress = bus
        .client
        .subscribe(bus.subjects.progress(&backup_id))
        .await?;
    let requested = Envelope::new(
        "cli",
        backup_id.clone(),
        Event::BackupRequested(req.clone()),
        &[],
    );
    let requested_at = requested.at.clone();
    bus.publish_event(&requested).await?;

    let bar = (!args.json && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(format!("backup {backup_id}"));
        b
    });

    // --stdin: this process is the ingest stage for its own input.
    let mut local = if args.stdin {
        Some(tokio::spawn(ingest_stdin(
            cfg.clone(),
            bus.clone(),
            backup_id.clone(),
            req.clone(),
            requested_at,
        )))
    } else {
        None
    };

    let start_deadline = tokio::time::Instant::now() + Duration::from_secs(args.start_timeout);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let mut started = local.is_some();
    let outcome: (String, Outcome) = loop {
        let wait_until = if started {
            deadline
        } else {
            start_deadline.min(deadline)
        };
        tokio::select! {
            msg = events.next() => {
                let Some(msg) = msg else { bail!("lost the connection to NATS") };
                let Ok(env) = cairn_events::decode::<Envelope>(&msg.payload, "event") else { continue };
                if matches!(env.event, Event::BackupStarted { .. }) {
                    started = true;
                }
                if let Some((status, o)) = env.event.outcome() {
                    break (status.to_string(), o.clone());
                }
            }
            res = async { local.as_mut().expect("guarded").await }, if local.is_some() => {
                local = None;
                match res {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e.context(format!("backup {backup_id}"))),
                    Err(e) => bail!("backup {backup_id}: the local ingest crashed: {e}"),
                }
            }
            p = progress.next() => {
                if let (Some(b), Some(p)) = (&bar, p) {
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload) {
                        b.set_length(v["bytes_total"].as_u64().unwrap_or(0));
                        b.set_position(v["bytes_read"].as_u64().unwrap_or(0));
                    }
                }
            }
            _ = tokio::time::sleep_until(wait_until) => {
                if let Some(b) = &bar { b.finish_and_clear(); }
                if !started {
                    eprintln!(
                        "cairn: no ingest worker took backup {backup_id} within {} s; the request stays queued and runs when one starts. Start the workers with `cairn serve all` (or `scripts/setup.sh`).",
                        args.start_timeout
                    );
                    if args.json {
                        output::json(&serde_json::json!({"backup_id": backup_id.to_string(), "status": "queued"}));
                    }
                    return Ok(exit::NO_WORKER);
                }
                bail!("backup {backup_id} did not finish within {} s; it may still complete: `cairn show {backup_id}`", args.timeout);
            }
        }
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(h) = local {
        h.await??;
    }
    output::backup_outcome(&backup_id, &outcome.0, &outcome.1, args.json);
    Ok(match outcome.0.as_str() {
        "completed" => 0,
        "degraded" => exit::DEGRADED,
        _ => 1,
    })
}

async fn ingest_stdin(
    cfg: cairn_config::Config,
    bus: Bus,
    backup_id: BackupId,
    req: BackupRequest,
    requested_at: String,
) -> anyhow::Result<()> {
    let pass = cfg.passphrase()?.context(
        "--stdin reads and chunks the data here and needs the passphrase: set CAIRN_PASSPHRASE",
    )?;
    let repo = cairn_repo::Repository::from_config(&cfg)?;
    let keyring = repo.unlock(&pass).await?;
    let ctx = cairn_ingest::job::IngestContext {
        bus: bus.clone(),
        repo: repo.config().await?,
        id_key: keyring.id_key(),
        pg: cairn_audit_ledger::db::open_config(&cfg).await?,
        networks: cfg.network_names(),
        policies: cfg.datasets.clone(),
        source: whoami("cli"),
    };
    let started = Envelope::new(
        ctx.source.clone(),
        backup_id.clone(),
        Event::BackupStarted {
            worker: ctx.source.clone(),
        },
        &[],
    );
    bus.publish_event(&started).await?;
    let name = match &req.source {
        Source::Stdin { name } => name.clone(),
        _ => "stdin".into(),
    };
    let input = Input::Stream {
        name,
        reader: Box::new(std::io::stdin()),
    };
    let counters = Arc::new(Counters::default());
    let progress = cairn_ingest::report_progress(&bus, &backup_id, counters.clone());
    let result =
        cairn_ingest::job::run(&ctx, &backup_id, &req, &requested_at, input, counters).await;
    progress.abort();
    match result {
        Ok(_) => Ok(()),
        Err(cairn_ingest::job::JobError::Source(reason)) => {
            cairn_ingest::publish_failure(&bus, &ctx.source, &backup_id, reason.clone())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
