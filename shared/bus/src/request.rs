//! Core-NATS requests, for what must reach a stage but never be stored by
//! the server: plaintext on its way to encrypt. JetStream would keep it (in
//! memory, but kept) and charge for a stream, a consumer and two acks per
//! message; a request is passed on and forgotten, and its answer says
//! whether the work is done.
//!
//! The requester ([`Requests`]) keeps a window of requests awaiting their
//! answer, bounded in count and bytes, so memory stays bounded and a slow
//! responder slows it down. A request that times out, finds nobody
//! listening or is answered [`Answer::Busy`] is sent again after a growing
//! pause, for up to ten minutes: the responder's work must be idempotent
//! (encrypt's is: deterministic sealing, `Nats-Msg-Id` on SEALED, event ids
//! from content). [`Answer::Refused`] ends it with the reason.
//!
//! The responder ([`serve`]) answers in a queue group, so replicas share the
//! requests; it skips a request whose requester has stopped waiting
//! (`Cairn-Deadline`), and dead-letters what its handler refuses, without
//! the payload.

use crate::worker::{self, Delivery, Failure, Handler};
use crate::{Bus, BusError};
use async_nats::HeaderMap;
use bytes::Bytes;
use cairn_events::{decode_reply, encode, Answer};
use futures::StreamExt;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;
use tracing::Instrument;

/// How long a requester keeps asking before it gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);
/// Header: when (Unix milliseconds) the requester stops waiting for this
/// attempt's answer.
const DEADLINE: &str = "Cairn-Deadline";

/// Payload bytes a [`Requests`] keeps awaiting their answers (each kept to
/// be sent again).
pub const REQUEST_BYTES: usize = 8 << 20;

/// Requests with up to `window` (and [`REQUEST_BYTES`]) awaiting answers.
pub struct Requests {
    client: async_nats::Client,
    window: usize,
    /// How long one attempt waits for its answer.
    timeout: Duration,
    inflight: VecDeque<(usize, JoinHandle<Result<(), BusError>>)>,
    bytes: usize,
}

impl Requests {
    pub fn new(client: async_nats::Client, window: usize, timeout: Duration) -> Self {
        Requests {
            client,
            window: window.max(1),
            timeout,
            inflight: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Sends a request, first waiting for older answers while the window
    /// is full. An error is an earlier request's: refused, or unanswered
    /// for ten minutes.
    pub async fn send(&mut self, subject: String, payload: Bytes) -> Result<(), BusError> {
        while self.inflight.len() >= self.window
            || (!self.inflight.is_empty() && self.bytes + payload.len() > REQUEST_BYTES)
        {
            self.settle_one().await?;
        }
        let len = payload.len();
        let (client, timeout) = (self.client.clone(), self.timeout);
        // The answering task runs outside the sender's span: it takes the
        // trace context with it.
        let trace = crate::publish::traced(HeaderMap::new());
        let task = tokio::spawn(until_answered(client, subject, payload, timeout, trace));
        self.bytes += len;
        self.inflight.push_back((len, task));
        Ok(())
    }

    async fn settle_one(&mut self) -> Result<(), BusError> {
        if let Some((len, task)) = self.inflight.pop_front() {
            self.bytes -= len;
            task.await
                .map_err(|e| BusError::JetStream(format!("request task: {e}")))??;
        }
        Ok(())
    }

    /// Waits until every request sent so far is answered done.
    pub async fn flush(&mut self) -> Result<(), BusError> {
        while !self.inflight.is_empty() {
            self.settle_one().await?;
        }
        Ok(())
    }
}

impl Drop for Requests {
    /// A job that stops early stops asking.
    fn drop(&mut self) {
        for (_, task) in &self.inflight {
            task.abort();
        }
    }
}

fn unix_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

/// Asks until answered done (or refused, or ten minutes have passed).
async fn until_answered(
    client: async_nats::Client,
    subject: String,
    payload: Bytes,
    timeout: Duration,
    trace: HeaderMap,
) -> Result<(), BusError> {
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let mut headers = trace.clone();
        headers.insert(
            DEADLINE,
            unix_ms(SystemTime::now() + timeout).to_string().as_str(),
        );
        let request = async_nats::Request::new()
            .payload(payload.clone())
            .headers(headers)
            .timeout(Some(timeout));
        let why = match client.send_request(subject.clone(), request).await {
            Ok(msg) => match decode_reply::<Answer>(&msg.payload, "answer") {
                Ok(Answer::Done) => return Ok(()),
                Ok(Answer::Refused { reason }) => {
                    return Err(BusError::Refused { subject, reason })
                }
                Ok(Answer::Busy { reason }) => reason,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if start.elapsed() > GIVE_UP_AFTER {
            return Err(BusError::Publish {
                subject,
                detail: format!("no answer for {} s: {why}", GIVE_UP_AFTER.as_secs()),
            });
        }
        tracing::debug!(subject, %why, "request not answered, asking again");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Whether the requester has stopped waiting for this message's answer.
fn expired(msg: &async_nats::Message) -> bool {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(DEADLINE))
        .and_then(|v| v.as_str().parse::<u128>().ok())
        .is_some_and(|deadline| unix_ms(SystemTime::now()) > deadline)
}

/// Answers the requests on `subject` in queue group `group` with `handler`,
/// `concurrency` at once, until the process stops. `label` names the
/// stage in its dead letters.
pub async fn serve(
    bus: Bus,
    label: String,
    subject: String,
    group: String,
    concurrency: usize,
    handler: Arc<dyn Handler>,
) -> Result<(), BusError> {
    let mut requests = bus
        .client
        .queue_subscribe(subject.clone(), group.clone())
        .await
        .map_err(|e| BusError::JetStream(format!("subscribe to {subject}: {e}")))?;
    tracing::info!(stage = label, subject, group, "responder started");
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    while let Some(msg) = requests.next().await {
        if expired(&msg) {
            continue;
        }
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closes");
        let (bus, handler, label) = (bus.clone(), handler.clone(), label.clone());
        let span = worker::handling(&label, &msg.subject, msg.headers.as_ref());
        tokio::spawn(
            async move {
                answer(&bus, &label, handler.as_ref(), msg).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    Err(BusError::JetStream(format!(
        "subscription to {subject} ended"
    )))
}

async fn answer(bus: &Bus, label: &str, handler: &dyn Handler, msg: async_nats::Message) {
    let delivery = Delivery {
        subject: msg.subject.to_string(),
        payload: msg.payload.clone(),
        deliveries: 1,
        stream_sequence: 0,
    };
    let result = handler.handle(&delivery).await;
    let settled = match &result {
        Ok(()) => "ok",
        Err(Failure::Retry(_)) => "retry",
        Err(Failure::Permanent(_)) => "dead_letter",
    };
    cairn_telemetry::metrics::get().settled(label, 1, settled);
    let answer = match result {
        Ok(()) => Answer::Done,
        Err(Failure::Retry(reason)) => Answer::Busy { reason },
        Err(Failure::Permanent(reason)) => {
            // Requests carry plaintext: the dead letter keeps none of it.
            let reason = worker::redact(&reason);
            if let Err(e) = worker::dead_letter(bus, label, false, &delivery, &reason).await {
                tracing::error!(stage = label, error = %e, "could not dead-letter a refused request");
            }
            Answer::Refused { reason }
        }
    };
    if let Some(reply) = msg.reply {
        if let Err(e) = bus.client.publish(reply, encode(&answer).into()).await {
            tracing::warn!(stage = label, error = %e, "could not answer; the requester will ask again");
        }
    }
}
