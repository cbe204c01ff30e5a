//! `cairn`: the command line. A thin shell over the library crates: it
//! parses arguments, loads the configuration, calls one library function
//! per command (`commands/`, one file each) and prints what it returns, as
//! text or `--json`.

mod commands;
mod context;
mod output;

use clap::{Parser, Subcommand};
use commands::*;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Encrypted, verified backups to several storage networks, with an audit ledger"
)]
pub struct Cli {
    /// Configuration file (default: ./cairn.toml if present).
    #[arg(long, global = true, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// A key share file (`cairn key split`); repeat it: enough shares open
    /// the repository instead of the passphrase.
    #[arg(long = "share", id = "share_files", value_name = "FILE", global = true)]
    shares: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create the repository (config and key file) on every configured
    /// network; run again after adding a network, it copies them there.
    Init(init::InitArgs),
    /// Create the NATS streams and consumers and the database schema.
    Setup(setup::SetupArgs),
    /// Run stage workers (`all` = every stage in one process).
    Serve(serve::ServeArgs),
    /// Back up paths, stdin, or a database (PostgreSQL dump or base backup,
    /// MariaDB, Redis); waits for the outcome.
    Backup(backup::BackupArgs),
    /// List backups, newest first.
    List(list::ListArgs),
    /// Show one backup.
    Show(list::ShowArgs),
    /// Restore a backup (or a part of it) to a directory, a database, a
    /// PostgreSQL data directory recovering to a point in time, or stdout.
    Restore(restore::RestoreArgs),
    /// List a backup's files (or those under PATH) without restoring it.
    Ls(ls::LsArgs),
    /// PostgreSQL's archive_command: archive one WAL file through the
    /// pipeline; exits 0 only once it is verified where the policy says.
    WalPush(wal::PushArgs),
    /// PostgreSQL's restore_command: fetch one archived WAL file.
    WalFetch(wal::FetchArgs),
    /// Recovery from one network alone: list and restore backups with no
    /// broker and no ledger database.
    Recover {
        #[command(subcommand)]
        command: recover::RecoverCommand,
    },
    /// Take a backup out of the catalogue (its manifest and chunk list);
    /// `cairn gc` later frees the chunks nothing else uses.
    Forget(forget::ForgetArgs),
    /// Crypto-shred a dataset: destroy its keys on every network, so that
    /// none of its backups can ever be read again (GDPR erasure). Refused
    /// while any of its backups is under legal hold.
    Shred(shred::ShredArgs),
    /// Collect garbage: delete chunks no remaining backup references, once
    /// they have stayed unreferenced for the grace period.
    Gc(gc::GcArgs),
    /// Put a backup under legal hold: no policy or command deletes it until
    /// it is released. Recorded in the ledger with who and why.
    Hold(hold::HoldArgs),
    /// Lift a legal hold (recorded with who and why).
    Release(hold::HoldArgs),
    /// List the backups under legal hold.
    Holds(hold::HoldsArgs),
    /// Backup schedules (`[[schedules]]`).
    Schedule {
        #[command(subcommand)]
        command: schedule::ScheduleCommand,
    },
    /// Retention policies: what they keep and drop.
    Retention {
        #[command(subcommand)]
        command: retention::RetentionCommand,
    },
    /// How well each network holds a backup (availability, sampled
    /// integrity against the Merkle root, estimated restore time).
    Health(health::HealthArgs),
    /// Restore backups into a scratch place now, check everything and
    /// record the result (the newest of each dataset and a random sample).
    Drill(drill::DrillArgs),
    /// The latest restore drill of each dataset, and its last success.
    Drills(drill::DrillsArgs),
    /// Copy missing or corrupt objects back onto networks from intact copies.
    Repair(repair::RepairArgs),
    /// Keys: passphrases (add, list, remove) and threshold shares (split).
    Key {
        #[command(subcommand)]
        command: key::KeyCommand,
    },
    /// Compliance profiles (SOX, GDPR, HIPAA, ISO 27001, your own): rules
    /// judged per backup, with evidence from the ledger.
    Compliance {
        #[command(subcommand)]
        command: compliance::ComplianceCommand,
    },
    /// What each network holds, what was read back and asked of it, what
    /// that costs a month at the configured prices, and the next 12 months
    /// under the current schedules and retention policies.
    Cost(cost::CostArgs),
    /// The ops console: a web page on this machine, live from the event
    /// streams; actions need an operator token (`cairn console token`).
    Console(console::ConsoleArgs),
    /// NATS users with least privilege: one per role.
    Nats {
        #[command(subcommand)]
        command: nats::NatsCommand,
    },
    /// The audit ledger.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
}

/// Exit codes beyond 0 (done), 1 (error) and 2 (usage).
pub mod exit {
    pub const DEGRADED: u8 = 3;
    pub const NO_WORKER: u8 = 4;
    /// `compliance check`: a rule failed.
    pub const RULES_FAILED: u8 = 5;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match start(cli) {
        Ok(code) => ExitCode::from(code),
        // Standard output closed by its reader (`| head`): a quiet end.
        Err(e) if output::is_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            err!("cairn: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Configuration and telemetry first (outside the runtime: the OTLP exporter
/// has its own thread), then the command; spans are flushed after it ends.
fn start(cli: Cli) -> anyhow::Result<u8> {
    let mut cfg = cairn_config::Config::load(cli.config.as_deref())?;
    context::set_config_path(cli.config.as_deref());
    cfg.keys.share_files.extend(cli.shares.iter().cloned());
    let serving = matches!(cli.command, Command::Serve(_));
    let _telemetry = cairn_telemetry::init(
        &cfg.telemetry,
        if serving { "info" } else { "warn" },
        if serving { "cairn-serve" } else { "cairn" },
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the runtime: {e}"))?;
    let result = rt.block_on(run(cli, cfg));
    drop(rt);
    result
}

/// Runs the command, then records what it asked of the networks (egress
/// and requests, for `cairn cost`) when the broker is there to take it.
async fn run(cli: Cli, cfg: cairn_config::Config) -> anyhow::Result<u8> {
    let purpose = purpose(&cli.command);
    let result = command(cli, &cfg).await;
    // `serve` records its own; `recover` works with no broker at all;
    // `wal-fetch` must not wait on one while PostgreSQL recovers; and an
    // auditor's `audit` commands leave the log they check as it was.
    if !matches!(purpose, "serve" | "recover" | "wal-fetch" | "audit")
        && !cairn_networks::meter::is_empty()
    {
        // Briefly, and quietly: a command that did its work without the
        // broker is not held up or marred by its absence.
        match context::bus_within(&cfg, "cairn-cli", std::time::Duration::from_secs(1)).await {
            Ok(bus) => {
                let by = context::whoami("cli");
                if let Err(e) = cairn_ledger::usage::record_traffic(&bus, purpose, &by).await {
                    tracing::info!(error = %e, "network traffic not recorded");
                }
            }
            Err(e) => tracing::info!(error = %e, "network traffic not recorded"),
        }
    }
    result
}

/// The command's name, as `network.traffic` names what the requests were for.
fn purpose(c: &Command) -> &'static str {
    match c {
        Command::Init(_) => "init",
        Command::Setup(_) => "setup",
        Command::Serve(_) => "serve",
        Command::Backup(_) => "backup",
        Command::List(_) | Command::Show(_) => "list",
        Command::Restore(_) => "restore",
        Command::Ls(_) => "ls",
        Command::WalPush(_) => "wal-push",
        Command::WalFetch(_) => "wal-fetch",
        Command::Recover { .. } => "recover",
        Command::Forget(_) => "forget",
        Command::Shred(_) => "shred",
        Command::Gc(_) => "gc",
        Command::Hold(_) | Command::Release(_) | Command::Holds(_) => "hold",
        Command::Schedule { .. } => "schedule",
        Command::Retention { .. } => "retention",
        Command::Health(_) => "health",
        Command::Drill(_) | Command::Drills(_) => "drill",
        Command::Repair(_) => "repair",
        Command::Key { .. } => "key",
        Command::Compliance { .. } => "compliance",
        Command::Cost(_) => "cost",
        Command::Audit { .. } => "audit",
        Command::Console(_) => "console",
        Command::Nats { .. } => "nats",
    }
}

async fn command(cli: Cli, cfg: &cairn_config::Config) -> anyhow::Result<u8> {
    match cli.command {
        Command::Init(a) => init::init(cfg, a).await,
        Command::Setup(a) => setup::setup(cfg, a).await,
        Command::Serve(a) => serve::serve(cfg, a).await,
        Command::Backup(a) => backup::backup(cfg, a).await,
        Command::List(a) => list::list(cfg, a).await,
        Command::Show(a) => list::show(cfg, a).await,
        Command::Restore(a) => restore::restore(cfg, a).await,
        Command::Ls(a) => ls::ls(cfg, a).await,
        Command::WalPush(a) => wal::push(cfg, a).await,
        Command::WalFetch(a) => wal::fetch(cfg, a).await,
        Command::Recover { command } => recover::run(cfg, command).await,
        Command::Forget(a) => forget::forget(cfg, a).await,
        Command::Shred(a) => shred::shred(cfg, a).await,
        Command::Gc(a) => gc::gc(cfg, a).await,
        Command::Hold(a) => hold::hold(cfg, a).await,
        Command::Release(a) => hold::release(cfg, a).await,
        Command::Holds(a) => hold::holds(cfg, a).await,
        Command::Retention { command } => retention::run(cfg, command).await,
        Command::Schedule { command } => schedule::run(cfg, command).await,
        Command::Health(a) => health::health(cfg, a).await,
        Command::Drill(a) => drill::drill(cfg, a).await,
        Command::Drills(a) => drill::drills(cfg, a).await,
        Command::Repair(a) => repair::repair(cfg, a).await,
        Command::Key { command } => key::run(cfg, command).await,
        Command::Compliance { command } => compliance::run(cfg, command).await,
        Command::Cost(a) => cost::cost(cfg, a).await,
        Command::Audit { command } => audit::run(cfg, command).await,
        Command::Console(a) => console::console(cfg, a).await,
        Command::Nats { command } => nats::run(cfg, command).await,
    }
}
