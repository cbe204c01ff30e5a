//! arlocal, a real local Arweave gateway.

use crate::process::{start_until_ready, Guarded};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A real Arweave gateway for tests: arlocal (the project's
/// `scripts/servers/arweave/start.sh` installs and starts it on 127.0.0.1),
/// with the throwaway test wallet minted rich.
pub struct ArweaveServer {
    pub endpoint: String,
    pub wallet: PathBuf,
    _child: Guarded,
}

impl ArweaveServer {
    pub fn start(dir: &Path) -> ArweaveServer {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let data = dir.join("arlocal");
        std::fs::create_dir_all(&data).unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg(root.join("scripts/servers/arweave/start.sh"))
            .arg(&data)
            .arg("0");
        let (child, port) = start_until_ready(cmd, &dir.join("arlocal.log"), "arlocal");
        ArweaveServer {
            endpoint: format!("http://127.0.0.1:{port}"),
            wallet: root.join("scripts/servers/arweave/test-wallet.json"),
            _child: child,
        }
    }

    /// Gives `address` plenty of AR (arlocal's faucet).
    pub fn mint(&self, address: &str) {
        let out = Command::new("curl")
            .args([
                "-sf",
                &format!("{}/mint/{address}/100000000000000000", self.endpoint),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "mint failed");
    }
}

impl ArweaveServer {
    /// Mines one block (confirms every pending transaction).
    pub fn mine(&self) {
        let out = Command::new("curl")
            .args(["-sf", &format!("{}/mine", self.endpoint)])
            .output()
            .unwrap();
        assert!(out.status.success(), "mine failed");
    }
}
