//! Test harness: every test gets its own nats-server (JetStream store in a
//! temporary directory, so tests can read every byte it wrote), its own
//! PostgreSQL database on the local server, its own data directory and
//! config, and runs the real `cairn` binary, as a user would.
//!
//! Build the binary first (`cargo build -p cairn`; `scripts/test.sh` does).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PASSPHRASE: &str = "correct horse battery staple";

pub fn cairn_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test binary> → target/<profile>/cairn
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("cairn"))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} does not exist: build it first with `cargo build -p cairn` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct NatsServer {
    pub port: u16,
    pub store_dir: PathBuf,
    child: Child,
}

impl NatsServer {
    pub fn start(dir: &Path) -> NatsServer {
        let port = free_port();
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_psql(db: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db])
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("psql must be installed")
}

/// Runs `sql` on the local PostgreSQL as the `postgres` user.
pub fn psql(db: &str, sql: &str) -> String {
    let out = run_psql(db, sql);
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// [`psql`] for SQL that may be refused: (whether it succeeded, stderr).
pub fn try_psql(db: &str, sql: &str) -> (bool, String) {
    let out = run_psql(db, sql);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub struct Worker {
    pub name: String,
    child: Child,
}

impl Worker {
    pub fn pid(&self) -> u32 {
        self.child.id()
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
    pub nats: NatsServer,
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
        let nats = NatsServer::start(dir.path());
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
                "data_dir = \"{}\"\n\n[nats]\nurl = \"{}\"\nprefix = \"{prefix}\"\nack_wait_secs = {}\nmax_deliver = {}\n\n[postgres]\nurl = \"host=127.0.0.1 port=5432 user=postgres dbname={db}\"\n\n[verify]\ntimeout_secs = {}\n{nets}",
                data.display(),
                nats.url(),
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
            db,
            prefix,
            config,
            workers: Vec::new(),
            spawned: 0,
            env: o.env,
        }
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
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.path());
        c
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

    /// The largest chunk file a network holds (a data chunk, never a tree).
    pub fn largest_chunk(&self, network: &str) -> PathBuf {
        Env::files_under(&self.network_dir(network).join("chunks"))
            .into_iter()
            .max_by_key(|f| std::fs::metadata(f).unwrap().len())
            .expect("the network holds chunks")
    }

    /// Starts `cairn serve STAGES` in the background, logging to logs/.
    pub fn serve(&mut self, stages: &[&str]) -> usize {
        self.spawned += 1;
        let name = format!("serve-{}-{}", stages.join("+"), self.spawned);
        let log = std::fs::File::create(self.logs_dir().join(format!("{name}.log"))).unwrap();
        let mut c = self.cmd();
        c.arg("serve")
            .args(stages)
            .stdout(log.try_clone().unwrap())
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

    pub fn worker(&mut self, i: usize) -> &mut Worker {
        &mut self.workers[i]
    }

    pub fn backup(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["backup", "--json"];
        a.extend_from_slice(args);
        let v = self.json(&a);
        assert_eq!(v["status"], "completed", "backup {args:?}: {v}");
        v
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

impl Drop for Env {
    fn drop(&mut self) {
        self.workers.clear();
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

/// Polls `f` until it returns `Some`, or panics after `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A file-by-file description of a tree: relative path → (kind, mode, mtime, sha256/target).
pub fn snapshot(root: &Path) -> std::collections::BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let md = std::fs::symlink_metadata(e.path()).unwrap();
        let desc = if md.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(e.path()).unwrap().display())
        } else if md.is_dir() {
            format!("dir {:o}", md.mode() & 0o7777)
        } else {
            let mut h = Sha256::new();
            let mut f = std::fs::File::open(e.path()).unwrap();
            std::io::copy(&mut f, &mut h).unwrap();
            format!(
                "file {:o} {} {} {}",
                md.mode() & 0o7777,
                md.len(),
                md.mtime(),
                hex::encode(h.finalize())
            )
        };
        out.insert(rel, desc);
    }
    out
}

/// Writes `n` bytes of random data.
pub fn random_file(path: &Path, n: usize) {
    use rand::RngCore;
    let mut f = std::fs::File::create(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(buf.len());
        rand::thread_rng().fill_bytes(&mut buf[..k]);
        f.write_all(&buf[..k]).unwrap();
        left -= k;
    }
}

/// Writes `n` bytes of compressible, line-oriented text seeded by `seed`.
pub fn text_file(path: &Path, n: usize, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0;
    let mut i = seed;
    while written < n {
        let line = format!(
            "{i:012} account={} balance={} note=lorem ipsum dolor sit amet\n",
            i * 7919 % 100_003,
            i % 977
        );
        f.write_all(line.as_bytes()).unwrap();
        written += line.len();
        i += 1;
    }
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

/// A child process that is killed if it is still running when dropped, so a
/// failing test leaves nothing behind.
pub struct Guarded(Option<Child>);

impl Guarded {
    pub fn spawn(mut cmd: Command) -> Guarded {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        Guarded(Some(cmd.spawn().expect("spawn")))
    }

    /// Waits for it to finish and returns what it printed.
    pub fn wait_output(mut self) -> Output {
        self.0
            .take()
            .expect("not yet waited")
            .wait_with_output()
            .unwrap()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts a test server script that prints `{"ready":true,"port":P}` on
/// stdout once it serves (arlocal, the pinning service), its stderr going to
/// `log`; returns it (killed when dropped) and the port.
fn start_until_ready(mut cmd: Command, log: &Path, what: &str) -> (Guarded, u64) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let guarded = Guarded(Some(child));
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("{what} exited; see {}", log.display()))
            .unwrap();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if v["ready"] == true {
                return (guarded, v["port"].as_u64().unwrap());
            }
        }
    }
}

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

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Options with this server as network `name` (secret in the environment).
    pub fn options(&self, name: &str) -> Options {
        Options {
            extra_toml: self.network_toml(name),
            env: vec![(
                format!("CAIRN_{}_SECRET_ACCESS_KEY", name.to_uppercase()),
                self.secret_key.clone(),
            )],
            ..Options::default()
        }
    }

    /// A `[[networks]]` entry for it (credentials go through the environment).
    pub fn network_toml(&self, name: &str) -> String {
        format!(
            "\n[[networks]]\nname = \"{name}\"\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"{}\"\naccess_key_id = \"{}\"\nkey_prefix = \"repo\"\n",
            self.endpoint(),
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

/// A network's configuration as a user writes it (`[[networks]]` keys),
/// through the same parser as `cairn.toml`.
pub fn network(v: serde_json::Value) -> cairn_config::NetworkConfig {
    let v = strip_nulls(v);
    cairn_config::NetworkConfig::try_from(v).unwrap_or_else(|e| panic!("{e}"))
}

/// `cfg` with some keys changed (`null` removes a key), parsed again: the
/// parser's error if the result is not a valid configuration.
pub fn with(
    cfg: &cairn_config::NetworkConfig,
    changes: serde_json::Value,
) -> Result<cairn_config::NetworkConfig, String> {
    let mut v = serde_json::to_value(cfg).unwrap();
    if let (Some(m), serde_json::Value::Object(c)) = (v.as_object_mut(), changes) {
        m.extend(c);
    }
    cairn_config::NetworkConfig::try_from(strip_nulls(v))
}

fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            serde_json::Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    }
}
