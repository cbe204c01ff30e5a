//! `cairn backup`: asks for a backup, follows it to its outcome (with a
//! progress bar on a terminal) and reports it. For `--stdin` this process
//! is the ingest stage for its own input (`cairn_ingest::ingest`, the
//! worker's own code path), since only it can read that stream.

use crate::context::{self, whoami};
use crate::{err, exit, out, output};
use anyhow::{bail, Context};
use cairn_bus::client::{self, Ending};
use cairn_config::Config;
use cairn_events::{BackupId, BackupRequest, Envelope, Outcome, Source};
use cairn_ingest::job::IngestContext;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct BackupArgs {
    /// Files and directories to back up.
    paths: Vec<PathBuf>,
    /// Back up standard input (needs --dataset).
    #[arg(long, conflicts_with_all = ["paths", "postgres", "postgres_base", "mariadb", "redis"])]
    stdin: bool,
    /// File name given to the stdin stream in the backup.
    #[arg(long, default_value = "stdin", requires = "stdin")]
    stdin_name: String,
    #[command(flatten)]
    database: DatabaseArgs,
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
    /// Read every file, even those the files cache says are unchanged
    /// since the dataset's last completed backup.
    #[arg(long, conflicts_with_all = ["stdin", "postgres", "postgres_base", "mariadb", "redis"])]
    force_read: bool,
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

fn absolute(p: &std::path::Path) -> anyhow::Result<String> {
    let a = std::path::absolute(p).with_context(|| format!("{}", p.display()))?;
    Ok(a.to_string_lossy().into_owned())
}

/// A database to back up (shared with `cairn schedule add`). A URL never
/// carries a password: the ingest worker reads the password file on its
/// host (or the tool's own configuration: `~/.pgpass`, `~/.my.cnf`).
#[derive(clap::Args)]
pub struct DatabaseArgs {
    /// Back up a PostgreSQL database (pg_dump, custom format).
    #[arg(long, value_name = "URL", conflicts_with_all = ["paths", "postgres_base", "mariadb", "redis"])]
    postgres: Option<String>,
    /// Take a physical base backup of a PostgreSQL cluster (pg_basebackup;
    /// its WAL comes from `cairn wal-push`): restore it to a point in time
    /// with `cairn restore ID --to-pgdata DIR --to-time T`.
    #[arg(long, value_name = "URL", conflicts_with_all = ["paths", "mariadb", "redis"])]
    postgres_base: Option<String>,
    /// A file holding the PostgreSQL password (first line), read by the
    /// ingest worker on its host; never the ledger's password.
    #[arg(long, value_name = "FILE")]
    postgres_password_file: Option<PathBuf>,
    /// Back up a MariaDB or MySQL database (mariadb-dump
    /// --single-transaction): `mysql://user@host:port/db`.
    #[arg(long, value_name = "URL", conflicts_with_all = ["paths", "redis"])]
    mariadb: Option<String>,
    /// A file holding the MariaDB password (first line).
    #[arg(long, value_name = "FILE", requires = "mariadb")]
    mariadb_password_file: Option<PathBuf>,
    /// Back up a Redis server's dataset (an RDB snapshot): `redis://host:port`.
    #[arg(long, value_name = "URL", conflicts_with = "paths")]
    redis: Option<String>,
    /// A file holding the Redis password (first line).
    #[arg(long, value_name = "FILE", requires = "redis")]
    redis_password_file: Option<PathBuf>,
}

/// A database (its password file made absolute) or files (`PATHS`, each
/// readable here, made absolute), with the dataset name it suggests; none
/// if neither was given.
pub fn source(
    paths: &[PathBuf],
    db: &DatabaseArgs,
) -> anyhow::Result<Option<(Source, Option<String>)>> {
    let file = |f: &Option<PathBuf>| -> anyhow::Result<Option<String>> {
        f.as_deref().map(absolute).transpose()
    };
    // clap drops a `requires` when the other option would conflict with
    // what was given (`--redis-password-file F PATH`): said here by name.
    if db.postgres_password_file.is_some() && db.postgres.is_none() && db.postgres_base.is_none() {
        bail!("--postgres-password-file goes with --postgres or --postgres-base");
    }
    if db.mariadb_password_file.is_some() && db.mariadb.is_none() {
        bail!("--mariadb-password-file goes with --mariadb");
    }
    if db.redis_password_file.is_some() && db.redis.is_none() {
        bail!("--redis-password-file goes with --redis");
    }
    if let Some(url) = &db.postgres {
        cairn_repo::pgtools::check_url(url).map_err(anyhow::Error::msg)?;
        return Ok(Some((
            Source::Postgres {
                url: url.clone(),
                password_file: file(&db.postgres_password_file)?,
            },
            Some(cairn_repo::pgtools::database_name(url)),
        )));
    }
    if let Some(url) = &db.postgres_base {
        cairn_repo::pgtools::check_url(url).map_err(anyhow::Error::msg)?;
        return Ok(Some((
            Source::PostgresBase {
                url: url.clone(),
                password_file: file(&db.postgres_password_file)?,
            },
            None,
        )));
    }
    if let Some(url) = &db.mariadb {
        let u = cairn_repo::mariadbtools::parse(url).map_err(anyhow::Error::msg)?;
        return Ok(Some((
            Source::Mariadb {
                url: url.clone(),
                password_file: file(&db.mariadb_password_file)?,
            },
            Some(u.database),
        )));
    }
    if let Some(url) = &db.redis {
        cairn_ingest::sources::redis::parse(url).map_err(anyhow::Error::msg)?;
        return Ok(Some((
            Source::Redis {
                url: url.clone(),
                password_file: file(&db.redis_password_file)?,
            },
            None,
        )));
    }
    if paths.is_empty() {
        return Ok(None);
    }
    let mut abs = Vec::new();
    for p in paths {
        std::fs::symlink_metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        abs.push(absolute(p)?);
    }
    let first = cairn_ingest::source::labels(paths).into_iter().next();
    Ok(Some((Source::Paths { paths: abs }, first)))
}

fn request(args: &BackupArgs) -> anyhow::Result<BackupRequest> {
    if !args.stdin && args.stdin_name != "stdin" {
        bail!("--stdin-name goes with --stdin");
    }
    let (source, default_dataset) = if args.stdin {
        (
            Source::Stdin {
                name: args.stdin_name.clone(),
            },
            None,
        )
    } else if let Some(found) = source(&args.paths, &args.database)? {
        found
    } else {
        bail!("nothing to back up: give PATHs, --stdin, or a database (--postgres, --postgres-base, --mariadb or --redis URL)");
    };
    let dataset = match (&args.dataset, default_dataset) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => d,
        (None, None) => bail!("this backup needs --dataset NAME (for a base backup, the dataset its WAL is pushed to)"),
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
        requested_by: context::user(),
        force_read: args.force_read,
    })
}

/// This process as the ingest stage of its own `--stdin` backup.
async fn ingest_stdin(
    cfg: &Config,
    bus: &cairn_bus::Bus,
    request: &Envelope,
) -> anyhow::Result<()> {
    let ctx = ingest_context(
        cfg,
        bus,
        "--stdin reads and chunks the data here and needs the repository key (or keys.writer_file)",
    )
    .await?;
    Ok(cairn_ingest::ingest(&ctx, request, Some(Box::new(std::io::stdin())), None).await?)
}

/// What this process needs to be the ingest stage of a stream only it can
/// read (`--stdin`, `wal-push`); `why` says why it needs the writer's key.
pub async fn ingest_context(
    cfg: &Config,
    bus: &cairn_bus::Bus,
    why: &str,
) -> anyhow::Result<IngestContext> {
    let repo = context::repo(cfg)?;
    let writer = context::writer(cfg, &repo, why).await?;
    Ok(IngestContext {
        bus: bus.clone(),
        repo: repo.config().await?,
        writer,
        pg: context::ingest_ledger(cfg).await?,
        networks: cfg.network_names(),
        policies: cfg.datasets.clone(),
        compliance: cfg.compliance.clone(),
        network_facts: cfg.network_facts(),
        source: whoami("cli"),
        // A stream has no files to cache.
        files_cache: None,
        cannot_erase: context::cannot_erase(&repo),
        quotas: cfg.quotas(),
    })
}

#[derive(serde::Serialize)]
struct Report<'a> {
    backup_id: &'a BackupId,
    status: &'a str,
    bytes_read: u64,
    bytes_stored: u64,
    chunks_total: u64,
    chunks_new: u64,
    files: u64,
    files_unchanged: u64,
    bytes_unchanged: u64,
    merkle_root: &'a str,
    sealed_root: &'a str,
    networks: &'a [cairn_events::NetworkReport],
    reasons: &'a [String],
    /// The backup's trace (W3C trace id), to find it in a tracing backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
}

#[derive(serde::Serialize)]
struct Queued<'a> {
    backup_id: &'a BackupId,
    status: &'static str,
}

pub async fn backup(cfg: &Config, args: BackupArgs) -> anyhow::Result<u8> {
    // The root of the backup's trace: every stage's span descends from it
    // through the messages' headers.
    let span = tracing::info_span!(
        "backup",
        otel.name = "backup request",
        otel.kind = "producer",
        backup = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    cairn_telemetry::propagate::record_trace_id(&span);
    use tracing::Instrument as _;
    requested_backup(cfg, args).instrument(span).await
}

async fn requested_backup(cfg: &Config, args: BackupArgs) -> anyhow::Result<u8> {
    let req = request(&args)?;
    cfg.check_networks(&req.networks)?;
    let bus = context::bus(cfg, "cairn-cli").await?;
    let requested = client::request_backup(&bus, "cli", req).await?;
    // While it is followed: why nothing moves, if JetStream loses quorum.
    let watch = tokio::spawn(bus.clone().watch_quorum(Default::default()));
    let _watch = AbortOnDrop(watch);
    let id = requested.backup_id.clone();
    tracing::Span::current().record("backup", id.to_string().as_str());
    let envelope = requested.envelope.clone();
    let bar = output::progress_bar(
        !args.json,
        "{spinner} {msg} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar}",
        format!("backup {id}"),
    );
    let local = args
        .stdin
        .then(|| ingest_stdin(cfg, &bus, &envelope))
        .map(|f| async move { f.await.map_err(AnyError) });
    let ending = requested
        .follow(
            local,
            Duration::from_secs(args.start_timeout),
            Duration::from_secs(args.timeout),
            |p| {
                if let Some(b) = &bar {
                    b.set_length(p.bytes_total);
                    b.set_position(p.bytes_read);
                }
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("backup {id}: {e}"))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    match ending {
        Ending::Finished { status, outcome } => {
            print_outcome(&id, status, &outcome, args.json)?;
            Ok(match status {
                "completed" => 0,
                "degraded" => exit::DEGRADED,
                _ => 1,
            })
        }
        Ending::NotTaken => {
            err!(
                "cairn: no ingest worker took backup {id} within {} s; the request stays queued and runs when one starts. Start the workers with `cairn serve all` (or `scripts/setup.sh`).",
                args.start_timeout
            );
            if args.json {
                output::json(&Queued {
                    backup_id: &id,
                    status: "queued",
                })?;
            }
            Ok(exit::NO_WORKER)
        }
        Ending::TimedOut => bail!(
            "backup {id} did not finish within {} s; it may still complete: `cairn show {id}`",
            args.timeout
        ),
    }
}

/// An `anyhow::Error` as a `std::error::Error`, for the follower.
#[derive(Debug)]
struct AnyError(anyhow::Error);

impl std::fmt::Display for AnyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for AnyError {}

fn print_outcome(id: &BackupId, status: &str, o: &Outcome, as_json: bool) -> anyhow::Result<()> {
    let s = &o.stats;
    if as_json {
        return output::json(&Report {
            backup_id: id,
            status,
            bytes_read: s.bytes_read,
            bytes_stored: s.bytes_stored,
            chunks_total: s.chunks_total,
            chunks_new: s.chunks_new,
            files: s.files,
            files_unchanged: s.files_unchanged,
            bytes_unchanged: s.bytes_unchanged,
            merkle_root: &o.merkle_root,
            sealed_root: &o.sealed_root,
            networks: &o.networks,
            reasons: &o.reasons,
            trace_id: cairn_telemetry::propagate::trace_id(&tracing::Span::current()),
        });
    }
    let unchanged = if s.files_unchanged > 0 {
        format!(
            " ({} unchanged, {} not read again)",
            s.files_unchanged,
            output::bytes(s.bytes_unchanged)
        )
    } else {
        String::new()
    };
    out!(
        "backup {id} {status}: {} read, {} stored, {} chunks ({} new), {} files{unchanged}",
        output::bytes(s.bytes_read),
        output::bytes(s.bytes_stored),
        s.chunks_total,
        s.chunks_new,
        s.files
    );
    for r in &o.reasons {
        err!("  {r}");
    }
    if o.reasons.is_empty() {
        for n in o.networks.iter().filter(|n| !n.ok) {
            err!(
                "  warning: network {} does not hold a verified copy ({}); the policy is met by the others. `cairn repair {id}` once it is back",
                n.network, n.detail
            );
        }
    }
    Ok(())
}

/// Stops a background task when the command is done with it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
