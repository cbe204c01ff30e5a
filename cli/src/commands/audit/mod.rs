//! `cairn audit …`: the audit ledger, for operators and auditors. One file
//! per subcommand; what several share (the log's public key, cosigned
//! checkpoints, this host's witness) is here.

mod check_proof;
mod checkpoint;
mod evidence;
mod export;
mod keygen;
mod log;
mod prove;
mod rebuild;
mod verify;
mod witness;

use crate::context;
use anyhow::Context;
use cairn_config::Config;
use std::collections::BTreeMap;

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check the ledger for edited, deleted or reordered entries, and hold
    /// it against its copies outside the database: the signed checkpoints
    /// (database, AUDIT stream, networks, the signer's state) and the
    /// entries published on audit.entry.
    Verify(verify::Args),
    /// Rebuild the ledger into an empty database from its copy on the
    /// AUDIT stream (same entries, same tree and root, projections too).
    Rebuild(rebuild::Args),
    /// Read the ledger, oldest first.
    Log(log::Args),
    /// Make a checkpoint signing key (Ed25519), the log's or a witness's:
    /// the secret key goes to KEY_FILE (mode 0600), the public key to
    /// KEY_FILE.pub.
    Keygen(keygen::Args),
    /// Sign a checkpoint of the ledger now (size and Merkle root), after
    /// proving it extends the last one signed.
    Checkpoint(checkpoint::Args),
    /// Write entry SEQ's exact bytes and its inclusion proof (C2SP
    /// tlog-proof, against the newest signed checkpoint covering it) to DIR.
    Prove(prove::ProveArgs),
    /// Prove that the log signed at NEW entries extends the one signed at
    /// OLD (both sizes of signed checkpoints) into FILE.
    Consistency(prove::ConsistencyArgs),
    /// Check a proof offline: an inclusion proof with the entry's bytes
    /// (`--entry`), a consistency proof, or an evidence bundle; needs only
    /// the log's public key (no database, no broker).
    CheckProof(check_proof::Args),
    /// One backup's evidence for auditors: its ledger entries with
    /// inclusion proofs against one (cosigned, when a witness runs) signed
    /// checkpoint, and what they establish (manifest digest, Merkle roots,
    /// locators on each network). `check-proof` checks the bundle offline.
    Evidence(evidence::Args),
    /// Write the log up to its newest (cosigned) checkpoint to DIR in the
    /// C2SP tlog-tiles layout (checkpoint, hash tiles, entry bundles), for
    /// transparency-log clients and witnesses.
    Export(export::Args),
    /// Cosign the latest checkpoint as the witness (`[audit]
    /// witness_key_file`), after proving it extends the last one cosigned;
    /// `serve verify` does this on its own.
    Witness(witness::Args),
}

pub async fn run(cfg: &Config, command: AuditCommand) -> anyhow::Result<u8> {
    match command {
        AuditCommand::Verify(a) => verify::run(cfg, a).await,
        AuditCommand::Rebuild(a) => rebuild::run(cfg, a).await,
        AuditCommand::Log(a) => log::run(cfg, a).await,
        AuditCommand::Keygen(a) => keygen::run(a),
        AuditCommand::Checkpoint(a) => checkpoint::run(cfg, a).await,
        AuditCommand::Prove(a) => prove::prove(cfg, a).await,
        AuditCommand::Consistency(a) => prove::consistency(cfg, a).await,
        AuditCommand::CheckProof(a) => check_proof::run(a),
        AuditCommand::Evidence(a) => evidence::run(cfg, a).await,
        AuditCommand::Export(a) => export::run(cfg, a).await,
        AuditCommand::Witness(a) => witness::run(cfg, a).await,
    }
}

/// The log's public key: `--key` (the key or a file holding it), else the
/// configured one, if its file exists.
fn log_public_key(cfg: &Config, key: Option<&str>) -> anyhow::Result<Option<String>> {
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

/// The witnesses' cosigned checkpoints, when the broker answers (proofs
/// then prefer them); none otherwise, with a warning.
pub(crate) async fn cosigned_if_up(cfg: &Config) -> BTreeMap<u64, Vec<u8>> {
    let got = match context::bus_if_up(cfg, "cairn-audit").await {
        Ok(bus) => cairn_ledger::prove::cosigned(&bus)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    got.unwrap_or_else(|e| {
        crate::err!("warning: cosigned checkpoints not read ({e}); proving against the log's own");
        Default::default()
    })
}

/// The witness of this host: its key, the log's public key, the database
/// (for consistency proofs, checked against signed roots) and the broker.
pub async fn witness(cfg: &Config) -> anyhow::Result<Option<cairn_verify::witness::Witness>> {
    let Some(key_file) = cfg.audit.witness_key_file.clone() else {
        return Ok(None);
    };
    let log_vkey = log_public_key(cfg, None)?.with_context(|| {
        format!(
            "the witness ({}) needs the log's public key: set [audit] public_key_file",
            key_file.display()
        )
    })?;
    let pg = context::ledger_as(cfg, cairn_ledger::Role::Reader).await?;
    let bus = context::bus(cfg, "cairn-witness").await?;
    Ok(Some(cairn_verify::witness::Witness::new(
        key_file, log_vkey, pg, bus,
    )?))
}
