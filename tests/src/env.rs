//! One isolated Cairn deployment per test: its own nats-server, its own
//! PostgreSQL database, data directory and config, and the real `cairn`
//! binary run as a user would.

use crate::nats::NatsServer;
use crate::postgres::{psql, try_psql};
use crate::process::cairn_bin;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const PASSPHRASE: &str = "correct horse battery staple";

pub struct Worker {
    pub name: String,
    child: Child,
}

impl Worker {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Whether it has stopped by itself.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One isolated Cairn deployment.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// The broker (the first node of a cluster).
    pub nats: NatsServer,
    /// A cluster's other nodes (`Options::cluster`).
    pub peers: Vec<NatsServer>,
    pub db: String,
    pub prefix: String,
    pub config: PathBuf,
    workers: Vec<Worker>,
    spawned: usize,
    env: Vec<(String, String)>,
}

#[derive(Clone)]
pub struct Options {
    pub ack_wait_secs: u64,
    pub max_deliver: i64,
    pub verify_timeout_secs: u64,
    /// Extra networks beyond `local` (fs, under the data dir).
    pub extra_networks: Vec<String>,
    /// Appended to cairn.toml (e.g. an S3 network entry).
    pub extra_toml: String,
    /// Environment for every `cairn` process (e.g. network credentials).
    pub env: Vec<(String, String)>,
    /// A JetStream cluster of this many nodes instead of one server, every
    /// stream and consumer replicated to all of them (`nats.replicas`).
    pub cluster: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ack_wait_secs: 5,
            max_deliver: 3,
            verify_timeout_secs: 60,
            extra_networks: vec![],
            extra_toml: String::new(),
            env: vec![],
            cluster: 0,
        }
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::with(Options::default())
    }
}

impl Env {
    pub fn new() -> Env {
        Env::default()
    }

    pub fn with(o: Options) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("cairn-test-")
            .tempdir()
            .unwrap();
        let (nats, peers) = if o.cluster > 1 {
            let mut nodes = NatsServer::cluster(&dir.path().join("nats"), o.cluster);
            let first = nodes.remove(0);
            (first, nodes)
        } else {
            (NatsServer::start(dir.path()), Vec::new())
        };
        let urls: Vec<String> = std::iter::once(&nats)
            .chain(&peers)
            .map(NatsServer::url)
            .collect();
        let replicas = o.cluster.max(1);
        let tag: String = hex::encode(rand::random::<[u8; 5]>());
        let prefix = format!("t{tag}");
        let db = format!("cairn_test_{tag}");
        let data = dir.path().join("data");
        let mut nets = String::new();
        for n in std::iter::once("local".to_string()).chain(o.extra_networks.iter().cloned()) {
            nets.push_str(&format!("\n[[networks]]\nname = \"{n}\"\nkind = \"fs\"\n"));
        }
        nets.push_str(&o.extra_toml);
        let config = dir.path().join("cairn.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\n\n[nats]\nurl = \"{}\"\nprefix = \"{prefix}\"\nack_wait_secs = {}\nmax_deliver = {}\nreplicas = {replicas}\n\n[postgres]\nurl = \"host=127.0.0.1 port=5432 user=postgres dbname={db}\"\n\n[verify]\ntimeout_secs = {}\n{nets}",
                data.display(),
                urls.join(","),
                o.ack_wait_secs,
                o.max_deliver,
                o.verify_timeout_secs
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        // Created here (Cairn would create it on first use) so a test can
        // query it from its first moment.
        psql("postgres", &format!("CREATE DATABASE {db}"));
        Env {
            dir,
            nats,
            peers,
            db,
            prefix,
            config,
            workers: Vec::new(),
            spawned: 0,
            env: o.env,
        }
    }

    /// Adds `keys` (TOML lines) to the `local` network's entry in
    /// cairn.toml (a price, a quota).
    pub fn set_local_network(&self, keys: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let entry = "name = \"local\"\nkind = \"fs\"\n";
        assert!(
            text.contains(entry),
            "cairn.toml has no local network entry"
        );
        std::fs::write(
            &self.config,
            text.replacen(entry, &format!("{entry}{keys}\n"), 1),
        )
        .unwrap();
    }

    /// Sets (or replaces) an environment variable of every later `cairn`.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The `local` network's directory.
    pub fn network_dir(&self, name: &str) -> PathBuf {
        self.path().join("data/networks").join(name)
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.path().join("logs")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(cairn_bin());
        c.env("CAIRN_CONFIG", &self.config)
            .env("CAIRN_PASSPHRASE", PASSPHRASE)
            // The collector's pause between condemning and its last look,
            // 30 s by default: a second is enough beside one test's backups.
            .env("CAIRN_RETENTION__GC_SETTLE_SECS", "1")
            .env_remove("RUST_LOG")
            // `CAIRN_TEST_LOG=info,cairn_bus=debug` sets every process's
            // log filter, for a failure that needs more than the tails.
            .envs(std::env::var("CAIRN_TEST_LOG").map(|v| ("CAIRN_TELEMETRY__LOG", v)))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.path());
        c
    }

    /// `cairn` as it runs the day everything else is gone: a configuration
    /// naming only network `network` (its `[[networks]]` entry as written),
    /// and neither the broker nor the database reachable.
    pub fn offline_with_only(&self, network: &str) -> Command {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let (head, rest) = text.split_at(text.find("\n[[networks]]").unwrap());
        let block = rest
            .split("\n[[networks]]")
            .find(|b| b.trim_start().starts_with(&format!("name = \"{network}\"")))
            .unwrap_or_else(|| panic!("no network {network} in {text}"));
        // The entry ends where the next table begins.
        let block = block.split("\n[").next().unwrap();
        let only = self.path().join(format!("cairn-only-{network}.toml"));
        std::fs::write(&only, format!("{head}\n[[networks]]{block}\n")).unwrap();
        let mut c = self.offline();
        c.env("CAIRN_CONFIG", &only);
        c
    }

    /// `cairn` with every configured network but neither the broker nor
    /// the database reachable.
    pub fn offline(&self) -> Command {
        let mut c = self.cmd();
        c.env("CAIRN_NATS__URL", "nats://127.0.0.1:1").env(
            "CAIRN_POSTGRES__URL",
            "host=127.0.0.1 port=1 user=nobody dbname=gone",
        );
        c
    }

    /// Restores backup `id` from network `network` alone (no broker, no
    /// database) into a fresh directory, and returns that directory.
    pub fn restore_from_only(&self, network: &str, id: &str) -> PathBuf {
        let out = self.path().join(format!("restored-{network}-{id}"));
        let o = self.run_with(
            self.offline_with_only(network),
            &["restore", id, "--to", out.to_str().unwrap()],
            None,
        );
        assert!(
            o.status.success(),
            "restore {id} from {network} alone: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    }

    /// Runs `cairn ARGS`, capturing output (also kept under logs/).
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(self.cmd(), args, None)
    }

    pub fn run_with(&self, mut c: Command, args: &[&str], stdin: Option<&[u8]>) -> Output {
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = c.spawn().expect("run cairn");
        if let Some(data) = stdin {
            let mut si = child.stdin.take().unwrap();
            si.write_all(data).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let n = std::fs::read_dir(self.logs_dir())
            .map(|d| d.count())
            .unwrap_or(0);
        let mut log = out.stdout.clone();
        log.extend_from_slice(&out.stderr);
        let _ = std::fs::write(self.logs_dir().join(format!("cmd-{n:03}.log")), log);
        out
    }

    /// Runs `cairn ARGS` and insists it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cairn {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let text = self.ok(args);
        serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("cairn {args:?}: not JSON ({e}): {text}"))
    }

    /// `cairn init` with a fast KDF (tests only), then `cairn setup`
    /// (streams, consumers and database schema in place before any worker).
    pub fn init(&self) {
        self.ok(&["init", "--kdf-memory-kib", "8192", "--kdf-iterations", "1"]);
        self.ok(&["setup"]);
    }

    /// `init`, then every stage in one background `cairn serve all`.
    pub fn start_all(&mut self) -> usize {
        self.init();
        self.serve(&["all"])
    }

    /// A new directory `name` under the test's directory (a backup source).
    pub fn source_dir(&self, name: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// `cairn health ID --json [--full]`: its exit code and report.
    pub fn health(&self, id: &str, full: bool) -> (i32, serde_json::Value) {
        let mut args = vec!["health", id, "--json"];
        if full {
            args.push("--full");
        }
        let o = self.run(&args);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "health: not JSON ({e}): {}",
                String::from_utf8_lossy(&o.stderr)
            )
        });
        (o.status.code().unwrap_or(-1), v)
    }

    /// Every data object a directory network holds: packs, and chunks
    /// stored alone.
    pub fn data_objects(&self, network: &str) -> Vec<PathBuf> {
        let dir = self.network_dir(network);
        let mut all = Env::files_under(&dir.join("packs"));
        all.extend(Env::files_under(&dir.join("chunks")));
        all
    }

    /// The largest data object a network holds (a pack holding file data).
    pub fn largest_chunk(&self, network: &str) -> PathBuf {
        self.data_objects(network)
            .into_iter()
            .max_by_key(|f| std::fs::metadata(f).unwrap().len())
            .expect("the network holds chunks")
    }

    /// Starts `cairn serve STAGES` in the background, logging to logs/.
    pub fn serve(&mut self, stages: &[&str]) -> usize {
        self.serve_with(stages, &[])
    }

    /// [`serve`](Self::serve) with `env` set for that process only (its
    /// own NATS user, say).
    pub fn serve_with(&mut self, stages: &[&str], env: &[(&str, &str)]) -> usize {
        self.serve_as(stages, env, |c| c)
    }

    /// [`serve_with`](Self::serve_with), the command passed through `wrap`
    /// (run on another host, say); its log is `serve-<stages>-<n>.log`.
    pub fn serve_as(
        &mut self,
        stages: &[&str],
        env: &[(&str, &str)],
        wrap: impl FnOnce(Command) -> Command,
    ) -> usize {
        self.spawned += 1;
        let name = format!("serve-{}-{}", stages.join("+"), self.spawned);
        let log = std::fs::File::create(self.logs_dir().join(format!("{name}.log"))).unwrap();
        let mut c = self.cmd();
        c.envs(env.iter().copied());
        c.arg("serve").args(stages);
        let mut c = wrap(c);
        c.stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null());
        let child = c.spawn().expect("start cairn serve");
        self.workers.push(Worker { name, child });
        self.workers.len() - 1
    }

    /// Everything the `cairn serve` processes of this test logged.
    pub fn serve_logs(&self) -> String {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.logs_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("serve-")
            })
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// Stops every `cairn serve` of this test as a service manager would
    /// (SIGTERM), so each flushes what it exports, and waits for them.
    pub fn terminate_workers(&mut self) {
        for w in &self.workers {
            let _ = Command::new("kill")
                .args(["-TERM", &w.pid().to_string()])
                .status();
        }
        for w in &mut self.workers {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = w.child.try_wait() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        self.workers.clear();
    }

    /// Stops every `cairn serve` of this test (`kill -9`).
    pub fn stop_workers(&mut self) {
        self.workers.clear();
    }

    pub fn worker(&mut self, i: usize) -> &mut Worker {
        &mut self.workers[i]
    }

    /// `cairn backup --json ARGS`, left running: the test acts while it
    /// goes and reads its outcome with `wait_output`.
    pub fn backup_under_way(&self, args: &[&str]) -> crate::process::Guarded {
        let mut cmd = self.cmd();
        cmd.args(["backup", "--json"]).args(args);
        crate::process::Guarded::spawn(cmd)
    }

    pub fn backup(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["backup", "--json"];
        a.extend_from_slice(args);
        let v = self.json(&a);
        assert_eq!(v["status"], "completed", "backup {args:?}: {v}");
        v
    }

    /// Backs up a new source directory `src` holding one random
    /// (incompressible) file `a.bin` of `len` bytes: the directory and the
    /// completed backup's id.
    pub fn back_up_random_file(&self, len: usize) -> (PathBuf, String) {
        let src = self.source_dir("src");
        crate::fixtures::random_file(&src.join("a.bin"), len);
        let b = self.backup(&[src.to_str().unwrap()]);
        let id = b["backup_id"].as_str().unwrap().to_string();
        (src, id)
    }

    /// Every byte under `dir`, file by file (for plaintext searches).
    pub fn files_under(dir: &Path) -> Vec<PathBuf> {
        walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .collect()
    }
}

impl Env {
    /// The last lines of every log of the test, on its stderr: a failed
    /// test's directory is removed, and CI keeps only what it printed.
    fn show_log_tails(&self) {
        const LINES: usize = 40;
        let Ok(dir) = std::fs::read_dir(self.logs_dir()) else {
            return;
        };
        let mut logs: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        for log in logs {
            let text =
                String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "----- last {} of {} lines of {} -----",
                lines.len().min(LINES),
                lines.len(),
                log.file_name().unwrap_or_default().to_string_lossy()
            );
            // A log line's span fields come first and its message last:
            // keep both ends of a long one.
            for l in &lines[lines.len().saturating_sub(LINES)..] {
                if l.len() <= 400 {
                    eprintln!("{l}");
                    continue;
                }
                let head = (0..=100)
                    .rev()
                    .find(|i| l.is_char_boundary(*i))
                    .unwrap_or(0);
                let tail = (l.len() - 300..l.len())
                    .find(|i| l.is_char_boundary(*i))
                    .unwrap_or(l.len());
                eprintln!("{} … {}", &l[..head], &l[tail..]);
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.workers.clear();
        if std::thread::panicking() {
            self.show_log_tails();
        }
        // The brokers write into the directory: stopped before it goes.
        for n in self.peers.iter_mut() {
            n.stop();
        }
        self.nats.stop();
        try_psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
        );
        if std::env::var_os("CAIRN_KEEP_TEST_DIRS").is_some() {
            let p = self.dir.path().to_path_buf();
            eprintln!("keeping {}", p.display());
            std::mem::forget(std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().unwrap(),
            ));
        }
    }
}

/// The JSON outcome of a `cairn backup --json` that must have completed;
/// its stderr is shown otherwise.
pub fn completed_outcome(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "backup failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    v
}

/// The JSON outcome of a `cairn backup --json` that must have ended
/// degraded (exit 3); its stderr is shown otherwise.
pub fn degraded_outcome(o: &Output) -> serde_json::Value {
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// One network's part of a `cairn health` report.
pub fn health_of<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["network"] == name)
        .unwrap_or_else(|| panic!("no network {name} in {report}"))
}

/// Waits until every consumer of the test's EVENTS and SEALED streams has
/// nothing left to deliver and nothing awaiting an ack: every stage has
/// finished what was published so far.
pub fn wait_until_idle(env: &Env, secs: u64) {
    use futures::StreamExt;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let busy = || {
        rt.block_on(async {
            let client = async_nats::connect(env.nats.url()).await.ok()?;
            let js = async_nats::jetstream::new(client);
            let mut busy = Vec::new();
            for stream in ["EVENTS", "SEALED"] {
                let name = format!("{}_{stream}", env.prefix.to_uppercase());
                let s = js.get_stream(&name).await.ok()?;
                let mut infos = s.consumers();
                while let Some(info) = infos.next().await {
                    let info = info.ok()?;
                    if info.num_pending > 0 || info.num_ack_pending > 0 {
                        busy.push(info.name);
                    }
                }
            }
            Some(busy)
        })
    };
    crate::process::wait_for(secs, "every consumer to be idle", || {
        busy().filter(|b| b.is_empty()).map(|_| ())
    });
}

/// Publishes `payload` as is to `subject` on the test's JetStream.
pub fn publish_raw(env: &Env, subject: &str, payload: &[u8]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = async_nats::connect(env.nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.publish(subject.to_string(), payload.to_vec().into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
}
