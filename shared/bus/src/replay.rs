//! Reading a kept stream (AUDIT, EVENTS) from its first message to its last,
//! with an ordered consumer that leaves nothing behind on the server: how the
//! ledger is rebuilt, how `cairn audit verify` reads the copies of the log
//! and its checkpoints that live outside PostgreSQL, and how a console
//! replays history.

use crate::{Bus, BusError};
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use bytes::Bytes;
use futures::StreamExt;

/// One message read back.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub subject: String,
    /// Its `Nats-Msg-Id`, if it was published with one.
    pub msg_id: Option<String>,
    pub payload: Bytes,
    /// Its sequence number in the stream.
    pub stream_seq: u64,
    /// Its headers (a dead letter's reason and origin).
    pub headers: Option<async_nats::HeaderMap>,
}

impl Replayed {
    /// The ledger entry number of a message from `audit.entry`
    /// (`Nats-Msg-Id: entry-<seq>`).
    pub fn entry_seq(&self) -> Option<u64> {
        self.msg_id
            .as_deref()
            .and_then(cairn_events::subjects::entry_seq)
    }
}

/// A replay in progress: [`Replay::next`] until it returns `None`.
pub struct Replay {
    messages: Option<pull::Ordered>,
    stream: String,
    done: bool,
    total: u64,
}

impl Replay {
    /// How many messages the replay yields in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The next message, or `None` after the last one stored when the
    /// replay began.
    pub async fn next(&mut self) -> Option<Result<Replayed, BusError>> {
        if self.done {
            return None;
        }
        let messages = self.messages.as_mut()?;
        let stream = &self.stream;
        let err = |e: &dyn std::fmt::Display| BusError::JetStream(format!("reading {stream}: {e}"));
        let m = match messages.next().await? {
            Ok(m) => m,
            Err(e) => return Some(Err(err(&e))),
        };
        let info = match m.info() {
            Ok(i) => i,
            Err(e) => return Some(Err(err(&e))),
        };
        self.done = info.pending == 0;
        Some(Ok(Replayed {
            subject: m.subject.to_string(),
            msg_id: m
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_string()),
            payload: m.payload.clone(),
            stream_seq: info.stream_sequence,
            headers: m.headers.clone(),
        }))
    }
}

impl Bus {
    /// Reads every message of `stream` matching `filter`, oldest first, up
    /// to the last one stored when the replay began.
    pub async fn replay(&self, stream: &str, filter: &str) -> Result<Replay, BusError> {
        let err = |e: &dyn std::fmt::Display| BusError::JetStream(format!("reading {stream}: {e}"));
        let s = self.js.get_stream(stream).await.map_err(|e| err(&e))?;
        let mut consumer = s
            .create_consumer(pull::OrderedConfig {
                filter_subject: filter.to_string(),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| err(&e))?;
        let pending = consumer.info().await.map_err(|e| err(&e))?.num_pending;
        let messages = if pending == 0 {
            None
        } else {
            Some(consumer.messages().await.map_err(|e| err(&e))?)
        };
        Ok(Replay {
            messages,
            stream: stream.to_string(),
            done: pending == 0,
            total: pending,
        })
    }

    /// Every message of the AUDIT stream under `filter`, oldest first.
    pub async fn replay_audit(&self, filter: &str) -> Result<Replay, BusError> {
        self.replay(&self.subjects.audit_stream(), filter).await
    }
}
