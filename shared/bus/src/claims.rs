//! Compare-and-set registers on a JetStream stream that keeps one message
//! per key (`<prefix>.sched.<key>`). A write names the sequence it read
//! (`Nats-Expected-Last-Subject-Sequence`, 0 for "no value yet") and the
//! server refuses it if another write came first, so of several replicas
//! moving a key on from the same value exactly one succeeds. The retention
//! scheduler moves each schedule's "last fired slot" this way: a slot is
//! fired once however many replicas run.
//!
//! (What a key-value bucket's `update` does; a plain stream, because the
//! KV client of async-nats cannot read nats-server 2.9's account info.)

use crate::{Bus, BusError};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::HeaderMap;
use bytes::Bytes;

#[derive(Clone)]
pub struct Claims {
    bus: Bus,
}

impl Claims {
    pub fn new(bus: &Bus) -> Claims {
        Claims { bus: bus.clone() }
    }

    /// The value of `key` and its sequence (0: no value yet), for [`swap`](Self::swap).
    pub async fn get(&self, key: &str) -> Result<(Option<Bytes>, u64), BusError> {
        let stream_name = self.bus.subjects.schedules_stream();
        let stream = self
            .bus
            .js
            .get_stream(&stream_name)
            .await
            .map_err(|e| BusError::JetStream(format!("stream {stream_name}: {e}")))?;
        match stream
            .get_last_raw_message_by_subject(&self.bus.subjects.schedule_key(key))
            .await
        {
            Ok(m) => Ok((Some(m.payload), m.sequence)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok((None, 0)),
            Err(e) => Err(BusError::JetStream(format!("read {key}: {e}"))),
        }
    }

    /// Sets `key` to `value` if it is still at sequence `expected` (what
    /// [`get`](Self::get) said): true if this call moved it, false if
    /// another writer did first.
    pub async fn swap(&self, key: &str, expected: u64, value: Bytes) -> Result<bool, BusError> {
        let mut h = HeaderMap::new();
        h.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected.to_string().as_str(),
        );
        let subject = self.bus.subjects.schedule_key(key);
        let sent = self
            .bus
            .js
            .publish_with_headers(subject, h, value)
            .await
            .map_err(|e| BusError::JetStream(format!("write {key}: {e}")))?;
        match sent.await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(false),
            Err(e) => Err(BusError::JetStream(format!("write {key}: {e}"))),
        }
    }

    /// Claims round `round` of a periodic job (a number that only grows,
    /// e.g. the slot's Unix time): true for the one caller, across
    /// replicas, that moves `key` past every round claimed before.
    pub async fn claim_round(&self, key: &str, round: i64) -> Result<bool, BusError> {
        let (raw, seq) = self.get(key).await?;
        let last = raw
            .and_then(|b| std::str::from_utf8(&b).ok()?.parse::<i64>().ok())
            .unwrap_or(i64::MIN);
        if round <= last {
            return Ok(false);
        }
        self.swap(key, seq, Bytes::from(round.to_string())).await
    }
}
