//! The local PostgreSQL, as the `postgres` user, through psql (as an
//! operator would query it).

use std::process::Command;

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

/// A PostgreSQL cluster of the test's own: its own data directory, port and
/// socket directory, run as the `postgres` user (the server refuses root),
/// stopped when dropped.
pub struct Cluster {
    pub data: std::path::PathBuf,
    pub port: u16,
    log: std::path::PathBuf,
}

/// Runs `program ARGS` as the `postgres` user with `env`.
pub fn as_postgres(program: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--", "env"]);
    for (k, v) in env {
        c.arg(format!("{k}={v}"));
    }
    c.arg(program).args(args);
    c.output().expect("runuser must be installed")
}

/// Gives `path` (and everything under it) to the `postgres` user.
pub fn chown_postgres(path: &std::path::Path) {
    let ok = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown {}", path.display());
}

/// A server program (`initdb`, `pg_ctl`): from `pg_config --bindir`, else
/// the newest `/usr/lib/postgresql/*/bin` (Debian's layout), else `PATH`.
fn server_bin(program: &str) -> String {
    if let Ok(o) = Command::new("pg_config").arg("--bindir").output() {
        let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if o.status.success() && std::path::Path::new(&dir).join(program).exists() {
            return format!("{dir}/{program}");
        }
    }
    let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin").join(program)))
        })
        .filter(|(_, p)| p.exists())
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, p)) => p.display().to_string(),
        None => program.to_string(),
    }
}

impl Cluster {
    /// `initdb` into `data` (made, and given to `postgres`), with `settings`
    /// appended to its `postgresql.conf`; not started.
    pub fn init(data: &std::path::Path, settings: &[(&str, &str)]) -> Cluster {
        std::fs::create_dir_all(data).unwrap();
        chown_postgres(data);
        let d = data.to_str().unwrap();
        let out = as_postgres(
            &server_bin("initdb"),
            &["-D", d, "--auth=trust", "-U", "postgres", "--no-sync"],
            &[],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = Cluster::at(data);
        let mut conf = String::from("\n# the test's own\n");
        for (k, v) in settings {
            conf.push_str(&format!("{k} = '{}'\n", v.replace('\'', "''")));
        }
        let path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&conf);
        std::fs::write(&path, text).unwrap();
        c
    }

    /// A cluster whose data directory is already there (a restored one).
    pub fn at(data: &std::path::Path) -> Cluster {
        Cluster {
            data: data.to_path_buf(),
            port: crate::process::free_port(),
            log: data.with_extension("log"),
        }
    }

    /// Starts the server on its own port and socket directory, with `env`
    /// (what its archive or restore command needs), and waits for it.
    pub fn start(&self, env: &[(&str, &str)]) {
        self.start_on(env, "127.0.0.1")
    }

    /// As [`start`](Self::start), listening on `addresses` (comma-separated).
    pub fn start_on(&self, env: &[(&str, &str)], addresses: &str) {
        let _ = std::fs::File::create(&self.log);
        chown_postgres(&self.log);
        let sockets = self.data.with_extension("sock");
        std::fs::create_dir_all(&sockets).unwrap();
        chown_postgres(&sockets);
        let opts = format!(
            "-p {} -k {} -c listen_addresses={addresses}",
            self.port,
            sockets.display()
        );
        let out = as_postgres(
            &server_bin("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                self.log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                "120",
                "start",
            ],
            env,
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
    }

    pub fn stop(&self) {
        let _ = as_postgres(
            &server_bin("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            &[],
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` (as `postgres`, over TCP) and returns its output.
    pub fn try_sql(&self, sql: &str) -> std::process::Output {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
            .output()
            .expect("psql must be installed")
    }

    pub fn sql(&self, sql: &str) -> String {
        let out = self.try_sql(sql);
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(
            &server_bin("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            &[],
        );
    }
}
