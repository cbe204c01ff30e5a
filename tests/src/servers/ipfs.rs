//! js-ipfs, a real IPFS node serving the Kubo RPC API.

use crate::process::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// A real IPFS node for tests: js-ipfs 0.66.1 serving the Kubo RPC API on
/// 127.0.0.1 (`scripts/servers/ipfs/start.sh` installs and starts it; no
/// traffic leaves the machine). Stop and restart keep its repository.
pub struct IpfsServer {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl IpfsServer {
    pub fn start(dir: &Path) -> IpfsServer {
        let mut s = IpfsServer {
            port: free_port(),
            dir: dir.join("ipfs"),
            child: None,
        };
        // Another test's server may take the port between `free_port` and
        // the node's bind (tests run in parallel): then try another port,
        // with a fresh repository (a killed node can leave its lock behind).
        for attempt in 1..=3 {
            std::fs::create_dir_all(&s.dir).unwrap();
            if s.try_start() {
                return s;
            }
            eprintln!(
                "IPFS node on port {} did not start (attempt {attempt}); see {}",
                s.port,
                s.dir.with_extension("log").display()
            );
            s.stop();
            s.port = free_port();
            s.dir = dir.join(format!("ipfs-{attempt}"));
        }
        s.restart();
        s
    }

    fn script(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scripts/servers/ipfs/{name}"))
    }

    /// Starts (or starts again, on the same port and repository) the node.
    pub fn restart(&mut self) {
        assert!(
            self.try_start(),
            "the IPFS node did not start; see {}",
            self.dir.with_extension("log").display()
        );
    }

    /// Starts the node on `self.port`; whether it answered as itself.
    fn try_start(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .unwrap();
        let child = Command::new("bash")
            .arg(Self::script("start.sh"))
            .arg(&self.dir)
            .arg(self.port.to_string())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the IPFS node");
        self.child = Some(child);
        let ok = Command::new("bash")
            .arg(Self::script("wait.sh"))
            .arg(self.port.to_string())
            .arg("120")
            .arg(&self.dir)
            .status()
            .unwrap();
        ok.success()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One RPC call, as a user would make it with curl: the answer's body.
    pub fn rpc(&self, call: &str) -> String {
        let out = Command::new("curl")
            .args(["-sS", "-m", "30", "-X", "POST"])
            .arg(format!("{}/api/v0/{call}", self.endpoint()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A `[[networks]]` entry for it.
    pub fn network_toml(&self, name: &str) -> String {
        format!(
            "\n[[networks]]\nname = \"{name}\"\nkind = \"ipfs\"\nendpoint = \"{}\"\nkey_prefix = \"repo\"\n",
            self.endpoint()
        )
    }
}

impl Drop for IpfsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
