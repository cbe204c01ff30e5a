//! Cairn on NATS JetStream: connecting, the topology, publishing with
//! back-pressure, and the worker loop every stage runs (durable pull consumer,
//! explicit acks, progress while busy, retry with backoff, dead letters);
//! core-NATS requests with a window of answers, for the plaintext hop that
//! must never be stored ([`request`]); and what a client does ([`client`]:
//! ask for a backup and follow it).

pub mod access;
pub mod claims;
pub mod client;
pub mod config;
pub mod lease;
pub mod publish;
pub mod quorum;
pub mod redrive;
pub mod replay;
pub mod request;
pub mod runs;
pub mod topology;
pub mod worker;

use async_nats::jetstream;
use bytes::Bytes;
use cairn_events::subjects::Subjects;
use cairn_events::{encode, Envelope};
pub use config::NatsConfig;
use std::time::Duration;

pub use publish::Pipeline;
pub use worker::{BatchHandler, Delivery, Failure, Handler};

/// The largest message Cairn publishes: a chunk at the repository's maximum
/// size plus envelope. The server's `max_payload` must admit it.
pub const MAX_MESSAGE: usize = 896 * 1024 + 4096;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot reach NATS at {url}: {detail}. Is nats-server running (with JetStream)? `scripts/setup.sh` installs and starts one")]
    Connect { url: String, detail: String },
    #[error("NATS at {url} allows messages up to {max_payload} bytes; Cairn needs {needed} (set max_payload in the server config, see deploy/nats)")]
    Payload {
        url: String,
        max_payload: usize,
        needed: usize,
    },
    /// A stage gave up for a reason of its own (its database connection
    /// gone): its process stops and is started again.
    #[error("{0}")]
    Stopped(String),
    #[error("JetStream: {0}")]
    JetStream(String),
    #[error("publish to {subject}: {detail}")]
    Publish { subject: String, detail: String },
    /// A stage answered a request with a refusal: asking again will not help.
    #[error("{subject}: refused: {reason}")]
    Refused { subject: String, reason: String },
    #[error("stage {0} has no consumer: it runs on a timer or answers requests, not off a stream")]
    NoConsumer(cairn_events::Stage),
}

/// `nats.url` may list several servers of a cluster, comma-separated.
fn servers(url: &str) -> Result<Vec<async_nats::ServerAddr>, BusError> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<async_nats::ServerAddr>()
                .map_err(|e| BusError::Connect {
                    url: s.to_string(),
                    detail: format!("not a NATS server address: {e}"),
                })
        })
        .collect()
}

/// A consumer or stream not created yet (a store worker of a network that
/// never started), as opposed to a broker that did not answer.
fn not_found(e: &impl std::fmt::Display) -> bool {
    e.to_string().to_ascii_lowercase().contains("not found")
}

/// One durable consumer's backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerBacklog {
    pub stream: String,
    pub consumer: String,
    /// Messages not yet delivered to it (its lag).
    pub pending: u64,
    /// Delivered, not yet acknowledged.
    pub ack_pending: u64,
}

/// [`Bus::backlog`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    pub consumers: Vec<ConsumerBacklog>,
    /// Each stream and the messages it holds.
    pub streams: Vec<(String, u64)>,
}

/// A connection and the names it uses.
#[derive(Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub subjects: Subjects,
    pub cfg: NatsConfig,
}

impl Bus {
    pub async fn connect(cfg: &NatsConfig, client_name: &str) -> Result<Bus, BusError> {
        let subjects = Subjects::new(&cfg.prefix).map_err(BusError::JetStream)?;
        let began = std::time::Instant::now();
        let options = access::options(cfg)?
            .name(client_name)
            .connection_timeout(Duration::from_secs(5))
            // A server gone without closing the connection (its host cut
            // off) is noticed after two unanswered pings, not minutes.
            .ping_interval(Duration::from_secs(10))
            .retry_on_initial_connect()
            .max_reconnects(Some(0));
        let client = options.connect(servers(&cfg.url)?).await;
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                return Err(BusError::Connect {
                    url: cfg.url.clone(),
                    detail: e.to_string(),
                })
            }
        };
        // retry_on_initial_connect returns at once; wait for the handshake.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while client.connection_state() != async_nats::connection::State::Connected {
            if tokio::time::Instant::now() > deadline {
                return Err(BusError::Connect {
                    url: cfg.url.clone(),
                    detail: match (access::refused_since(began), &cfg.tls_ca_file) {
                        (Some(why), None) => format!(
                            "the connection failed: {why} (if the server takes TLS only, set nats.tls_ca_file)"
                        ),
                        (Some(why), Some(_)) => format!("the connection failed: {why}"),
                        (None, _) => "no answer within 5 s".into(),
                    },
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let max_payload = client.server_info().max_payload;
        if max_payload < MAX_MESSAGE {
            return Err(BusError::Payload {
                url: cfg.url.clone(),
                max_payload,
                needed: MAX_MESSAGE,
            });
        }
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(10))
            .build(client.clone());
        Ok(Bus {
            client,
            js,
            subjects,
            cfg: cfg.clone(),
        })
    }

    /// Creates (or updates) every stream and durable consumer; with
    /// `nats.manage_topology` off, only checks the streams are there.
    pub async fn ensure_topology(&self, networks: &[String]) -> Result<(), BusError> {
        if !self.cfg.manage_topology {
            return self.check_topology().await;
        }
        for sc in topology::streams(&self.subjects, &self.cfg) {
            let name = sc.name.clone();
            // A cluster places a replicated stream on its nodes before it
            // answers, which can outlast one request's wait while the
            // cluster has just formed or is busy: asked again, for a while.
            let mut tries = 0;
            loop {
                match self.js.create_or_update_stream(sc.clone()).await {
                    Ok(_) => break,
                    Err(e) if tries < 5 && e.to_string().contains("timed out") => {
                        tries += 1;
                        tracing::warn!(stream = name, error = %e, "creating the stream; asking again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => {
                        return Err(BusError::JetStream(format!(
                            "stream {name}: {e}. Is JetStream enabled on the server (-js)? In a cluster, are a majority of its nodes up?"
                        )))
                    }
                }
            }
        }
        for spec in topology::all_consumers(&self.subjects, &self.cfg, networks) {
            self.ensure_consumer(&spec).await?;
        }
        // Plaintext used to wait for encrypt in a memory stream; it now goes
        // as requests the server never keeps. An older release's stream may
        // still hold chunks of backups that will be read again: drop it.
        let old = self.subjects.obsolete_plain_stream();
        if self.js.get_stream(&old).await.is_ok() {
            self.js
                .delete_stream(&old)
                .await
                .map_err(|e| BusError::JetStream(format!("deleting obsolete stream {old}: {e}")))?;
            tracing::info!(stream = old, "deleted the obsolete plaintext stream");
        }
        Ok(())
    }

    pub async fn ensure_consumer(&self, spec: &topology::ConsumerSpec) -> Result<(), BusError> {
        let name = spec.config.durable_name.clone().unwrap_or_default();
        if !self.cfg.manage_topology {
            let existing: Result<async_nats::jetstream::consumer::PullConsumer, _> =
                self.js.get_consumer_from_stream(&name, &spec.stream).await;
            return match existing {
                Ok(_) => Ok(()),
                Err(e) => Err(BusError::JetStream(format!(
                    "consumer {name} on {}: {e}. With nats.manage_topology off this process does not make consumers: run `cairn setup` as the operator first (with every network configured)",
                    spec.stream
                ))),
            };
        }
        let created = self
            .js
            .create_consumer_on_stream(spec.config.clone(), &spec.stream)
            .await;
        if let Err(e) = created {
            // Already there with another configuration (an older release):
            // keep it and its position rather than replay its whole stream.
            let existing: Result<async_nats::jetstream::consumer::PullConsumer, _> =
                self.js.get_consumer_from_stream(&name, &spec.stream).await;
            if existing.is_err() {
                return Err(BusError::JetStream(format!(
                    "consumer {name} on {}: {e}",
                    spec.stream
                )));
            }
            tracing::warn!(consumer = name, error = %e, "consumer exists with another configuration; keeping it");
        }
        Ok(())
    }

    /// Publishes a state-change event and waits for JetStream to store it.
    /// The event id is the `Nats-Msg-Id`, so a re-publish is dropped.
    pub async fn publish_event(&self, env: &Envelope) -> Result<(), BusError> {
        let subject = self.subjects.event(&env.event, &env.backup_id);
        publish::publish_once(&self.js, &subject, env.id.as_str(), encode(env).into()).await
    }

    /// Every stream is there (a process whose user may not make them).
    async fn check_topology(&self) -> Result<(), BusError> {
        for sc in topology::streams(&self.subjects, &self.cfg) {
            if let Err(e) = self.js.get_stream(&sc.name).await {
                return Err(BusError::JetStream(format!(
                    "stream {}: {e}. With nats.manage_topology off this process does not make streams: run `cairn setup` as the operator first",
                    sc.name
                )));
            }
        }
        Ok(())
    }

    /// How far behind each durable consumer is, and how much each stream
    /// holds: for monitoring. A consumer or stream not created yet is left
    /// out.
    pub async fn backlog(&self, networks: &[String]) -> Result<Backlog, BusError> {
        let mut out = Backlog::default();
        for spec in topology::all_consumers(&self.subjects, &self.cfg, networks) {
            let name = spec.config.durable_name.clone().unwrap_or_default();
            let c = match self
                .js
                .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
                    &name,
                    &spec.stream,
                )
                .await
            {
                Ok(c) => c,
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(BusError::JetStream(format!("consumer {name}: {e}"))),
            };
            // Fetched with the consumer: one round trip each.
            let info = c.cached_info();
            out.consumers.push(ConsumerBacklog {
                stream: spec.stream.clone(),
                consumer: name,
                pending: info.num_pending,
                ack_pending: info.num_ack_pending as u64,
            });
        }
        for sc in topology::streams(&self.subjects, &self.cfg) {
            let stream = match self.js.get_stream(&sc.name).await {
                Ok(s) => s,
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(BusError::JetStream(format!("stream {}: {e}", sc.name))),
            };
            out.streams
                .push((sc.name.clone(), stream.cached_info().state.messages));
        }
        Ok(out)
    }

    /// Publishes a signed checkpoint of the ledger. A re-publish of the same
    /// note is dropped; a different note for the same size is kept, so that
    /// a log signing two roots for one size leaves the evidence on the stream.
    pub async fn publish_checkpoint(&self, size: u64, note: &[u8]) -> Result<(), BusError> {
        use sha2::{Digest, Sha256};
        let subject = self.subjects.checkpoint();
        let id = format!(
            "checkpoint-{size}-{}",
            hex::encode(&Sha256::digest(note)[..8])
        );
        publish::publish_once(&self.js, &subject, &id, note.to_vec().into()).await
    }

    /// Publishes a checkpoint a witness cosigned (once per tree size and witness).
    pub async fn publish_cosigned(
        &self,
        size: u64,
        witness: &str,
        note: &[u8],
    ) -> Result<(), BusError> {
        let subject = self.subjects.cosigned();
        publish::publish_once(
            &self.js,
            &subject,
            &format!("cosigned-{size}-{witness}"),
            note.to_vec().into(),
        )
        .await
    }

    /// Whether the EVENTS stream holds an event of `kind` (e.g.
    /// `backup.ingested`) for `backup`: asked of the stream's leader, so a
    /// cluster answers the same from every node.
    pub async fn has_event(
        &self,
        kind: &str,
        backup: &cairn_events::BackupId,
    ) -> Result<bool, BusError> {
        Ok(self.last_event_bytes(kind, backup).await?.is_some())
    }

    /// The last event of `kind` for `backup` on the EVENTS stream, if any
    /// (and if it decodes).
    pub async fn last_event(
        &self,
        kind: &str,
        backup: &cairn_events::BackupId,
    ) -> Result<Option<Envelope>, BusError> {
        Ok(self
            .last_event_bytes(kind, backup)
            .await?
            .and_then(|b| cairn_events::decode::<Envelope>(&b, "event").ok()))
    }

    async fn last_event_bytes(
        &self,
        kind: &str,
        backup: &cairn_events::BackupId,
    ) -> Result<Option<Bytes>, BusError> {
        let name = self.subjects.events_stream();
        let stream = self
            .js
            .get_stream(&name)
            .await
            .map_err(|e| BusError::JetStream(format!("{name} stream: {e}")))?;
        // Not for requests: their subject carries the dataset too.
        let subject = format!("{}.evt.{kind}.{backup}", self.subjects.prefix());
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => Ok(Some(m.payload)),
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                Ok(None)
            }
            Err(e) => Err(BusError::JetStream(format!("{subject}: {e}"))),
        }
    }

    /// The newest message on an AUDIT subject (e.g. the latest checkpoint).
    pub async fn last_on_audit(&self, subject: &str) -> Result<Option<Bytes>, BusError> {
        let stream = self
            .js
            .get_stream(self.subjects.audit_stream())
            .await
            .map_err(|e| BusError::JetStream(format!("AUDIT stream: {e}")))?;
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => Ok(Some(m.payload)),
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                Ok(None)
            }
            Err(e) => Err(BusError::JetStream(format!("{subject}: {e}"))),
        }
    }

    /// Re-publishes ledger entries `(seq, kind, exact bytes)` on
    /// `audit.entry.<kind>`, in the order given, and waits until all are
    /// stored. `entry-<seq>` as the message id drops a re-publish.
    pub async fn publish_entries(&self, entries: &[(u64, &str, Bytes)]) -> Result<(), BusError> {
        let mut pipe = Pipeline::new(self.js.clone(), 256);
        for (seq, kind, raw) in entries {
            pipe.publish(
                self.subjects.audit_entry(kind),
                cairn_events::subjects::entry_msg_id(*seq),
                raw.clone(),
            )
            .await?;
        }
        pipe.flush().await
    }

    /// Removes every stream of this prefix (tests and `cairn setup --reset`).
    pub async fn delete_topology(&self) -> Result<(), BusError> {
        for sc in topology::streams(&self.subjects, &self.cfg) {
            let _ = self.js.delete_stream(&sc.name).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_url_lists_several_servers_and_names_a_bad_one() {
        let list = servers("nats://127.0.0.1:4222, nats://127.0.0.1:4223,").unwrap();
        assert_eq!(list.len(), 2);
        let err = servers("nats://127.0.0.1:4222,not a url")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a url"), "{err}");
    }
}
