//! Checking stored objects against their recorded digests, without any key:
//! is each object on a network, and do its bytes hash (SHA-256) to what was
//! recorded when it was sealed? Used by verify (after every backup), by
//! `cairn health` (sampled or full) and by `cairn repair` (to find what to
//! replace).

use cairn_networks::DynNetwork;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// When waiting for objects ends: an instant, which may move later by
/// however long `later` says (verify's, by the time JetStream was
/// unavailable: no store worker could be handed anything meanwhile, so
/// that time is not the networks' delay).
#[derive(Clone)]
pub struct Deadline {
    at: Instant,
    later: Option<Arc<dyn Fn() -> Duration + Send + Sync>>,
}

impl Deadline {
    pub fn moving(at: Instant, later: impl Fn() -> Duration + Send + Sync + 'static) -> Deadline {
        Deadline {
            at,
            later: Some(Arc::new(later)),
        }
    }

    /// The instant as it stands now.
    pub fn at(&self) -> Instant {
        self.at + self.later.as_ref().map_or(Duration::ZERO, |f| f())
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.at()
    }

    /// Time left, but at least `floor` (a single read's budget).
    pub fn left(&self, floor: Duration) -> Duration {
        self.at()
            .saturating_duration_since(Instant::now())
            .max(floor)
    }
}

impl From<Instant> for Deadline {
    fn from(at: Instant) -> Deadline {
        Deadline { at, later: None }
    }
}

/// An object to check: its path and expected SHA-256 (hex).
#[derive(Debug, Clone)]
pub struct Expected {
    pub path: String,
    pub sha256: String,
}

/// What one network holds of a set of objects.
#[derive(Debug, Default, Clone)]
pub struct Finding {
    pub network: String,
    /// Paths not found (or not readable after waiting).
    pub missing: Vec<String>,
    /// Paths whose bytes do not hash to their digest.
    pub corrupt: Vec<String>,
    /// Last error other than "not found", if any.
    pub last_error: String,
    /// Bytes read and the time it took (for throughput estimates).
    pub bytes_read: u64,
    pub read_time: Duration,
}

impl Finding {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.corrupt.is_empty()
    }

    /// The first problem, in words.
    pub fn detail(&self) -> String {
        if let Some(p) = self.corrupt.first() {
            format!(
                "{p} does not match its recorded SHA-256 ({} corrupt)",
                self.corrupt.len()
            )
        } else if let Some(p) = self.missing.first() {
            let why = if self.last_error.is_empty() {
                "not found".to_string()
            } else {
                self.last_error.clone()
            };
            format!(
                "{} objects missing or unreadable, e.g. {p} ({why})",
                self.missing.len()
            )
        } else {
            String::new()
        }
    }

    /// Measured read throughput in bytes per second, if anything was read.
    pub fn throughput(&self) -> Option<f64> {
        let s = self.read_time.as_secs_f64();
        (self.bytes_read > 0 && s > 0.0).then(|| self.bytes_read as f64 / s)
    }
}

const READS_IN_FLIGHT: usize = 8;

/// One read: Ok((digest matches, bytes)) or Err((not found, error)).
type Read = Result<(bool, u64), (bool, String)>;
const POLL: Duration = Duration::from_millis(200);

/// Reads every object in `objects` from `net` and compares digests. Objects
/// not there yet are polled until `deadline` (a store may lag behind); pass
/// `Instant::now()` to look once.
pub async fn check_network(
    net: DynNetwork,
    objects: Arc<Vec<Expected>>,
    deadline: impl Into<Deadline>,
) -> Finding {
    let deadline = deadline.into();
    let mut pending: Vec<usize> = (0..objects.len()).collect();
    let mut f = Finding {
        network: net.name().to_string(),
        ..Finding::default()
    };
    let started = std::time::Instant::now();
    loop {
        let results: Vec<(usize, Read)> = futures::stream::iter(pending.clone())
            .map(|i| {
                let net = net.clone();
                let objects = objects.clone();
                let deadline = &deadline;
                async move {
                    let want = &objects[i];
                    // No single read may outlast the deadline (a frozen network).
                    let budget = deadline.left(Duration::from_secs(2));
                    let read = match tokio::time::timeout(budget, net.get(&want.path)).await {
                        Ok(r) => r,
                        Err(_) => Err(cairn_networks::NetworkError::Io {
                            network: net.name().to_string(),
                            op: "get",
                            path: want.path.clone(),
                            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"),
                        }),
                    };
                    let got = match read {
                        Ok(bytes) => {
                            let len = bytes.len() as u64;
                            let sha = tokio::task::spawn_blocking(move || {
                                hex::encode(Sha256::digest(&bytes))
                            })
                            .await
                            .unwrap_or_default();
                            Ok((sha == want.sha256, len))
                        }
                        Err(e) => Err((e.is_not_found(), e.to_string())),
                    };
                    (i, got)
                }
            })
            .buffer_unordered(READS_IN_FLIGHT)
            .collect()
            .await;
        pending.clear();
        for (i, r) in results {
            match r {
                Ok((true, len)) => f.bytes_read += len,
                Ok((false, len)) => {
                    f.bytes_read += len;
                    f.corrupt.push(objects[i].path.clone());
                }
                Err((not_found, e)) => {
                    pending.push(i);
                    if !not_found {
                        f.last_error = e;
                    }
                }
            }
        }
        if pending.is_empty() || deadline.passed() {
            f.read_time = started.elapsed();
            pending.sort_unstable();
            f.missing = pending
                .into_iter()
                .map(|i| objects[i].path.clone())
                .collect();
            f.corrupt.sort();
            return f;
        }
        pending.sort_unstable();
        tokio::time::sleep(POLL).await;
    }
}

/// Checks every network in parallel.
pub async fn check_all(
    networks: &[DynNetwork],
    objects: Arc<Vec<Expected>>,
    deadline: impl Into<Deadline>,
) -> Vec<Finding> {
    let deadline = deadline.into();
    let checks = networks
        .iter()
        .map(|n| check_network(n.clone(), objects.clone(), deadline.clone()))
        .collect::<Vec<_>>();
    futures::future::join_all(checks).await
}

/// Which of `paths` (objects under `chunks/` or `packs/`) `net` does not list. One
/// listing instead of one read per object; a network that does not answer by
/// `deadline` holds none of them.
pub async fn absent(
    net: &DynNetwork,
    paths: &[String],
    deadline: impl Into<Deadline>,
) -> Vec<String> {
    if paths.is_empty() {
        return Vec::new();
    }
    let budget = deadline.into().left(Duration::from_secs(2));
    let mut listed = std::collections::HashSet::new();
    for dir in [crate::layout::CHUNKS_DIR, crate::layout::PACKS_DIR] {
        if !paths.iter().any(|p| p.starts_with(dir)) {
            continue;
        }
        if let Ok(Ok(list)) = tokio::time::timeout(budget, net.list(dir)).await {
            listed.extend(list);
        }
    }
    paths
        .iter()
        .filter(|p| !listed.contains(*p))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn a_moving_deadline_moves_by_what_it_is_told() {
        let base = Instant::now() + Duration::from_secs(10);
        let fixed: Deadline = base.into();
        assert_eq!(fixed.at(), base);
        assert!(!fixed.passed());
        let paused = Arc::new(AtomicU64::new(0));
        let p = paused.clone();
        let moving = Deadline::moving(base, move || Duration::from_secs(p.load(Ordering::SeqCst)));
        assert_eq!(moving.at(), base);
        paused.store(30, Ordering::SeqCst);
        assert_eq!(moving.at(), base + Duration::from_secs(30));
        assert!(moving.left(Duration::ZERO) > Duration::from_secs(35));
        let past: Deadline = Instant::now().into();
        assert!(past.passed());
        assert_eq!(past.left(Duration::from_secs(2)), Duration::from_secs(2));
    }
}
