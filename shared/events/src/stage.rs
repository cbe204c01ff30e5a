//! The stages and the other long-running processes `cairn serve` runs, as
//! one type: the topology gives each stage that consumes its durable
//! consumer, the CLI parses `cairn serve <stage>` into it, and its name is
//! used in consumer names, DLQ subjects and `Envelope::source`.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
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

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Ingest,
        Stage::Encrypt,
        Stage::Store,
        Stage::Verify,
        Stage::Ledger,
        Stage::Retention,
        Stage::Repair,
        Stage::Checkpoint,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Encrypt => "encrypt",
            Stage::Store => "store",
            Stage::Verify => "verify",
            Stage::Ledger => "ledger",
            Stage::Retention => "retention",
            Stage::Repair => "repair",
            Stage::Checkpoint => "checkpoint",
        }
    }

    /// What it does, in a few words (for `--help`).
    pub fn about(self) -> &'static str {
        match self {
            Stage::Ingest => "read sources, chunk, deduplicate",
            Stage::Encrypt => "seal chunks and manifests",
            Stage::Store => "write sealed objects, one worker per network",
            Stage::Verify => "read every backup back and check it (and witness checkpoints)",
            Stage::Ledger => "append every event to the audit ledger",
            Stage::Retention => "forget backups",
            Stage::Repair => "repair degraded backups on their own",
            Stage::Checkpoint => "sign checkpoints of the ledger",
        }
    }

    /// Whether it works off a durable consumer (the others run on a timer).
    pub fn consumes(self) -> bool {
        !matches!(self, Stage::Repair | Stage::Checkpoint)
    }

    /// The label a worker goes by: the stage, or `store:<network>`.
    pub fn label(self, network: Option<&str>) -> String {
        match network {
            Some(n) => format!("{}:{n}", self.name()),
            None => self.name().to_string(),
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stage {0:?} (stages: {names})", names = Stage::ALL.map(Stage::name).join(", "))]
pub struct UnknownStage(pub String);

impl FromStr for Stage {
    type Err = UnknownStage;
    fn from_str(s: &str) -> Result<Self, UnknownStage> {
        Stage::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| UnknownStage(s.chars().take(80).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_named() {
        for st in Stage::ALL {
            assert_eq!(st.name().parse::<Stage>(), Ok(st));
        }
        let err = "ingset".parse::<Stage>().unwrap_err().to_string();
        assert!(
            err.contains("\"ingset\"") && err.contains("ingest"),
            "{err}"
        );
        assert_eq!(Stage::Store.label(Some("s3")), "store:s3");
    }
}
