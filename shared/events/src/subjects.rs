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

    /// Stream where ingest replicas claim each backup they run (a lease
    /// naming the holder and its run), so that one process at a time runs
    /// a backup and the others can tell its objects from a superseded
    /// run's: one message per key, kept a day.
    pub fn runs_stream(&self) -> String {
        self.stream("RUNS")
    }
    /// `<prefix>.run.<backup>`: the claim on one backup's ingest.
    pub fn run_key(&self, backup: &crate::BackupId) -> String {
        format!("{}.run.{backup}", self.prefix)
    }
    pub fn all_run_keys(&self) -> String {
        format!("{}.run.>", self.prefix)
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

    /// `<prefix>.evt.<kind>.<backup>` for one event, and for a request
    /// `<prefix>.evt.backup.requested.<backup>.<dataset>`: the dataset in
    /// the subject is what lets the server allow a factory to ask for its
    /// own datasets only ([`dataset_token`]).
    pub fn event(&self, event: &Event, backup: &BackupId) -> String {
        match event {
            Event::BackupRequested(r) => self.request(backup, &r.dataset),
            _ => format!("{}.evt.{}.{}", self.prefix, event.kind(), backup),
        }
    }
    /// The subject of a request for a backup of `dataset`.
    pub fn request(&self, backup: &BackupId, dataset: &str) -> String {
        format!(
            "{}.evt.backup.requested.{backup}.{}",
            self.prefix,
            dataset_token(dataset)
        )
    }
    /// Every request for a backup of `dataset` (what a factory of that
    /// dataset may publish).
    pub fn requests_of_dataset(&self, dataset: &str) -> String {
        format!(
            "{}.evt.backup.requested.*.{}",
            self.prefix,
            dataset_token(dataset)
        )
    }
    /// Every event.
    pub fn all_events(&self) -> String {
        format!("{}.evt.>", self.prefix)
    }
    /// Every event of one kind (e.g. `backup.requested`: with its
    /// dataset, and without, as published before requests named it).
    pub fn events_of_kind(&self, kind: &str) -> String {
        if kind == "backup.requested" {
            format!("{}.evt.{kind}.>", self.prefix)
        } else {
            format!("{}.evt.{kind}.*", self.prefix)
        }
    }
    /// The `backup.*` events of one backup (requested, started, ingested,
    /// the outcome, restored, forgotten): what a client that asked for it follows.
    pub fn lifecycle(&self, backup: &BackupId) -> String {
        format!("{}.evt.backup.*.{}", self.prefix, backup)
    }
    /// The kind and backup id an event's subject names (`None` for a
    /// subject that is not an event's).
    pub fn parse_event<'a>(&self, subject: &'a str) -> Option<(String, &'a str)> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix(".evt.")?;
        let mut t = rest.split('.');
        let (a, b, backup) = (t.next()?, t.next()?, t.next()?);
        Some((format!("{a}.{b}"), backup))
    }
    /// Every event of one backup but its request (kinds are always two
    /// tokens; a request carries a third, its dataset).
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

/// A dataset name as one subject token: itself when it is made only of
/// `[A-Za-z0-9_-]`, else with every other byte written `%XX`, so that any
/// name (dots and slashes included) is one token and no two names share
/// one.
pub fn dataset_token(dataset: &str) -> String {
    if dataset.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(dataset.len());
    for b in dataset.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
            "t-42.evt.backup.requested.>"
        );
        assert_eq!(
            s.events_of_kind("backup.ingested"),
            "t-42.evt.backup.ingested.*"
        );
        let id = BackupId::parse("b1").unwrap();
        assert_eq!(
            s.request(&id, "payroll"),
            "t-42.evt.backup.requested.b1.payroll"
        );
        assert_eq!(
            s.parse_event("t-42.evt.backup.requested.b1.payroll"),
            Some(("backup.requested".into(), "b1"))
        );
        assert_eq!(
            s.parse_event("t-42.evt.object.stored.b2"),
            Some(("object.stored".into(), "b2"))
        );
        assert_eq!(s.parse_event("t-4.evt.object.stored.b2"), None);
        assert_eq!(s.parse_event("t-42.evt.object"), None);
        assert_eq!(
            s.requests_of_dataset("payroll"),
            "t-42.evt.backup.requested.*.payroll"
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

    #[test]
    fn any_dataset_name_is_one_token_of_its_own() {
        assert_eq!(dataset_token("pay_roll-2"), "pay_roll-2");
        assert_eq!(dataset_token("a.b"), "a%2Eb");
        assert_eq!(dataset_token("db/main *"), "db%2Fmain%20%2A");
        assert_eq!(dataset_token(""), "%");
        // '%' itself is written out, so an encoded name never equals a plain one.
        assert_eq!(dataset_token("a%2Eb"), "a%252Eb");
        assert_ne!(dataset_token("a%2Eb"), dataset_token("a.b"));
        for name in ["a.b", "x>y", "é", "tab\there"] {
            let t = dataset_token(name);
            assert!(!t.contains(['.', '*', '>', ' ', '\t']), "{t}");
        }
    }
}
