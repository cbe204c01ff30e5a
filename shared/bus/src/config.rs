//! `[nats]`: how Cairn reaches the broker and the bounds it puts on its
//! streams and consumers.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
    /// The NKey seed this process signs in with (a file holding `SU...`,
    /// written by `cairn nats users`): a user whose subject permissions
    /// fit its role. Unset: no user (a server without authorization).
    #[serde(default)]
    pub nkey_file: Option<PathBuf>,
    /// The CA that signed the server's certificate: set, the connection
    /// must be TLS and the server must prove itself with it.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate and its key, for a server that verifies
    /// clients (`tls { verify: true }`).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Whether this process creates and updates streams and consumers.
    /// A deployment with a user per role sets it false for every service
    /// (their users may not), and lets the operator's `cairn setup` make
    /// them; a process then only checks they exist.
    #[serde(default = "yes")]
    pub manage_topology: bool,
}

fn yes() -> bool {
    true
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
            nkey_file: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            manage_topology: true,
        }
    }
}
