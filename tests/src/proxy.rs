//! A TCP proxy in front of a real server that counts the bytes the server
//! sends: what a client read from a network, measured outside the client.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct CountingProxy {
    pub port: u16,
    down: Arc<AtomicU64>,
}

impl CountingProxy {
    /// Listens on a free loopback port and forwards to `upstream`
    /// (`127.0.0.1:PORT`) for as long as the test runs.
    pub fn start(upstream: &str) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicU64::new(0));
        let counted = down.clone();
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(client, server, None));
                let counted = counted.clone();
                std::thread::spawn(move || pipe(s2, c2, Some(counted)));
            }
        });
        CountingProxy { port, down }
    }

    /// Bytes the server has sent to clients so far.
    pub fn bytes_down(&self) -> u64 {
        self.down.load(Ordering::SeqCst)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, count: Option<Arc<AtomicU64>>) {
    let mut buf = [0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(c) = &count {
                    c.fetch_add(n as u64, Ordering::SeqCst);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// What a [`FaultProxy`] does to what it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every byte, as it comes.
    None,
    /// At most `bytes_per_sec` through the proxy, all connections and
    /// both ways together: one slow link.
    Slow { bytes_per_sec: u64 },
    /// The first connection after the fault is set, and then every
    /// `every`-th, is cut after a random number of bytes (both ways
    /// together) below `within`.
    Cut { every: u64, within: u64 },
    /// Every `every`-th connection (counted from when the fault is set)
    /// gets an HTTP answer `status` (an S3 error document) to its first
    /// request, never reaching the server, and is closed; `every = 1`: all
    /// of them.
    Answer { status: u16, every: u64 },
    /// One byte flipped in the middle of every HTTP body of at least
    /// `min_body` bytes: in what the client sends (`up`), or in what it
    /// reads back.
    Corrupt { up: bool, min_body: usize },
}

/// A TCP proxy of the tests' own in front of a real server, injecting a
/// [`Fault`] that can be changed while a backup runs. A change also cuts
/// every connection open at that moment, so a client's pooled connections
/// meet the new fault too. Counts what it did.
pub struct FaultProxy {
    pub port: u16,
    state: Arc<std::sync::Mutex<ProxyState>>,
    counts: Arc<FaultCounts>,
}

/// What a [`FaultProxy`] did so far.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub connections: AtomicU64,
    pub cut: AtomicU64,
    pub answered: AtomicU64,
    pub corrupted: AtomicU64,
    /// When the slow link is next free.
    link_free_at: std::sync::Mutex<Option<std::time::Instant>>,
    /// The slow link's speed set since it opened ([`FaultProxy::set_speed`]), if any.
    speed: AtomicU64,
}

impl FaultCounts {
    /// Waits until `n` bytes have had their turn on a link of
    /// `bytes_per_sec` shared by every connection.
    fn through_link(&self, n: usize, bytes_per_sec: u64) {
        let bytes_per_sec = match self.speed.load(Ordering::SeqCst) {
            0 => bytes_per_sec,
            set => set,
        };
        let takes = std::time::Duration::from_secs_f64(n as f64 / bytes_per_sec.max(1) as f64);
        let done = {
            let mut at = self.link_free_at.lock().unwrap();
            let now = std::time::Instant::now();
            let start = at.filter(|t| *t > now).unwrap_or(now);
            *at = Some(start + takes);
            start + takes
        };
        std::thread::sleep(done.saturating_duration_since(std::time::Instant::now()));
    }
}

struct ProxyState {
    fault: Fault,
    open: Vec<TcpStream>,
    /// Connections accepted since the fault was set.
    since_set: u64,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`
    /// (`127.0.0.1:PORT`) for as long as the test runs.
    pub fn start(upstream: &str, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(std::sync::Mutex::new(ProxyState {
            fault,
            open: Vec::new(),
            since_set: 0,
        }));
        let counts = Arc::new(FaultCounts::default());
        let (st, ct) = (state.clone(), counts.clone());
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                ct.connections.fetch_add(1, Ordering::SeqCst);
                let (fault, n) = {
                    let mut s = st.lock().unwrap();
                    s.open.retain(|c| c.peer_addr().is_ok());
                    if let Ok(c) = client.try_clone() {
                        s.open.push(c);
                    }
                    s.since_set += 1;
                    (s.fault, s.since_set)
                };
                let ct = ct.clone();
                let upstream = upstream.clone();
                std::thread::spawn(move || serve(client, &upstream, fault, n, &ct));
            }
        });
        FaultProxy {
            port,
            state,
            counts,
        }
    }

    /// From now on, `fault`; every connection open now is cut.
    pub fn set(&self, fault: Fault) {
        let mut s = self.state.lock().unwrap();
        s.fault = fault;
        s.since_set = 0;
        for c in s.open.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// A slow link's new speed, for the connections open now too: unlike
    /// [`set`](Self::set), nothing is cut.
    pub fn set_speed(&self, bytes_per_sec: u64) {
        self.counts.speed.store(bytes_per_sec, Ordering::SeqCst);
    }

    pub fn counts(&self) -> &FaultCounts {
        &self.counts
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn serve(client: TcpStream, upstream: &str, fault: Fault, n: u64, counts: &Arc<FaultCounts>) {
    if let Fault::Answer { status, every } = fault {
        if n.is_multiple_of(every.max(1)) {
            counts.answered.fetch_add(1, Ordering::SeqCst);
            return answer(client, status);
        }
    }
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    // Bytes this connection may still carry (both ways) before it is cut:
    // the first connection after the fault was set, within its request's
    // head (so a cut happens however little the client sends), then every
    // `every`-th, anywhere below `within`.
    let budget = match fault {
        Fault::Cut { .. } if n == 1 => Some(Arc::new(AtomicU64::new(rand::random::<u64>() % 64))),
        Fault::Cut { every, within } if n.is_multiple_of(every.max(1)) => Some(Arc::new(
            AtomicU64::new(rand::random::<u64>() % within.max(1)),
        )),
        _ => None,
    };
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (b2, k2) = (budget.clone(), counts.clone());
    let (up_fault, down_fault) = match fault {
        Fault::Corrupt { up: true, .. } => (fault, Fault::None),
        Fault::Corrupt { up: false, .. } => (Fault::None, fault),
        f => (f, f),
    };
    std::thread::spawn(move || faulty_pipe(client, server, up_fault, b2, &k2));
    faulty_pipe(s2, c2, down_fault, budget, counts);
}

/// An S3-style error answer to the first request on `client`.
fn answer(mut client: TcpStream, status: u16) {
    let _ = client.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 1 << 16 {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let (reason, code) = match status {
        503 => ("Service Unavailable", "SlowDown"),
        500 => ("Internal Server Error", "InternalError"),
        _ => ("Error", "InternalError"),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test's proxy</Message></Error>"
    );
    let _ = write!(
        client,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.shutdown(Shutdown::Write);
    // Let the client finish sending what it had begun, then close.
    while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
}

/// Where a corrupting pipe is in the HTTP messages it carries.
struct Http {
    head: Vec<u8>,
    /// Body bytes still to pass, and the offset (from the body's end) of
    /// the byte to flip, if this body is flipped.
    body_left: usize,
    flip_at_left: Option<usize>,
}

impl Http {
    /// Passes `data` on, flipping one byte in the middle of each body of at
    /// least `min_body` bytes (framed by Content-Length).
    fn corrupt(&mut self, data: &mut [u8], min_body: usize, counts: &FaultCounts) {
        let mut i = 0;
        while i < data.len() {
            if self.body_left > 0 {
                let take = self.body_left.min(data.len() - i);
                if let Some(at) = self.flip_at_left {
                    if at <= self.body_left && at > self.body_left - take {
                        data[i + (self.body_left - at)] ^= 0x5a;
                        counts.corrupted.fetch_add(1, Ordering::SeqCst);
                        self.flip_at_left = None;
                    }
                }
                self.body_left -= take;
                i += take;
                continue;
            }
            self.head.push(data[i]);
            i += 1;
            if self.head.ends_with(b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.head).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                self.head.clear();
                self.body_left = len;
                self.flip_at_left = (len >= min_body && len > 0).then(|| len.div_ceil(2));
            } else if self.head.len() > 1 << 16 {
                self.head.clear();
            }
        }
    }
}

fn faulty_pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    fault: Fault,
    budget: Option<Arc<AtomicU64>>,
    counts: &FaultCounts,
) {
    let mut buf = vec![0u8; 16 << 10];
    let mut http = Http {
        head: Vec::new(),
        body_left: 0,
        flip_at_left: None,
    };
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(b) = &budget {
            let left = b.load(Ordering::SeqCst);
            if (n as u64) >= left {
                let _ = to.write_all(&buf[..left as usize]);
                b.store(0, Ordering::SeqCst);
                counts.cut.fetch_add(1, Ordering::SeqCst);
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
            b.fetch_sub(n as u64, Ordering::SeqCst);
        }
        match fault {
            Fault::Slow { bytes_per_sec } => counts.through_link(n, bytes_per_sec),
            Fault::Corrupt { min_body, .. } => http.corrupt(&mut buf[..n], min_body, counts),
            _ => {}
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_is_flipped_in_the_middle_of_each_large_body() {
        let counts = FaultCounts::default();
        let mut h = Http {
            head: Vec::new(),
            body_left: 0,
            flip_at_left: None,
        };
        let body = vec![b'a'; 100];
        let mut msg = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
        msg.extend_from_slice(&body);
        msg.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
        let head = msg.len() - 3 - 100 - 38;
        // Fed in pieces, as reads come.
        let mut data = msg.clone();
        for piece in data.chunks_mut(7) {
            h.corrupt(piece, 10, &counts);
        }
        let diff: Vec<usize> = (0..msg.len()).filter(|i| msg[*i] != data[*i]).collect();
        assert_eq!(
            diff,
            vec![head + 50],
            "the middle byte of the first body only"
        );
        assert_eq!(counts.corrupted.load(Ordering::SeqCst), 1);
    }
}
