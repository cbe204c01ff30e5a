//! moto's S3 server, for S3 Object Lock.

use crate::process::{free_port, Guarded};
use crate::servers::s3::s3_curl;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// moto's S3 server, for S3 Object Lock (which neither s3s-fs nor Garage
/// implements): `scripts/servers/moto/install.sh` puts it in a virtualenv.
/// It keeps everything in memory and does not check credentials.
pub struct MotoServer {
    pub endpoint: String,
    _child: Guarded,
}

impl MotoServer {
    pub fn start(dir: &Path) -> MotoServer {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = Command::new("bash")
            .arg(root.join("scripts/servers/moto/install.sh"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "installing moto failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let port = free_port();
        let log = std::fs::File::create(dir.join("moto.log")).unwrap();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start moto_server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        MotoServer {
            endpoint: format!("http://127.0.0.1:{port}"),
            _child: Guarded(Some(child)),
        }
    }

    /// A request to `path` in `bucket` (signed, though moto checks no
    /// credentials); the response with its headers.
    pub fn curl(&self, method: &str, bucket: &str, path: &str, headers: &[&str]) -> String {
        s3_curl(
            method,
            &format!("{}/{bucket}/{path}", self.endpoint),
            "us-east-1",
            "test",
            "test",
            headers,
        )
    }

    /// Creates a bucket, with Object Lock turned on or not.
    pub fn create_bucket(&self, bucket: &str, object_lock: bool) {
        let mut headers = vec![];
        if object_lock {
            headers.push("x-amz-bucket-object-lock-enabled: true");
        }
        let out = s3_curl(
            "PUT",
            &format!("{}/{bucket}", self.endpoint),
            "us-east-1",
            "test",
            "test",
            &headers,
        );
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
}

/// A response header's value (its name in lower case).
pub fn header(resp: &str, name: &str) -> Option<String> {
    resp.lines()
        .find(|l| l.to_lowercase().starts_with(&format!("{name}:")))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}
