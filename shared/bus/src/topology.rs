//! The streams and durable consumers, defined once. Every process applies
//! them at start (`Bus::ensure_topology`), so a fresh NATS server needs no
//! manual set-up; `cairn setup --print` writes them out for operators.
//!
//! | stream | subjects | storage | retention | why |
//! |---|---|---|---|---|
//! | EVENTS | `<p>.evt.>` | file | limits, no delete/purge | history: the ledger can be rebuilt from it |
//! | SEALED | `<p>.sealed.>` | file | interest (one consumer per network), bounded | a slow network holds only its own backlog |
//! | DLQ | `<p>.dlq.>` | file | limits, 1 GiB, oldest dropped | dead letters with their reason |
//! | RUNS | `<p>.run.>` | file | limits, one per key, a day | which ingest process runs each backup (a lease), and its run |
//! | AUDIT | `<p>.audit.>` | file | limits, no delete/purge | the ledger's copy outside PostgreSQL: entries, checkpoints, cosignatures |

use crate::NatsConfig;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use cairn_events::subjects::Subjects;
use cairn_events::Stage;
use std::time::Duration;

/// JetStream's duplicate window: a message re-published with the same
/// `Nats-Msg-Id` within it is dropped by the server.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long the RUNS stream keeps a backup's last claim.
pub const RUNS_KEPT: Duration = Duration::from_secs(24 * 3600);

/// What every stream shares; each adds its bounds below.
fn stream(
    name: String,
    description: &str,
    subjects: String,
    (storage, retention): (StorageType, RetentionPolicy),
    cfg: &NatsConfig,
) -> stream::Config {
    stream::Config {
        name,
        description: Some(format!("Cairn: {description}")),
        subjects: vec![subjects],
        storage,
        retention,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

pub fn streams(s: &Subjects, cfg: &NatsConfig) -> Vec<stream::Config> {
    let kept = (StorageType::File, RetentionPolicy::Limits);
    // A stream of record: kept, and nobody may delete from or purge it.
    let of_record = |c: stream::Config| stream::Config {
        deny_delete: true,
        deny_purge: true,
        ..c
    };
    let events = "every state-change event (the ledger's source)";
    let audit = "the audit ledger's entries, signed and cosigned checkpoints, for auditors, witnesses and rebuilds";
    vec![
        of_record(stream(s.events_stream(), events, s.all_events(), kept, cfg)),
        stream::Config {
            max_bytes: cfg.sealed_max_bytes,
            discard: DiscardPolicy::New,
            ..stream(
                s.sealed_stream(),
                "sealed objects for the store workers",
                s.all_sealed(),
                (StorageType::File, RetentionPolicy::Interest),
                cfg,
            )
        },
        of_record(stream(s.audit_stream(), audit, s.all_audit(), kept, cfg)),
        stream::Config {
            // Dead letters from the store stage keep their (sealed) payload:
            // bound the stream, dropping the oldest first.
            max_bytes: 1 << 30,
            discard: DiscardPolicy::Old,
            ..stream(
                s.dlq_stream(),
                "dead letters, with their reason in headers",
                s.all_dlq(),
                kept,
                cfg,
            )
        },
        stream::Config {
            // A claim board: the last message per key is all there is.
            max_messages_per_subject: 1,
            ..stream(
                s.schedules_stream(),
                "schedule slots claimed by the retention service's replicas, and the last fired",
                s.all_schedule_keys(),
                kept,
                cfg,
            )
        },
        stream::Config {
            // A lease is renewed every few seconds while its backup runs: a
            // day-old one ended long ago.
            max_messages_per_subject: 1,
            max_age: RUNS_KEPT,
            ..stream(
                s.runs_stream(),
                "which ingest process runs each backup, and its run",
                s.all_run_keys(),
                kept,
                cfg,
            )
        },
    ]
}

/// A durable consumer and the stream it reads.
pub struct ConsumerSpec {
    pub stream: String,
    pub config: pull::Config,
    /// Whether dead letters from it may keep the payload.
    pub keep_payload: bool,
}

fn consumer(name: String, filter: String, cfg: &NatsConfig, max_ack_pending: i64) -> pull::Config {
    pull::Config {
        durable_name: Some(name),
        filter_subject: filter,
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait: Duration::from_secs(cfg.ack_wait_secs),
        max_deliver: cfg.max_deliver,
        max_ack_pending,
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// The consumer of `stage` (`network` for store workers); none for the
/// stages that run on a timer, nor for encrypt.
pub fn consumer_spec(
    s: &Subjects,
    cfg: &NatsConfig,
    stage: Stage,
    network: Option<&str>,
) -> Option<ConsumerSpec> {
    let events = s.events_stream();
    // (stream, filter, max ack pending, whether dead letters keep the payload)
    let (stream, filter, pending, keep_payload) = match stage {
        Stage::Ingest => (events, s.events_of_kind("backup.requested"), 64, true),
        Stage::Store => (s.sealed_stream(), s.all_sealed(), 512, true),
        Stage::Verify => (events, s.events_of_kind("backup.ingested"), 64, true),
        Stage::Ledger => (events, s.all_events(), 4096, true),
        Stage::Retention => (events, s.events_of_kind("forget.requested"), 16, true),
        // Encrypt answers core-NATS requests (`crate::request`): plaintext
        // is never stored, not even in a memory stream.
        Stage::Encrypt | Stage::Repair | Stage::Checkpoint => return None,
    };
    Some(ConsumerSpec {
        stream,
        config: consumer(s.consumer(stage, network), filter, cfg, pending),
        keep_payload,
    })
}

/// Every consumer, for every configured network.
pub fn all_consumers(s: &Subjects, cfg: &NatsConfig, networks: &[String]) -> Vec<ConsumerSpec> {
    let mut out: Vec<ConsumerSpec> = Stage::ALL
        .into_iter()
        .filter(|st| *st != Stage::Store)
        .filter_map(|st| consumer_spec(s, cfg, st, None))
        .collect();
    out.extend(
        networks
            .iter()
            .filter_map(|n| consumer_spec(s, cfg, Stage::Store, Some(n))),
    );
    out
}

/// The whole topology as operators read it (`cairn setup --print`,
/// `deploy/streams.json`): JetStream's own JSON for each stream and each
/// consumer with the stream it reads.
#[derive(Debug, serde::Serialize)]
pub struct Printed {
    pub streams: Vec<stream::Config>,
    pub consumers: Vec<PrintedConsumer>,
}

#[derive(Debug, serde::Serialize)]
pub struct PrintedConsumer {
    pub stream: String,
    pub config: pull::Config,
}

pub fn printed(s: &Subjects, cfg: &NatsConfig, networks: &[String]) -> Printed {
    Printed {
        streams: streams(s, cfg),
        consumers: all_consumers(s, cfg, networks)
            .into_iter()
            .map(|c| PrintedConsumer {
                stream: c.stream,
                config: c.config,
            })
            .collect(),
    }
}
