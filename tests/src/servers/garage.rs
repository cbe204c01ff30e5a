//! Garage, a second real S3 server (strict SigV4 and region).

use crate::process::{free_port, Guarded};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A second real S3 server for the same conformance suite: Garage (strict
/// SigV4, region `garage`, no anonymous access), one node, one bucket, one
/// key. `scripts/test.sh` installs it (`cargo install garage`).
pub struct GarageServer {
    pub endpoint: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
    _child: Guarded,
}

impl GarageServer {
    pub fn start(dir: &Path) -> GarageServer {
        let root = dir.join("garage");
        std::fs::create_dir_all(root.join("meta")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        let (s3, rpc, admin) = (free_port(), free_port(), free_port());
        let conf = root.join("garage.toml");
        std::fs::write(
            &conf,
            format!(
                "metadata_dir = \"{m}\"\ndata_dir = \"{d}\"\ndb_engine = \"sqlite\"\nreplication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\nadmin_token = \"{token}\"\n",
                m = root.join("meta").display(),
                d = root.join("data").display(),
                secret = hex::encode(rand::random::<[u8; 32]>()),
                token = hex::encode(rand::random::<[u8; 16]>()),
            ),
        )
        .unwrap();
        let bin = std::env::var("CAIRN_GARAGE").unwrap_or_else(|_| "garage".into());
        let log = std::fs::File::create(root.join("garage.log")).unwrap();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .arg("server")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} ({e}): scripts/test.sh installs it"));
        let garage = |args: &[&str]| -> String {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let out = Command::new(&bin)
                    .arg("-c")
                    .arg(&conf)
                    .args(args)
                    .output()
                    .unwrap();
                if out.status.success() {
                    return String::from_utf8_lossy(&out.stdout).into_owned();
                }
                assert!(
                    Instant::now() < deadline,
                    "garage {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        };
        let node = garage(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap().to_string();
        garage(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage(&["layout", "apply", "--version", "1"]);
        let bucket = "cairn-test".to_string();
        garage(&["bucket", "create", &bucket]);
        let info = garage(&["key", "create", "cairn-key"]);
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("no {name} in: {info}"))
        };
        let (key_id, secret) = (field("Key ID:"), field("Secret key:"));
        garage(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &bucket,
            "--key",
            "cairn-key",
        ]);
        GarageServer {
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket,
            key_id,
            secret,
            _child: Guarded(Some(child)),
        }
    }
}
