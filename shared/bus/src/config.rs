//! `[nats]`: how Cairn reaches the broker and the bounds it puts on its
//! streams and consumers.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// The server, or several servers of one cluster, comma-separated: the
    /// client connects to any that answers and learns the others from it.
    pub url: String,
    /// Prefix of every subject and stream (one token).
    pub prefix: String,
    /// Deliveries before a message is dead-lettered.
    pub max_deliver: i64,
    /// Seconds a worker has to ack before redelivery (workers send progress
    /// while busy, so this bounds recovery after a crash, not work length).
    pub ack_wait_secs: u64,
    /// Bound on sealed objects waiting for the slowest network.
    pub sealed_max_bytes: i64,
    /// Replicas of each stream (3 in a 3-node cluster).
    pub replicas: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            prefix: "cairn".into(),
            max_deliver: 5,
            ack_wait_secs: 30,
            sealed_max_bytes: 1 << 30,
            replicas: 1,
        }
    }
}
