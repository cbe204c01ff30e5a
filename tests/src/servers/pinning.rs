//! A real IPFS Pinning Service API server.

use crate::process::{start_until_ready, Guarded};
use std::path::Path;
use std::process::Command;

/// A real IPFS Pinning Service API server for tests, on 127.0.0.1
/// (`scripts/servers/pinning/start.sh`: ipfs-shipyard's in-memory
/// implementation of the spec, which validates every request against the
/// spec's OpenAPI document). It records pin requests; it does not fetch data.
pub struct PinningServer {
    pub endpoint: String,
    pub token: String,
    _child: Guarded,
}

impl PinningServer {
    pub fn start(dir: &Path) -> PinningServer {
        let token = hex::encode(rand::random::<[u8; 16]>());
        let mut cmd = Command::new("bash");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/servers/pinning/start.sh"))
            .arg("0")
            .arg(&token);
        let (child, port) = start_until_ready(cmd, &dir.join("pinning.log"), "the pinning service");
        PinningServer {
            endpoint: format!("http://127.0.0.1:{port}"),
            token,
            _child: child,
        }
    }

    /// Every pin request it holds, in every status (`GET /pins`).
    pub fn pins(&self) -> Vec<serde_json::Value> {
        let out = Command::new("curl")
            .args(["-sSf", "-H"])
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!(
                "{}/pins?status=queued,pinning,pinned,failed&limit=1000",
                self.endpoint
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "GET /pins failed");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["results"].as_array().cloned().unwrap_or_default()
    }
}
