//! Every subject, stream and consumer name, derived from one prefix so that
//! several Cairn deployments (or test runs) share a NATS server without
//! touching each other. Stream *configurations* live in `cairn_bus::topology`.

use crate::{BackupId, Event, Stage};

/// Names under one prefix (default `cairn`). The prefix must be a single
/// subject token: `[A-Za-z0-9_-]+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Result<Self, String> {
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "invalid subject prefix {prefix:?}: expected one token of [A-Za-z0-9_-]"
            ));
        }
        Ok(Subjects {
            prefix: prefix.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn stream(&self, name: &str) -> String {
        format!("{}_{}", self.prefix.to_uppercase().replace('-', "_"), name)
    }

    /// Stream of every state-change event (file storage, kept).
    pub fn events_stream(&self) -> String {
        self.stream("EVENTS")
    }
    /// The stream that carried plaintext chunks to encrypt before they
    /// went as core-NATS requests ([`Subjects::seal`]); a process that finds
    /// it deletes it.
    pub fn obsolete_plain_stream(&self) -> String {
        self.stream("PLAIN")
    }
    /// Stream of sealed objects on their way to the networks.
    pub fn sealed_stream(&self) -> String {
        self.stream("SEALED")
    }
    /// Stream of dead letters.
    pub fn dlq_stream(&self) -> String {
        self.stream("DLQ")
    }
    /// Stream of what the audit ledger publishes for auditors and consoles
    /// (signed checkpoints), kept and never deleted.
    pub fn audit_stream(&self) -> String {
        self.stream("AUDIT")
    }

    /// Stream where the retention service's replicas claim each schedule
    /// slot (exactly one fires it) and remember the last fired: one
    /// message per key.
    pub fn schedules_stream(&self) -> String {
        self.stream("SCHEDULES")
    }
    /// `<prefix>.sched.<key>`: one key of the schedules stream.
    pub fn schedule_key(&self, key: &str) -> String {
        format!("{}.sched.{key}", self.prefix)
    }
    pub fn all_schedule_keys(&self) -> String {
        format!("{}.sched.>", self.prefix)
    }

    /// `<prefix>.audit.checkpoint`: each signed checkpoint of the ledger.
    pub fn checkpoint(&self) -> String {
        format!("{}.audit.checkpoint", self.prefix)
    }
    /// `<prefix>.audit.cosigned`: checkpoints with a witness's cosignature.
    pub fn cosigned(&self) -> String {
        format!("{}.audit.cosigned", self.prefix)
    }
    /// `<prefix>.audit.entry.<kind>`: each ledger entry's exact bytes, in log
    /// order, with `Nats-Msg-Id: entry-<seq>` (see [`entry_msg_id`]).
    pub fn audit_entry(&self, kind: &str) -> String {
        format!("{}.audit.entry.{kind}", self.prefix)
    }
    /// Every re-published ledger entry.
    pub fn all_audit_entries(&self) -> String {
        format!("{}.audit.entry.>", self.prefix)
    }
    /// Everything under `<prefix>.audit.`.
    pub fn all_audit(&self) -> String {
        format!("{}.audit.>", self.prefix)
    }

    /// `<prefix>.evt.<kind>.<backup>` for one event.
    pub fn event(&self, event: &Event, backup: &BackupId) -> String {
        format!("{}.evt.{}.{}", self.prefix, event.kind(), backup)
    }
    /// Every event.
    pub fn all_events(&self) -> String {
        format!("{}.evt.>", self.prefix)
    }
    /// Every event of one kind (e.g. `backup.requested`).
    pub fn events_of_kind(&self, kind: &str) -> String {
        format!("{}.evt.{}.*", self.prefix, kind)
    }
    /// The `backup.*` events of one backup (requested, started, ingested,
    /// the outcome, restored, forgotten): what a client that asked for it follows.
    pub fn lifecycle(&self, backup: &BackupId) -> String {
        format!("{}.evt.backup.*.{}", self.prefix, backup)
    }
    /// Every event of one backup (kinds are always two tokens).
    pub fn events_of_backup(&self, backup: &BackupId) -> String {
        format!("{}.evt.*.*.{}", self.prefix, backup)
    }

    /// `<prefix>.seal.<backup>`: a core-NATS request to encrypt carrying
    /// one chunk, pack or manifest in plaintext; never stored by the
    /// server. The answer is a [`crate::Answer`].
    pub fn seal(&self, backup: &BackupId) -> String {
        format!("{}.seal.{}", self.prefix, backup)
    }
    pub fn all_seal(&self) -> String {
        format!("{}.seal.>", self.prefix)
    }
    /// The queue group the encrypt replicas answer seal requests in (one
    /// of them gets each request).
    pub fn encrypt_group(&self) -> String {
        format!("{}-encrypt", self.prefix)
    }
    pub fn sealed(&self, backup: &BackupId) -> String {
        format!("{}.sealed.{}", self.prefix, backup)
    }
    pub fn all_sealed(&self) -> String {
        format!("{}.sealed.>", self.prefix)
    }

    /// Dead letters of one stage.
    pub fn dlq(&self, stage: &str) -> String {
        format!("{}.dlq.{}", self.prefix, stage)
    }
    pub fn all_dlq(&self) -> String {
        format!("{}.dlq.>", self.prefix)
    }

    /// Core-NATS (never stored) progress of one backup, for terminals.
    pub fn progress(&self, backup: &BackupId) -> String {
        format!("{}.progress.{}", self.prefix, backup)
    }

    /// Durable consumer name of a stage (`store` takes the network name).
    pub fn consumer(&self, stage: Stage, network: Option<&str>) -> String {
        match network {
            Some(net) => format!("{stage}-{net}"),
            None => stage.to_string(),
        }
    }
}

/// The `Nats-Msg-Id` of ledger entry `seq` on `audit.entry.<kind>`: it
/// dedupes re-publishes and carries the entry's place in the log.
pub fn entry_msg_id(seq: u64) -> String {
    format!("entry-{seq}")
}

/// The sequence number in an `entry-<seq>` message id.
pub fn entry_seq(msg_id: &str) -> Option<u64> {
    msg_id.strip_prefix("entry-")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_scoped_by_prefix() {
        let s = Subjects::new("t-42").unwrap();
        assert_eq!(s.events_stream(), "T_42_EVENTS");
        assert_eq!(
            s.events_of_kind("backup.requested"),
            "t-42.evt.backup.requested.*"
        );
        assert_eq!(
            s.audit_entry("backup.requested"),
            "t-42.audit.entry.backup.requested"
        );
        assert_eq!(entry_seq(&entry_msg_id(17)), Some(17));
        assert_eq!(entry_seq("checkpoint-17"), None);
        assert!(Subjects::new("a.b").is_err());
        assert!(Subjects::new("").is_err());
    }
}
