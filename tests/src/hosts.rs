//! Several "hosts" on one machine: network namespaces the test makes
//! (`ip netns`), each joined to a bridge by a veth pair, so that processes
//! on different hosts reach one another only over that network, and a
//! host's link can be cut and restored. Needs root (CAP_NET_ADMIN). Every
//! name carries a random tag, and everything is removed on drop.

use crate::process::Guarded;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Hosts {
    tag: String,
    /// `10.<a>.<b>`: the bridge is `.1`, host `i` is `.(11 + i)`.
    subnet: String,
    bridge: String,
    n: usize,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Hosts {
    /// `n` hosts on a bridge of their own.
    pub fn create(n: usize) -> Hosts {
        let tag = hex::encode(rand::random::<[u8; 2]>());
        let [a, b] = rand::random::<[u8; 2]>();
        let hosts = Hosts {
            subnet: format!("10.{}.{b}", 200 + a % 50),
            bridge: format!("cb{tag}"),
            tag,
            n,
        };
        ip(&["link", "add", &hosts.bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", hosts.gateway()),
            "dev",
            &hosts.bridge,
        ]);
        ip(&["link", "set", &hosts.bridge, "up"]);
        for i in 0..n {
            let ns = hosts.namespace(i);
            ip(&["netns", "add", &ns]);
            ip(&[
                "link",
                "add",
                &hosts.link(i),
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
            ]);
            ip(&["link", "set", &hosts.link(i), "master", &hosts.bridge]);
            ip(&["link", "set", &hosts.link(i), "up"]);
            let inside = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &ns, "ip"];
                all.extend_from_slice(args);
                ip(&all);
            };
            inside(&["link", "set", "lo", "up"]);
            inside(&["addr", "add", &format!("{}/24", hosts.ip(i)), "dev", "eth0"]);
            inside(&["link", "set", "eth0", "up"]);
        }
        hosts
    }

    pub fn namespace(&self, i: usize) -> String {
        format!("cairn-{}-h{}", self.tag, i + 1)
    }

    /// The root side of host `i`'s veth pair, on the bridge.
    fn link(&self, i: usize) -> String {
        format!("cv{}h{}", self.tag, i + 1)
    }

    /// Host `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, 11 + i)
    }

    /// The bridge's address: the machine itself, as the hosts reach it.
    pub fn gateway(&self) -> String {
        format!("{}.1", self.subnet)
    }

    /// `cmd`, run on host `i` (same program, arguments, environment and
    /// directory).
    pub fn on(&self, i: usize, cmd: &Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.namespace(i)])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            c.current_dir(d);
        }
        c
    }

    /// Cuts host `i` off the network (its link down), as a pulled cable.
    pub fn cut(&self, i: usize) {
        ip(&["link", "set", &self.link(i), "down"]);
    }

    pub fn restore(&self, i: usize) {
        ip(&["link", "set", &self.link(i), "up"]);
    }

    /// A JetStream node on each host, routed to the others, its store
    /// under `dir`: a three-host cluster as `deploy/nats/cluster` runs it.
    pub fn nats_cluster(&self, dir: &Path) -> Vec<Guarded> {
        let n = self.count();
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("nats-server");
        let nodes: Vec<Guarded> = (0..n)
            .map(|i| {
                let node = dir.join(format!("h{}", i + 1));
                std::fs::create_dir_all(node.join("jetstream")).unwrap();
                let routes: Vec<String> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| format!("    nats-route://{}:6222", self.ip(j)))
                    .collect();
                let conf = node.join("nats.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "server_name: h{}\nhost: {ip}\nport: 4222\nhttp: {ip}:8222\n\
                         cluster {{\n  name: cairn-hosts\n  listen: {ip}:6222\n  routes: [\n{}\n  ]\n}}\n\
                         jetstream {{\n  store_dir: \"{}\"\n}}\n",
                        i + 1,
                        routes.join("\n"),
                        node.join("jetstream").display(),
                        ip = self.ip(i),
                    ),
                )
                .unwrap();
                let log = std::fs::File::create(node.join("nats.log")).unwrap();
                let mut c = Command::new(bin);
                c.arg("-c").arg(&conf);
                let mut c = self.on(i, &c);
                c.stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .stdin(std::process::Stdio::null());
                Guarded(Some(c.spawn().expect("nats-server on a host")))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(0..n).all(|i| self.meta_leader(i).is_some()) {
            assert!(
                Instant::now() < deadline,
                "the NATS cluster on the hosts did not elect a leader (logs in {})",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        nodes
    }

    /// The JetStream meta leader host `i`'s node knows, if any.
    pub fn meta_leader(&self, i: usize) -> Option<String> {
        let v = self.monitor(i, "/jsz")?;
        let leader = v["meta_cluster"]["leader"].as_str()?.to_string();
        (!leader.is_empty()).then_some(leader)
    }

    /// Host `i`'s node's monitoring answer for `path`.
    pub fn monitor(&self, i: usize, path: &str) -> Option<serde_json::Value> {
        crate::nats::monitor_at(format!("{}:8222", self.ip(i)).parse().ok()?, path)
    }

    /// The NATS URLs of every host's node.
    pub fn nats_urls(&self) -> String {
        (0..self.count())
            .map(|i| format!("nats://{}:4222", self.ip(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn count(&self) -> usize {
        self.n
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for i in 0..self.count() {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.namespace(i)])
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}
