//! Compare-and-set registers on a JetStream stream that keeps one message
//! per key (`<prefix>.sched.<key>`, and `<prefix>.run.<backup>` for
//! ingest's leases). A write names the sequence it read
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
    stream: String,
    /// A key's subject is `<prefix>.<key>`.
    prefix: String,
}

impl Claims {
    /// The schedules stream's keys.
    pub fn new(bus: &Bus) -> Claims {
        let s = &bus.subjects;
        Claims {
            bus: bus.clone(),
            stream: s.schedules_stream(),
            prefix: s.schedule_key("").trim_end_matches('.').to_string(),
        }
    }

    /// The RUNS stream's keys: one per backup, its id the key.
    pub fn runs(bus: &Bus) -> Claims {
        let s = &bus.subjects;
        Claims {
            bus: bus.clone(),
            stream: s.runs_stream(),
            prefix: format!("{}.run", s.prefix()),
        }
    }

    fn subject(&self, key: &str) -> String {
        format!("{}.{key}", self.prefix)
    }

    /// The value of `key` and its sequence (0: no value yet), for [`swap`](Self::swap).
    pub async fn get(&self, key: &str) -> Result<(Option<Bytes>, u64), BusError> {
        let stream_name = &self.stream;
        let stream = self
            .bus
            .js
            .get_stream(stream_name)
            .await
            .map_err(|e| BusError::JetStream(format!("stream {stream_name}: {e}")))?;
        match stream
            .get_last_raw_message_by_subject(&self.subject(key))
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
        Ok(self.swap_to(key, expected, value).await?.is_some())
    }

    /// As [`swap`](Self::swap), with the key's new sequence if this call
    /// moved it.
    pub async fn swap_to(
        &self,
        key: &str,
        expected: u64,
        value: Bytes,
    ) -> Result<Option<u64>, BusError> {
        let mut h = HeaderMap::new();
        h.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected.to_string().as_str(),
        );
        let subject = self.subject(key);
        let sent = self
            .bus
            .js
            .publish_with_headers(subject, h, value)
            .await
            .map_err(|e| BusError::JetStream(format!("write {key}: {e}")))?;
        match sent.await {
            Ok(ack) => Ok(Some(ack.sequence)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
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
