//! A nats-server with JetStream per test, on a free port, its store in the
//! test's directory (so a test can read every byte it wrote).

use crate::process::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct NatsServer {
    pub port: u16,
    pub store_dir: PathBuf,
    child: Child,
}

impl NatsServer {
    pub fn start(dir: &Path) -> NatsServer {
        Self::start_on(dir, free_port())
    }

    /// Stops the broker (as a machine that is gone would).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the broker, deletes its JetStream store (every stream and
    /// consumer), and starts an empty one on the same port: a new machine.
    pub fn replace_with_empty(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store_dir);
        let dir = self.store_dir.parent().unwrap().to_path_buf();
        *self = Self::start_on(&dir, self.port);
    }

    fn start_on(dir: &Path, port: u16) -> NatsServer {
        let store_dir = dir.join("jetstream");
        std::fs::create_dir_all(&store_dir).unwrap();
        let conf = dir.join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "host: 127.0.0.1\nport: {port}\njetstream {{\n  store_dir: \"{}\"\n}}\n",
                store_dir.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("nats.log")).unwrap();
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("nats-server");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nats-server must be installed (scripts/setup.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        NatsServer {
            port,
            store_dir,
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
