//! `kind = "ipfs"`: an IPFS node's Kubo RPC API, optionally with a remote
//! pinning service keeping a copy of every object.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpfsConfig {
    /// The node's RPC API, e.g. `http://127.0.0.1:5001`.
    pub endpoint: String,
    /// The repository's MFS directory under `/cairn/` (default: the
    /// network's name).
    pub key_prefix: Option<String>,
    /// An IPFS Pinning Service API endpoint (e.g.
    /// `https://api.pinata.cloud/psa`) that keeps a copy of every object.
    pub pinning_endpoint: Option<String>,
    /// File holding the pinning service's access token. Unset:
    /// `CAIRN_<NAME>_PINNING_TOKEN`. Never in the configuration file, never
    /// logged.
    pub pinning_token_file: Option<PathBuf>,
}
