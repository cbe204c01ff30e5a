//! `cairn`: the command line. A thin shell over the library crates: it
//! parses arguments, loads the configuration, and calls into the stages
//! (`serve`), the bus (`backup`, `forget`), the repository (`restore`, `init`)
//! and the ledger (`list`, `show`, `audit`).

mod backup;
mod care;
mod commands;
mod output;
mod serve;

use clap::{Parser, Subcommand, ValueEnum};
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create the repository (config and key file) on every configured network.
    Init(commands::InitArgs),
    /// Create the NATS streams and consumers and the database schema.
    Setup(commands::SetupArgs),
    /// Run stage workers (`all` = every stage in one process).
    Serve {
        #[arg(value_enum, default_value = "all")]
        stages: Vec<Stage>,
        /// Store workers only for these networks (default: all configured).
        #[arg(long = "network")]
        networks: Vec<String>,
    },
    /// Back up paths, stdin or a PostgreSQL database; waits for the outcome.
    Backup(backup::BackupArgs),
    /// List backups, newest first.
    List(commands::ListArgs),
    /// Show one backup.
    Show(commands::ShowArgs),
    /// Restore a backup to a directory, a database or stdout.
    Restore(commands::RestoreArgs),
    /// Remove a backup and the chunks nothing else uses.
    Forget(commands::ForgetArgs),
    /// How well each network holds a backup (availability, sampled
    /// integrity against the Merkle root, estimated restore time).
    Health {
        backup_id: String,
        /// Read every object instead of a sample.
        #[arg(long)]
        full: bool,
        #[arg(long)]
        json: bool,
    },
    /// Copy missing or corrupt objects back onto networks from intact copies.
    Repair {
        backup_id: Option<String>,
        /// Every completed or degraded backup.
        #[arg(long, conflicts_with = "backup_id")]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// The audit ledger.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the ledger for edited, deleted or reordered entries, and hold
    /// it against its copies outside the database: the signed checkpoints
    /// (database, AUDIT stream, networks, the signer's state) and the
    /// entries published on audit.entry.
    Verify {
        /// The log's public key, or a file holding it (default: `[audit]
        /// public_key_file`, or the signing key's .pub).
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the ledger into an empty database from its copy on the
    /// AUDIT stream (same entries, same tree and root, projections too).
    Rebuild {
        #[arg(long)]
        json: bool,
    },
    /// Read the ledger, oldest first.
    Log {
        /// Entries recorded at or after this time (RFC 3339, e.g. 2026-11-24T08:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// One event kind (e.g. backup.completed).
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        dataset: Option<String>,
        #[arg(long)]
        backup: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Make the ledger's checkpoint signing key (Ed25519): the secret key
    /// goes to KEY_FILE (mode 0600), the public key to KEY_FILE.pub.
    Keygen {
        /// The log's name, in every checkpoint (e.g. `backup.example.com/ledger`).
        #[arg(long)]
        origin: String,
        #[arg(long)]
        key_file: PathBuf,
    },
    /// Sign a checkpoint of the ledger now (size and Merkle root), after
    /// proving it extends the last one signed.
    Checkpoint {
        #[arg(long)]
        json: bool,
    },
    /// Write entry SEQ's exact bytes and its inclusion proof (C2SP
    /// tlog-proof, against the newest signed checkpoint covering it) to DIR.
    Prove {
        seq: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Prove that the log signed at NEW entries extends the one signed at
    /// OLD (both sizes of signed checkpoints) into FILE.
    Consistency {
        old: u64,
        new: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a proof offline: an inclusion proof with the entry's bytes
    /// (`--entry`), a consistency proof, or an evidence bundle; needs only
    /// the log's public key (no database, no broker).
    CheckProof {
        proof: PathBuf,
        #[arg(long)]
        entry: Option<PathBuf>,
        /// The log's public key, or a file holding it (`cairn audit keygen`'s KEY_FILE.pub).
        #[arg(long)]
        key: String,
        /// Also require a witness's cosignature: its public key, or a file holding it.
        #[arg(long)]
        witness_key: Option<String>,
    },
    /// One backup's evidence for auditors: its ledger entries with
    /// inclusion proofs against one (cosigned, when a witness runs) signed
    /// checkpoint, and what they establish (manifest digest, Merkle roots,
    /// locators on each network). `check-proof` checks the bundle offline.
    Evidence {
        backup_id: String,
        /// Write the bundle (JSON) to FILE.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the bundle (JSON) instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// Write the log up to its newest (cosigned) checkpoint to DIR in the
    /// C2SP tlog-tiles layout (checkpoint, hash tiles, entry bundles), for
    /// transparency-log clients and witnesses.
    Export {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Cosign the latest checkpoint as the witness (`[audit]
    /// witness_key_file`), after proving it extends the last one cosigned;
    /// `serve verify` does this on its own.
    Witness {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum, Debug)]
pub enum Stage {
    All,
    Ingest,
    Encrypt,
    Store,
    Verify,
    Ledger,
    Retention,
    /// Automatic repair of degraded backups (`[repair] interval_secs`).
    Repair,
    /// Signed checkpoints of the ledger (`[audit] signing_key_file`).
    Checkpoint,
}

/// Exit codes beyond 0 (done), 1 (error) and 2 (usage).
pub mod exit {
    pub const DEGRADED: u8 = 3;
    pub const NO_WORKER: u8 = 4;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match start(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("cairn: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Configuration and telemetry first (outside the runtime: the OTLP exporter
/// has its own thread), then the command; spans are flushed after it ends.
fn start(cli: Cli) -> anyhow::Result<u8> {
    let cfg = cairn_config::Config::load(cli.config.as_deref())?;
    let serving = matches!(cli.command, Command::Serve { .. });
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

async fn run(cli: Cli, cfg: cairn_config::Config) -> anyhow::Result<u8> {
    match cli.command {
        Command::Init(a) => commands::init(&cfg, a).await,
        Command::Setup(a) => commands::setup(&cfg, a).await,
        Command::Serve { stages, networks } => serve::serve(&cfg, &stages, &networks).await,
        Command::Backup(a) => backup::backup(&cfg, a).await,
        Command::List(a) => commands::list(&cfg, a).await,
        Command::Show(a) => commands::show(&cfg, a).await,
        Command::Restore(a) => commands::restore(&cfg, a).await,
        Command::Forget(a) => commands::forget(&cfg, a).await,
        Command::Health {
            backup_id,
            full,
            json,
        } => care::health(&cfg, &backup_id, full, json).await,
        Command::Repair {
            backup_id,
            all,
            json,
        } => care::repair(&cfg, backup_id.as_deref(), all, json).await,
        Command::Audit { command } => match command {
            AuditCommand::Verify { key, json } => {
                commands::audit_verify(&cfg, key.as_deref(), json).await
            }
            AuditCommand::Rebuild { json } => commands::audit_rebuild(&cfg, json).await,
            AuditCommand::Log {
                since,
                kind,
                dataset,
                backup,
                limit,
                json,
            } => {
                let filter = cairn_audit_ledger::query::EntryFilter {
                    since,
                    kind,
                    dataset,
                    backup_id: backup,
                    limit,
                };
                commands::audit_log(&cfg, filter, json).await
            }
            AuditCommand::Keygen { origin, key_file } => commands::audit_keygen(&origin, &key_file),
            AuditCommand::Checkpoint { json } => commands::audit_checkpoint(&cfg, json).await,
            AuditCommand::Prove { seq, out } => commands::audit_prove(&cfg, seq, &out).await,
            AuditCommand::Consistency { old, new, out } => {
                commands::audit_consistency(&cfg, old, new, &out).await
            }
            AuditCommand::CheckProof {
                proof,
                entry,
                key,
                witness_key,
            } => {
                commands::audit_check_proof(&proof, entry.as_deref(), &key, witness_key.as_deref())
            }
            AuditCommand::Witness { json } => commands::audit_witness(&cfg, json).await,
            AuditCommand::Export { dir, json } => commands::audit_export(&cfg, &dir, json).await,
            AuditCommand::Evidence {
                backup_id,
                out,
                json,
            } => commands::audit_evidence(&cfg, &backup_id, out.as_deref(), json).await,
        },
    }
}

/// `user@host`, for `requested_by` and event sources.
pub fn whoami(role: &str) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{role}@{host}")
}
