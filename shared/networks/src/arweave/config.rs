//! `kind = "arweave"`: the permanent Arweave network, through a gateway.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArweaveConfig {
    /// The gateway, e.g. `https://arweave.net`.
    pub endpoint: String,
    /// The JWK wallet file that signs (and pays for) transactions.
    pub wallet_file: PathBuf,
    /// The repository's `Cairn-Repo` tag (default: the network's name).
    pub key_prefix: Option<String>,
    /// Ask the gateway to mine after each post (arlocal, the local test
    /// gateway, only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mine: bool,
    /// Blocks on top of an object's transaction before it counts as stored
    /// (unset: accepted by the gateway, pending, is enough; 0: mined). Each
    /// object waits for this: with Arweave's ~2 min blocks, raise the store
    /// worker's concurrency with it.
    pub confirmations: Option<u64>,
    /// How long a put waits for that (default 1800 s); then it fails and is
    /// retried, waiting on the same transaction.
    pub confirm_timeout_secs: Option<u64>,
}
