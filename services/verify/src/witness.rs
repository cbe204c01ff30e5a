//! The witness: the verify service cosigns the ledger's checkpoints, each
//! only after proving it extends the last one it cosigned. It keeps that
//! checkpoint in a file beside its own key (`<witness key>.last`), not in
//! the database, and checks every consistency proof against the two signed
//! roots, so neither a database owner nor a log signer who lost its state can
//! get a forked history cosigned: a log that shows one history to the witness
//! and another to an auditor is caught by either. Cosigned checkpoints go to
//! `<prefix>.audit.cosigned` (AUDIT stream).
//!
//! The first checkpoint a fresh witness sees is cosigned on trust (as every
//! witness starts); from then on only extensions are.

use cairn_bus::Bus;
use cairn_ledger::checkpoint::{
    last_signed, lock_state, relate, remember, state_file, Fork, Relation, StateError,
};
use cairn_tlog::checkpoint::{self, CheckpointError, LogKey};
use cairn_tlog::reader::Known;
use std::path::PathBuf;
use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("witness key {path}: {detail}")]
    Key { path: PathBuf, detail: String },
    #[error("the witness's {0}")]
    State(#[from] StateError),
    #[error(transparent)]
    Bus(#[from] cairn_bus::BusError),
    #[error("the latest checkpoint on audit.checkpoint is not signed by the log: {0}")]
    NotSigned(#[from] CheckpointError),
    #[error("refusing to cosign: {0}")]
    Forked(String),
    #[error(transparent)]
    Tree(#[from] cairn_ledger::tree::TreeError),
}

/// What one look at the log did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Witnessed {
    /// Nothing signed yet.
    NoCheckpoint,
    /// The latest checkpoint was already cosigned.
    Unchanged { size: u64 },
    /// The latest checkpoint is older than the one last cosigned (a stale
    /// copy on the stream): nothing to do.
    Older { size: u64, last: u64 },
    /// Cosigned (and published): `extends` is the size it was proven to extend.
    Cosigned {
        size: u64,
        extends: Option<u64>,
        note: Vec<u8>,
    },
}

pub struct Witness {
    pub key: LogKey,
    pub key_file: PathBuf,
    /// The log's public key: only its checkpoints are cosigned.
    pub log_vkey: String,
    pub pg: Client,
    pub bus: Bus,
}

impl Witness {
    pub fn new(
        key_file: PathBuf,
        log_vkey: String,
        pg: Client,
        bus: Bus,
    ) -> Result<Self, WitnessError> {
        let text = std::fs::read_to_string(&key_file).map_err(|e| WitnessError::Key {
            path: key_file.clone(),
            detail: e.to_string(),
        })?;
        let key = LogKey::from_text(&text).map_err(|e| WitnessError::Key {
            path: key_file.clone(),
            detail: e.to_string(),
        })?;
        Ok(Witness {
            key,
            key_file,
            log_vkey,
            pg,
            bus,
        })
    }

    /// Looks at the latest checkpoint and cosigns it if it extends the last
    /// one cosigned.
    pub async fn witness_once(&self) -> Result<Witnessed, WitnessError> {
        let Some(note) = self
            .bus
            .last_on_audit(&self.bus.subjects.checkpoint())
            .await?
        else {
            return Ok(Witnessed::NoCheckpoint);
        };
        let cp = checkpoint::verify(&note, &self.log_vkey)?;
        let (size, root) = (cp.size(), *cp.hash());
        let state = state_file(&self.key_file);
        let _lock = lock_state(&state)?;
        let last = last_signed(&state)?;
        // The proof comes from the database; `relate` checks it against the
        // two signed roots, so the database is not trusted.
        let extends = match relate(&self.pg, &mut Known::new(), last, size, root).await {
            Ok(Relation::First) => None,
            Ok(Relation::Extends { from }) => Some(from),
            Ok(Relation::Same) => return Ok(Witnessed::Unchanged { size }),
            Ok(Relation::Behind { last }) => return Ok(Witnessed::Older { size, last }),
            Err(Fork::OtherRoot { .. }) => {
                let cosigned = last.map(|(_, r)| hex::encode(r.0)).unwrap_or_default();
                return Err(WitnessError::Forked(format!(
                    "the log signed two different roots for {size} entries: {cosigned} cosigned, {} now",
                    hex::encode(root.0)
                )));
            }
            Err(Fork::NotExtension { old, detail }) => {
                return Err(WitnessError::Forked(format!(
                    "the checkpoint at {size} entries does not extend the one cosigned at {old} ({detail}): the log's history was rewritten"
                )))
            }
            Err(Fork::Tree(e)) => return Err(e.into()),
        };
        let cosigned = self.key.cosign(&note).map_err(|e| WitnessError::Key {
            path: self.key_file.clone(),
            detail: e.to_string(),
        })?;
        self.bus
            .publish_cosigned(size, self.key.origin(), &cosigned)
            .await?;
        // Remembered once published.
        remember(&state, &note)?;
        Ok(Witnessed::Cosigned {
            size,
            extends,
            note: cosigned,
        })
    }

    /// Witnesses every `every` until the process stops. A refusal is logged
    /// as an error at every look: a forked log must not go unseen.
    pub async fn run(self, every: std::time::Duration) -> Result<(), WitnessError> {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.witness_once().await {
                Ok(Witnessed::Cosigned { size, extends, .. }) => {
                    tracing::info!(
                        size,
                        extends,
                        witness = self.key.origin(),
                        "checkpoint cosigned"
                    )
                }
                Ok(_) => {}
                Err(e @ (WitnessError::Forked(_) | WitnessError::NotSigned(_))) => {
                    tracing::error!(error = %e, "witness: checkpoint not cosigned")
                }
                Err(e) => tracing::warn!(error = %e, "witness: cannot look at the log now"),
            }
        }
    }
}
