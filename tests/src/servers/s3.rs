//! s3s-fs, a real S3 server (SigV4) serving a directory, and signed
//! requests by hand with curl.

use crate::env::Options;
use crate::process::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A real S3-compatible server for tests: `s3s-fs` (SigV4, checks the
/// `x-amz-content-sha256` header), serving a temporary directory, one bucket.
/// `scripts/test.sh` installs it (`cargo install s3s-fs`).
pub struct S3Server {
    pub port: u16,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub root: PathBuf,
    child: Option<Child>,
}

impl S3Server {
    pub fn start(dir: &Path) -> S3Server {
        let root = dir.join("s3");
        let bucket = "cairn-test".to_string();
        std::fs::create_dir_all(root.join(&bucket)).unwrap();
        let mut s = S3Server {
            port: 0,
            bucket,
            access_key: format!("AK{}", hex::encode(rand::random::<[u8; 6]>())),
            secret_key: hex::encode(rand::random::<[u8; 20]>()),
            root,
            child: None,
        };
        s.restart();
        s
    }

    /// Starts (or starts again, on the same port) the server.
    pub fn restart(&mut self) {
        if self.port == 0 {
            self.port = free_port();
        }
        let log = std::fs::File::create(self.root.with_extension("log")).unwrap();
        let bin = std::env::var("CAIRN_S3S_FS").unwrap_or_else(|_| "s3s-fs".into());
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--access-key",
                &self.access_key,
                "--secret-key",
                &self.secret_key,
            ])
            .arg(&self.root)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} ({e}): scripts/test.sh installs it"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        self.freeze(false);
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections open, nothing answers.
    pub fn freeze(&self, frozen: bool) {
        if let Some(c) = &self.child {
            let sig = if frozen { "-STOP" } else { "-CONT" };
            Command::new("kill")
                .arg(sig)
                .arg(c.id().to_string())
                .status()
                .unwrap();
        }
    }

    /// A [`crate::FaultProxy`] in front of it, injecting `fault`.
    pub fn behind_proxy(&self, fault: crate::Fault) -> crate::FaultProxy {
        crate::FaultProxy::start(&format!("127.0.0.1:{}", self.port), fault)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Options with this server as network `name` (secret in the environment).
    pub fn options(&self, name: &str) -> Options {
        self.options_via(name, &self.endpoint())
    }

    /// As [`options`](Self::options), reached through `endpoint` (a proxy
    /// in front of it).
    pub fn options_via(&self, name: &str, endpoint: &str) -> Options {
        Options {
            extra_toml: self.network_toml_via(name, endpoint),
            env: vec![(
                format!("CAIRN_{}_SECRET_ACCESS_KEY", name.to_uppercase()),
                self.secret_key.clone(),
            )],
            ..Options::default()
        }
    }

    /// A `[[networks]]` entry for it (credentials go through the environment).
    pub fn network_toml(&self, name: &str) -> String {
        self.network_toml_via(name, &self.endpoint())
    }

    fn network_toml_via(&self, name: &str, endpoint: &str) -> String {
        format!(
            "\n[[networks]]\nname = \"{name}\"\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"{}\"\naccess_key_id = \"{}\"\nkey_prefix = \"repo\"\n",
            endpoint,
            self.bucket,
            self.access_key
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One signed S3 request with curl (`--aws-sigv4`), as a user would check a
/// bucket by hand: `method` on `url`, extra `headers`; returns the status
/// line, headers and body as text.
pub fn s3_curl(
    method: &str,
    url: &str,
    region: &str,
    access_key: &str,
    secret_key: &str,
    headers: &[&str],
) -> String {
    let mut c = Command::new("curl");
    c.args(["-sS", "-i", "-m", "30", "-X", method])
        .arg("--aws-sigv4")
        .arg(format!("aws:amz:{region}:s3"))
        .arg("--user")
        .arg(format!("{access_key}:{secret_key}"))
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
    for h in headers {
        c.args(["-H", h]);
    }
    let out = c.arg(url).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
