//! Processes the tests start: the `cairn` binary under test, free ports,
//! children killed when dropped, waiting for a condition.

use std::io::BufRead;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// A child process that is killed if it is still running when dropped, so a
/// failing test leaves nothing behind.
pub struct Guarded(pub Option<Child>);

impl Guarded {
    pub fn spawn(mut cmd: Command) -> Guarded {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        Guarded(Some(cmd.spawn().expect("spawn")))
    }

    /// Whether it has not exited yet.
    /// The process id, until it is waited for.
    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    pub fn running(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
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
pub fn start_until_ready(mut cmd: Command, log: &Path, what: &str) -> (Guarded, u64) {
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

/// One HTTP/1.0 request to a server on loopback: status, head and body.
pub fn http(port: u16, method: &str, path: &str) -> (u16, String, String) {
    http_with(port, method, path, &[], "")
}

/// As [`http`], with extra header lines (`Authorization: Bearer ...`) and
/// a body.
pub fn http_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}
