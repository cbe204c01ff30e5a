//! The loop every stage runs: pull from its durable consumer, hand each
//! message to the stage's [`Handler`] (up to `concurrency` at once), and
//! settle it:
//!
//! * `Ok` → ack.
//! * [`Failure::Retry`] → negative ack with a growing delay; on the last
//!   allowed delivery (`max_deliver`) → dead letter.
//! * [`Failure::Permanent`] (a malformed message, an impossible request) →
//!   dead letter at once.
//!
//! Each stage has its own error type and says, in one `From` impl, which of
//! its errors are permanent; the bus's own and decoding errors convert here.
//!
//! A dead letter goes to `<prefix>.dlq.<stage>` with its reason in headers,
//! and an `event.deadlettered` event records it in the ledger. While a handler
//! works, the loop tells the server it is in progress, so `ack_wait` bounds
//! recovery after a crash rather than the length of a job.

use crate::topology;
use crate::{publish, Bus, BusError};
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::AckKind;
use async_nats::HeaderMap;
use async_trait::async_trait;
use bytes::Bytes;
use cairn_events::{BackupId, DeadLetter, DecodeError, Envelope, Event, Stage};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// One message, as a handler sees it.
pub struct Delivery {
    pub subject: String,
    pub payload: Bytes,
    /// 1 on first delivery.
    pub deliveries: i64,
    pub stream_sequence: u64,
}

/// Why a handler did not finish a message, and so what becomes of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Will never succeed (a malformed message, an impossible request):
    /// dead-letter now.
    #[error("{0}")]
    Permanent(String),
    /// May succeed later (a network, the database or the broker away):
    /// redeliver with backoff.
    #[error("{0}")]
    Retry(String),
}

impl Failure {
    pub fn permanent(e: impl std::fmt::Display) -> Self {
        Failure::Permanent(e.to_string())
    }
    pub fn retry(e: impl std::fmt::Display) -> Self {
        Failure::Retry(e.to_string())
    }
    pub fn is_permanent(&self) -> bool {
        matches!(self, Failure::Permanent(_))
    }
}

/// The broker refused or did not answer: try again later. A stage that
/// refused a request will refuse it again.
impl From<BusError> for Failure {
    fn from(e: BusError) -> Self {
        match e {
            BusError::Refused { .. } => Failure::permanent(e),
            e => Failure::retry(e),
        }
    }
}

/// A message that does not decode never will.
impl From<DecodeError> for Failure {
    fn from(e: DecodeError) -> Self {
        Failure::permanent(e)
    }
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, delivery: &Delivery) -> Result<(), Failure>;
}

/// A worker's durable consumer, and what its loop needs to know of it.
struct Attached {
    consumer: PullConsumer,
    name: String,
    /// The stage's label (`store:NETWORK` for store workers).
    label: String,
    keep_payload: bool,
}

/// The durable consumer of `stage` (of `network`, for store workers),
/// created if it is missing.
async fn attach(
    bus: &Bus,
    stage: Stage,
    network: Option<&str>,
    what: &str,
) -> Result<Attached, BusError> {
    let spec = topology::consumer_spec(&bus.subjects, &bus.cfg, stage, network)
        .ok_or(BusError::NoConsumer(stage))?;
    bus.ensure_consumer(&spec).await?;
    let name = spec.config.durable_name.clone().unwrap_or_default();
    let consumer = bus
        .js
        .get_consumer_from_stream(&name, &spec.stream)
        .await
        .map_err(|e| BusError::JetStream(format!("consumer {name}: {e}")))?;
    let label = stage.label(network);
    tracing::info!(
        stage = label,
        consumer = name,
        stream = spec.stream,
        "{what} started"
    );
    Ok(Attached {
        consumer,
        name,
        label,
        keep_payload: spec.keep_payload,
    })
}

/// Runs `handler` on the consumer of `stage` (and `network`) until the
/// process stops. The worker's label names its DLQ subject and the source of
/// its dead-letter events.
pub async fn run(
    bus: Bus,
    stage: Stage,
    network: Option<&str>,
    concurrency: usize,
    handler: Arc<dyn Handler>,
) -> Result<(), BusError> {
    let Attached {
        consumer,
        name,
        label: stage,
        keep_payload,
    } = attach(&bus, stage, network, "worker").await?;
    let concurrency = concurrency.max(1);
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(concurrency)
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| BusError::JetStream(format!("consumer {name}: {e}")))?;
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let ack_wait = Duration::from_secs(bus.cfg.ack_wait_secs.max(1));
    while let Some(next) = messages.next().await {
        let msg = match next {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(stage, error = %e, "consumer stream error; continuing");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            // The stream pulls ahead of the free slots: a message waiting
            // here for one is kept this process's (as one being handled
            // is), or the server would give it to another replica after
            // `ack_wait` while it is still ours, and it would be handled
            // twice.
            Err(_) => {
                let acquire = permits.clone().acquire_owned();
                tokio::pin!(acquire);
                let mut keep =
                    tokio::time::interval((ack_wait / 3).max(Duration::from_millis(500)));
                keep.tick().await;
                loop {
                    tokio::select! {
                        p = &mut acquire => break p.expect("semaphore never closes"),
                        _ = keep.tick() => {
                            let _ = msg.ack_with(AckKind::Progress).await;
                        }
                    }
                }
            }
        };
        let bus = bus.clone();
        let handler = handler.clone();
        let stage = stage.clone();
        let span = handling(&stage, &msg.subject, msg.headers.as_ref());
        tokio::spawn(
            async move {
                settle(&bus, &stage, keep_payload, ack_wait, handler.as_ref(), msg).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    Err(BusError::JetStream(format!(
        "consumer {name}: message stream ended"
    )))
}

/// The span a stage handles one message in: named for the stage, carrying
/// the backup id (the subject's last token) and the trace id onto every log
/// line inside it, and a child of the sender's span when the message
/// brought its trace context (OpenTelemetry messaging conventions: a
/// consumer span per message processed).
/// The backup id a subject names: an event's fourth token after the
/// prefix (`<p>.evt.<kind>.<kind>.<backup>`, a request with its dataset
/// after it), else the last (`<p>.sealed.<backup>`).
fn backup_of(subject: &str) -> Option<&str> {
    let tokens: Vec<&str> = subject.split('.').collect();
    let t = match tokens.get(1) {
        Some(&"evt") => tokens.get(4).copied(),
        _ => tokens.last().copied(),
    }?;
    BackupId::parse(t).is_ok().then_some(t)
}

pub(crate) fn handling(
    stage: &str,
    subject: &str,
    headers: Option<&async_nats::HeaderMap>,
) -> tracing::Span {
    let backup = backup_of(subject).unwrap_or("");
    let span = tracing::info_span!(
        "handle",
        otel.name = %format!("{stage} process"),
        otel.kind = "consumer",
        stage = %stage,
        subject = %subject,
        backup = %backup,
        trace_id = tracing::field::Empty,
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = %subject,
    );
    cairn_telemetry::propagate::adopt(&span, |name| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    });
    span
}

async fn settle(
    bus: &Bus,
    stage: &str,
    keep_payload: bool,
    ack_wait: Duration,
    handler: &dyn Handler,
    msg: async_nats::jetstream::Message,
) {
    let delivery = delivery_of(&msg);
    let msg = Arc::new(msg);
    let ticker = {
        let msg = msg.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ack_wait / 3).await;
                let _ = msg.ack_with(AckKind::Progress).await;
            }
        })
    };
    let result = handler.handle(&delivery).await;
    ticker.abort();
    finish(bus, stage, keep_payload, &msg, &delivery, result).await;
}

/// Acks, naks or dead-letters one message according to its handler's result.
async fn finish(
    bus: &Bus,
    stage: &str,
    keep_payload: bool,
    msg: &async_nats::jetstream::Message,
    delivery: &Delivery,
    result: Result<(), Failure>,
) {
    let deliveries = delivery.deliveries;
    let metrics = cairn_telemetry::metrics::get();
    tracing::debug!(
        stage,
        seq = delivery.stream_sequence,
        deliveries,
        ok = result.is_ok(),
        "settling"
    );
    let outcome = match result {
        Ok(()) => {
            metrics.settled(stage, deliveries, "ok");
            msg.ack().await
        }
        Err(Failure::Retry(reason)) if deliveries < bus.cfg.max_deliver => {
            let delay = Duration::from_millis(250 * (1u64 << deliveries.clamp(0, 7)));
            tracing::warn!(stage, subject = delivery.subject, deliveries, %reason, "will retry");
            metrics.settled(stage, deliveries, "retry");
            msg.ack_with(AckKind::Nak(Some(delay))).await
        }
        Err(failure) => {
            let reason = match failure {
                Failure::Retry(r) => format!("gave up after {deliveries} deliveries: {r}"),
                Failure::Permanent(r) => r,
            };
            match dead_letter(bus, stage, keep_payload, delivery, &reason).await {
                Ok(()) => {
                    metrics.settled(stage, deliveries, "dead_letter");
                    msg.ack().await
                }
                Err(e) => {
                    metrics.settled(stage, deliveries, "retry");
                    tracing::error!(stage, error = %e, "could not dead-letter; leaving for redelivery");
                    msg.ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                        .await
                }
            }
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(stage, error = %e, "ack failed; the message will be redelivered");
    }
}

/// A stage that handles messages in batches (the ledger: one transaction
/// per batch instead of one per event).
#[async_trait]
pub trait BatchHandler: Send + Sync + 'static {
    /// One result per delivery, in the same order.
    async fn handle_batch(&self, batch: &[Delivery]) -> Vec<Result<(), Failure>>;
}

fn delivery_of(msg: &async_nats::jetstream::Message) -> Delivery {
    let (deliveries, seq) = msg
        .info()
        .map(|i| (i.delivered, i.stream_sequence))
        .unwrap_or((1, 0));
    Delivery {
        subject: msg.subject.to_string(),
        payload: msg.payload.clone(),
        deliveries,
        stream_sequence: seq,
    }
}

/// How long a batch worker waits, after a batch that was not full, for
/// more messages to gather before it fetches again.
const LINGER: Duration = Duration::from_millis(25);

/// Up to `max` messages available now (waiting up to `expires` for the
/// first); none on a fetch error, after a pause.
async fn fetch_ready(
    consumer: &PullConsumer,
    stage: &str,
    max: usize,
    expires: Duration,
) -> Vec<async_nats::jetstream::Message> {
    let fetched = consumer
        .fetch()
        .max_messages(max)
        .expires(expires)
        .messages()
        .await;
    let mut batch = match fetched {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(stage, error = %e, "fetch failed; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Vec::new();
        }
    };
    let mut msgs = Vec::new();
    while let Some(m) = batch.next().await {
        match m {
            Ok(m) => msgs.push(m),
            Err(e) => tracing::debug!(stage, error = %e, "fetch ended early"),
        }
    }
    msgs
}

/// Like [`run`], fetching up to `max_batch` messages at a time.
pub async fn run_batched(
    bus: Bus,
    stage: Stage,
    max_batch: usize,
    handler: Arc<dyn BatchHandler>,
) -> Result<(), BusError> {
    let Attached {
        consumer,
        label: stage,
        keep_payload,
        ..
    } = attach(&bus, stage, None, "batch worker").await?;
    loop {
        let msgs = fetch_ready(&consumer, &stage, max_batch, Duration::from_millis(500)).await;
        if msgs.is_empty() {
            continue;
        }
        let deliveries: Vec<Delivery> = msgs.iter().map(delivery_of).collect();
        // One span per message, each in its sender's trace (the ledger
        // records every backup's events: it belongs in every backup's
        // trace), open until the message is settled; the batch's own span
        // links to them all.
        let each: Vec<tracing::Span> = msgs
            .iter()
            .map(|m| handling(&stage, &m.subject, m.headers.as_ref()))
            .collect();
        let span = tracing::info_span!("handle_batch", stage = %stage, messages = deliveries.len());
        for s in &each {
            span.follows_from(s);
        }
        let results = handler.handle_batch(&deliveries).instrument(span).await;
        for (((msg, d), r), s) in msgs.iter().zip(&deliveries).zip(results).zip(each) {
            finish(&bus, &stage, keep_payload, msg, d, r)
                .instrument(s)
                .await;
        }
        if msgs.len() < max_batch {
            // During a backup events trickle in a few at a time: a moment's
            // wait lets several gather for the next batch (one transaction
            // for the ledger instead of one per two events). Not a second,
            // short fetch: a pull that expires within milliseconds was seen
            // to hang for five seconds on nats-server 2.9.
            tokio::time::sleep(LINGER).await;
        }
    }
}

/// Quoted text in an error could be message content; from streams that carry
/// plaintext, keep only the shape of the error.
pub(crate) fn redact(reason: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in reason.chars() {
        match c {
            '"' | '`' => {
                quoted = !quoted;
                out.push(c);
                if quoted {
                    out.push('…');
                }
            }
            _ if quoted => {}
            _ => out.push(c),
        }
    }
    out
}

pub(crate) async fn dead_letter(
    bus: &Bus,
    stage: &str,
    keep_payload: bool,
    d: &Delivery,
    reason: &str,
) -> Result<(), BusError> {
    let reason: String = if keep_payload {
        reason.to_string()
    } else {
        redact(reason)
    };
    let reason: String = reason.chars().take(1000).collect();
    let sha = hex::encode(Sha256::digest(&d.payload));
    tracing::warn!(stage, subject = d.subject, %reason, "dead-lettering message");
    let mut headers = HeaderMap::new();
    headers.insert("Cairn-Dlq-Stage", stage);
    headers.insert("Cairn-Dlq-Subject", d.subject.as_str());
    headers.insert(
        "Cairn-Dlq-Reason",
        reason.replace(['\r', '\n'], " ").as_str(),
    );
    headers.insert("Cairn-Dlq-Deliveries", d.deliveries.to_string().as_str());
    headers.insert("Cairn-Dlq-Payload-Sha256", sha.as_str());
    let payload = if keep_payload {
        d.payload.clone()
    } else {
        Bytes::new()
    };
    let msg_id = format!("dlq-{stage}-{}-{sha}", d.stream_sequence);
    publish::publish_with_headers(&bus.js, &bus.subjects.dlq(stage), &msg_id, headers, payload)
        .await?;
    let backup_id = backup_of(&d.subject)
        .and_then(|t| BackupId::parse(t).ok())
        .unwrap_or_else(BackupId::repo);
    let env = Envelope::new(
        stage,
        backup_id,
        Event::DeadLettered(DeadLetter {
            stage: stage.to_string(),
            subject: d.subject.clone(),
            reason,
            deliveries: d.deliveries.max(0) as u64,
            payload_sha256: sha,
        }),
        &[
            stage.as_bytes(),
            &d.stream_sequence.to_be_bytes(),
            d.subject.as_bytes(),
        ],
    );
    bus.publish_event(&env).await
}

#[cfg(test)]
mod tests {

    use super::backup_of;
    #[test]
    fn the_backup_a_subject_names() {
        assert_eq!(backup_of("p.evt.backup.requested.b1.payroll"), Some("b1"));
        assert_eq!(backup_of("p.evt.backup.requested.b1"), Some("b1"));
        assert_eq!(backup_of("p.evt.object.stored.b2"), Some("b2"));
        assert_eq!(backup_of("p.sealed.b3"), Some("b3"));
        assert_eq!(backup_of("p.evt.x"), None);
        assert_eq!(backup_of("p.sealed.a%2Eb"), None);
    }

    #[test]
    fn redaction_drops_quoted_content() {
        assert_eq!(
            super::redact(r#"invalid type: string "TOPSECRET", expected bytes"#),
            "invalid type: string \"…\", expected bytes"
        );
    }
}
