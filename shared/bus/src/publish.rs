//! Publishing to JetStream with acknowledgements pipelined (a window of
//! outstanding acks, not one round trip per message) and back-pressure: a
//! bounded stream that is full refuses new messages, and the publisher waits
//! and retries instead of failing the backup. `Nats-Msg-Id` makes a retry of
//! a message that was in fact stored a no-op.

use crate::BusError;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::Context;
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;

/// How long a publisher keeps retrying a full or unreachable stream.
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

/// A message with its id and the sender's trace context ([`traced`]).
fn message(payload: Bytes, msg_id: &str) -> Publish {
    // `headers` replaces the map: the id goes in after it.
    Publish::build()
        .payload(payload)
        .headers(traced(async_nats::HeaderMap::new()))
        .message_id(msg_id)
}

/// `headers` plus the current span's W3C trace context, so the span that
/// handles the message continues the sender's trace.
pub(crate) fn traced(mut headers: async_nats::HeaderMap) -> async_nats::HeaderMap {
    for (name, value) in cairn_telemetry::propagate::current_headers() {
        headers.insert(name.as_str(), value.as_str());
    }
    headers
}

async fn send(
    js: &Context,
    subject: &str,
    msg_id: &str,
    payload: Bytes,
) -> Result<PublishAckFuture, String> {
    js.send_publish(subject.to_string(), message(payload, msg_id))
        .await
        .map_err(|e| e.to_string())
}

/// Publishes one message and waits for its ack, retrying while the stream is
/// full or the server is briefly unreachable.
pub async fn publish_once(
    js: &Context,
    subject: &str,
    msg_id: &str,
    payload: Bytes,
) -> Result<(), BusError> {
    publish_within(js, subject, msg_id, payload, GIVE_UP_AFTER).await
}

/// As [`publish_once`], giving up after `within`: for a stage answering a
/// request, which must answer before its requester stops waiting (the
/// requester asks again).
pub async fn publish_within(
    js: &Context,
    subject: &str,
    msg_id: &str,
    payload: Bytes,
    within: Duration,
) -> Result<(), BusError> {
    retrying(js, subject, within, || message(payload.clone(), msg_id)).await
}

/// Publishes one message with headers (dead letters), as `publish_once`.
pub async fn publish_with_headers(
    js: &Context,
    subject: &str,
    msg_id: &str,
    headers: async_nats::HeaderMap,
    payload: Bytes,
) -> Result<(), BusError> {
    retrying(js, subject, GIVE_UP_AFTER, || {
        Publish::build()
            .payload(payload.clone())
            .headers(traced(headers.clone()))
            .message_id(msg_id)
    })
    .await
}

/// Publishes what `message` builds and waits for its ack, again with
/// backoff while the error is worth waiting out, for at most `within`.
async fn retrying(
    js: &Context,
    subject: &str,
    within: Duration,
    message: impl Fn() -> Publish,
) -> Result<(), BusError> {
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    let failed = |detail: String| BusError::Publish {
        subject: subject.to_string(),
        detail,
    };
    loop {
        let res = match js.send_publish(subject.to_string(), message()).await {
            Ok(ack) => ack
                .await
                .map(|a| {
                    tracing::debug!(
                        subject,
                        seq = a.sequence,
                        duplicate = a.duplicate,
                        stream = a.stream,
                        "published"
                    );
                })
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let Err(detail) = res else { return Ok(()) };
        // The server does not store what this user may not publish, and
        // says so apart from the publish: asking again will not help.
        if let Some(why) = crate::access::publish_refused(start.into_std(), subject) {
            return Err(failed(why));
        }
        if start.elapsed() > within || !retryable(&detail) {
            return Err(failed(detail));
        }
        tracing::debug!(subject, %detail, "publish refused, retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Errors worth waiting out: a full bounded stream, a timeout, a reconnect.
fn retryable(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("maximum")
        || d.contains("resources")
        || d.contains("timed out")
        || d.contains("insufficient")
        || d.contains("broken pipe")
        || d.contains("no responders")
        || d.contains("disconnected")
        || d.contains("max ack pending")
}

/// Many publishes with up to `window` acks outstanding, holding at most
/// [`PIPELINE_BYTES`] of payloads (kept until acknowledged, to publish again
/// if refused): a window of packs near 1 MiB each would otherwise hold
/// 64 MiB.
pub struct Pipeline {
    js: Context,
    window: usize,
    inflight: VecDeque<(String, String, Bytes, PublishAckFuture)>,
    bytes: usize,
}

/// Payload bytes a [`Pipeline`] keeps waiting for acknowledgement.
pub const PIPELINE_BYTES: usize = 8 << 20;

impl Pipeline {
    pub fn new(js: Context, window: usize) -> Self {
        Pipeline {
            js,
            window: window.max(1),
            inflight: VecDeque::new(),
            bytes: 0,
        }
    }

    pub async fn publish(
        &mut self,
        subject: String,
        msg_id: String,
        payload: Bytes,
    ) -> Result<(), BusError> {
        while self.inflight.len() >= self.window
            || (!self.inflight.is_empty() && self.bytes + payload.len() > PIPELINE_BYTES)
        {
            self.settle_one().await?;
        }
        match send(&self.js, &subject, &msg_id, payload.clone()).await {
            Ok(ack) => {
                self.bytes += payload.len();
                self.inflight.push_back((subject, msg_id, payload, ack))
            }
            Err(_) => publish_once(&self.js, &subject, &msg_id, payload).await?,
        }
        Ok(())
    }

    async fn settle_one(&mut self) -> Result<(), BusError> {
        if let Some((subject, msg_id, payload, ack)) = self.inflight.pop_front() {
            self.bytes -= payload.len();
            if let Err(e) = ack.await {
                let detail = e.to_string();
                if !retryable(&detail) {
                    return Err(BusError::Publish { subject, detail });
                }
                // The stream was full: everything behind this message was
                // probably refused too. Settle it in order, waiting as needed.
                publish_once(&self.js, &subject, &msg_id, payload).await?;
            }
        }
        Ok(())
    }

    /// Waits until every message published so far is stored.
    pub async fn flush(&mut self) -> Result<(), BusError> {
        while !self.inflight.is_empty() {
            self.settle_one().await?;
        }
        Ok(())
    }
}
