//! A nats-server with JetStream per test, on a free port, its store in the
//! test's directory (so a test can read every byte it wrote); or a cluster
//! of them ([`NatsServer::cluster`]), each node with its own ports and
//! store, routed to the others, for tests that stop and start nodes.

use crate::process::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct NatsServer {
    pub port: u16,
    pub store_dir: PathBuf,
    /// A cluster node's name (`server_name`) and monitoring port.
    pub name: Option<String>,
    pub http_port: Option<u16>,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start(dir: &Path) -> NatsServer {
        Self::start_on(dir, free_port())
    }

    /// Stops the broker (as a machine that is gone would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a stopped broker again with its configuration and store: a
    /// machine that comes back.
    pub fn start_again(&mut self) {
        self.start_again_with(&[]);
    }

    /// As [`start_again`](Self::start_again), with `env` set for it (as
    /// `GOMEMLIMIT`, the Go runtime's memory budget).
    pub fn start_again_with(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "the broker is running");
        self.child = Some(spawn_with(&self.conf, &self.log, true, env));
        wait_for_port(self.port, &self.log);
    }

    /// Stops the broker and starts it again with `extra` added to its
    /// configuration (TLS, users), on the same port and store.
    pub fn reconfigure(&mut self, extra: &str) {
        self.stop();
        let mut conf = std::fs::read_to_string(&self.conf).unwrap();
        conf.push_str(extra);
        std::fs::write(&self.conf, conf).unwrap();
        self.start_again();
    }

    /// What the broker logged (permission violations among it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// `n` nodes in one JetStream cluster under `dir` (`n1`, `n2`, ...),
    /// each on its own client, route and monitoring ports, returned once
    /// every node says it is healthy (JetStream current with the cluster).
    pub fn cluster(dir: &Path, n: usize) -> Vec<NatsServer> {
        // Nine distinct ports: the system may hand the same free one out
        // twice in a row.
        let mut free = std::collections::BTreeSet::new();
        while free.len() < 3 * n {
            free.insert(free_port());
        }
        let mut free: Vec<u16> = free.into_iter().collect();
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| {
                (
                    free.pop().unwrap(),
                    free.pop().unwrap(),
                    free.pop().unwrap(),
                )
            })
            .collect();
        let mut nodes: Vec<NatsServer> = Vec::new();
        for (i, &(port, route, http)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let node_dir = dir.join(&name);
            let store_dir = node_dir.join("jetstream");
            std::fs::create_dir_all(&store_dir).unwrap();
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| format!("    nats-route://127.0.0.1:{}", p.1))
                .collect();
            let conf = node_dir.join("nats.conf");
            std::fs::write(
                &conf,
                format!(
                    "server_name: {name}\nhost: 127.0.0.1\nport: {port}\nhttp: 127.0.0.1:{http}\n\
                     cluster {{\n  name: cairn-test\n  listen: 127.0.0.1:{route}\n  routes: [\n{}\n  ]\n}}\n\
                     jetstream {{\n  store_dir: \"{}\"\n}}\n",
                    routes.join("\n"),
                    store_dir.display()
                ),
            )
            .unwrap();
            let log = node_dir.join("nats.log");
            nodes.push(NatsServer {
                port,
                store_dir,
                name: Some(name),
                http_port: Some(http),
                child: Some(spawn(&conf, &log, false)),
                conf,
                log,
            });
        }
        for node in &nodes {
            wait_for_port(node.port, &node.log);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while !nodes.iter().all(NatsServer::healthy) {
            assert!(
                Instant::now() < deadline,
                "the NATS cluster did not become healthy (logs in {})",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        nodes
    }

    /// A cluster node's `/healthz`: JetStream enabled and current with the
    /// cluster's meta leader. A single server is healthy once it listens.
    pub fn healthy(&self) -> bool {
        let Some(http) = self.http_port else {
            return std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
        };
        let _ = http;
        self.monitor("/healthz")
            .is_some_and(|v| v["status"] == "ok")
    }

    /// A monitoring endpoint's JSON (`/jsz?streams=true`), if the node
    /// answers.
    pub fn monitor(&self, path: &str) -> Option<serde_json::Value> {
        let http = self.http_port?;
        if !self.running() {
            return None;
        }
        monitor_at(([127, 0, 0, 1], http).into(), path)
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
        let log = dir.join("nats.log");
        let child = spawn(&conf, &log, false);
        wait_for_port(port, &log);
        NatsServer {
            port,
            store_dir,
            name: None,
            http_port: None,
            conf,
            log,
            child: Some(child),
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// nats-server with `conf`, logging to `log` (appended to when it starts
/// again).
/// A nats-server's monitoring answer for `path` at `addr`, if it answers.
pub fn monitor_at(addr: std::net::SocketAddr, path: &str) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", addr.ip()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

fn spawn(conf: &Path, log: &Path, append: bool) -> Child {
    spawn_with(conf, log, append, &[])
}

fn spawn_with(conf: &Path, log: &Path, append: bool, env: &[(&str, &str)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(log)
        .unwrap();
    // `CAIRN_NATS_SERVER=/path/to/nats-server` runs the tests against
    // another build than the Debian package's (2.9.10).
    let chosen = std::env::var("CAIRN_NATS_SERVER").ok();
    let bin = chosen
        .as_deref()
        .into_iter()
        .chain(["/usr/sbin/nats-server", "/usr/bin/nats-server"])
        .find(|p| Path::new(p).exists())
        .unwrap_or("nats-server");
    Command::new(bin)
        .envs(env.iter().copied())
        .arg("-c")
        .arg(conf)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("nats-server must be installed (scripts/setup.sh installs it)")
}

fn wait_for_port(port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server did not start on port {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
