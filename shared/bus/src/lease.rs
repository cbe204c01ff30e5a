//! Leases on a [`Claims`] key: one holder at a time, taken by
//! compare-and-set and renewed in the background while its work runs. A
//! holder killed, frozen or cut off stops renewing; its lease runs out after
//! its time to live and the next holder takes over. A holder whose renewal
//! is refused (another wrote the key) has lost it ([`Lease::lost`]). One
//! that cannot reach the server either gives up after its `patience` (the
//! collector: at once, since two sweeps must never overlap) or keeps
//! working (ingest: JetStream away for everyone is no reason to drop a
//! backup, and what a run sends after another took over is passed over).
//!
//! Used by the collector (one sweep at a time per repository) and by ingest
//! (one process at a time per backup, the lease naming the run whose
//! objects count: see `cairn_ingest`). The expiry is wall-clock time, so
//! hosts' clocks must agree to well within the time to live (NTP).

use crate::claims::Claims;
use crate::BusError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::sync::Mutex;

/// What a lease key holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Who holds it; empty once given up.
    pub holder: String,
    /// Unix seconds (wall clock) until which it is held.
    pub until: i64,
    /// What the holder's work is called (ingest: the run's data key),
    /// kept when the lease is given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

impl Held {
    /// Whether someone other than `holder` holds it at `now`.
    pub fn held_by_another(&self, holder: &str, now: i64) -> bool {
        !self.holder.is_empty() && self.holder != holder && self.until > now
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What `key` holds, if anything readable.
pub async fn read(claims: &Claims, key: &str) -> Result<(Option<Held>, u64), BusError> {
    let (value, seq) = claims.get(key).await?;
    Ok((value.and_then(|v| serde_json::from_slice(&v).ok()), seq))
}

/// A held lease; renewed in the background until released or dropped.
pub struct Lease {
    /// What the key held when this lease was taken.
    pub previous: Option<Held>,
    claims: Claims,
    key: String,
    state: Arc<Mutex<State>>,
    lost: watch::Receiver<bool>,
    renew: tokio::task::JoinHandle<()>,
}

struct State {
    held: Held,
    ttl: Duration,
    /// The key's sequence after our last write.
    seq: u64,
}

impl Lease {
    /// One attempt to take `key` for `holder` for `ttl`: `Err(held)` names
    /// who holds it.
    pub async fn try_take(
        claims: &Claims,
        key: &str,
        holder: &str,
        ttl: Duration,
        patience: Option<Duration>,
    ) -> Result<Result<Lease, Held>, BusError> {
        let (current, seq) = read(claims, key).await?;
        if let Some(h) = &current {
            if h.held_by_another(holder, now()) {
                return Ok(Err(h.clone()));
            }
        }
        let mine = Held {
            holder: holder.to_string(),
            until: now() + ttl.as_secs() as i64,
            run: None,
        };
        let Some(seq) = claims.swap_to(key, seq, body(&mine)).await? else {
            // Another writer came first: read who.
            let (current, _) = read(claims, key).await?;
            return Ok(Err(current.unwrap_or(Held {
                holder: "another process (it wrote first)".into(),
                until: 0,
                run: None,
            })));
        };
        let state = Arc::new(Mutex::new(State {
            held: mine,
            ttl,
            seq,
        }));
        let (tx, lost) = watch::channel(false);
        let renew = tokio::spawn(renew(
            claims.clone(),
            key.to_string(),
            state.clone(),
            tx,
            patience,
        ));
        Ok(Ok(Lease {
            previous: current,
            claims: claims.clone(),
            key: key.to_string(),
            state,
            lost,
            renew,
        }))
    }

    /// Takes `key`, waiting up to `wait` for another holder's lease to end
    /// or run out; `Ok(Err(held))` names who still holds it.
    pub async fn acquire(
        claims: &Claims,
        key: &str,
        holder: &str,
        ttl: Duration,
        patience: Option<Duration>,
        wait: Duration,
    ) -> Result<Result<Lease, Held>, BusError> {
        let started = Instant::now();
        loop {
            match Lease::try_take(claims, key, holder, ttl, patience).await? {
                Ok(lease) => return Ok(Ok(lease)),
                Err(other) if started.elapsed() >= wait => return Ok(Err(other)),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// False once the lease may have passed to another holder.
    pub fn held(&self) -> bool {
        !*self.lost.borrow()
    }

    /// Resolves once the lease is lost (at once if it already is).
    pub async fn lost(&self) {
        let mut rx = self.lost.clone();
        let _ = rx.wait_for(|lost| *lost).await;
    }

    /// Names the run this lease covers, for those who check whether an
    /// object comes from it. Returns the sequence of the write that named
    /// it, which orders the runs of a key (a later holder's write comes
    /// after every write of an earlier one), or `None` if the lease was
    /// lost meanwhile.
    pub async fn set_run(&self, run: &str) -> Result<Option<u64>, BusError> {
        // Held across the write, so that a renewal does not race it.
        let mut s = self.state.lock().await;
        if !self.held() {
            return Ok(None);
        }
        let mut held = s.held.clone();
        held.run = Some(run.to_string());
        held.until = now() + s.ttl.as_secs() as i64;
        let Some(seq) = self.claims.swap_to(&self.key, s.seq, body(&held)).await? else {
            return Ok(None);
        };
        s.held = held;
        s.seq = seq;
        Ok(Some(seq))
    }

    /// Gives the lease up, so the next holder need not wait for it to run
    /// out; what it names as its run stays.
    pub async fn release(self) {
        self.renew.abort();
        let s = self.state.lock().await;
        let mut held = s.held.clone();
        held.holder = String::new();
        held.until = 0;
        let _ = self.claims.swap(&self.key, s.seq, body(&held)).await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

fn body(h: &Held) -> bytes::Bytes {
    serde_json::to_vec(h).unwrap_or_default().into()
}

/// Renews every third of the time to live. A write refused (another wrote
/// the key) loses the lease at once; failing to reach the server loses it
/// once `patience` passed since the last renewal (never, without one).
async fn renew(
    claims: Claims,
    key: String,
    state: Arc<Mutex<State>>,
    lost: watch::Sender<bool>,
    patience: Option<Duration>,
) {
    let ttl = state.lock().await.ttl;
    let mut renewed = Instant::now();
    loop {
        let pause = (ttl / 3).saturating_sub(renewed.elapsed());
        tokio::time::sleep(pause.max(Duration::from_millis(100))).await;
        let mut s = state.lock().await;
        let mut held = s.held.clone();
        held.until = now() + ttl.as_secs() as i64;
        let attempt = tokio::time::timeout(ttl / 6, claims.swap_to(&key, s.seq, body(&held))).await;
        match attempt {
            Ok(Ok(Some(seq))) => {
                s.held = held;
                s.seq = seq;
                renewed = Instant::now();
            }
            Ok(Ok(None)) => {
                tracing::warn!(%key, holder = %held.holder, "lease taken by another; giving the work up");
                let _ = lost.send(true);
                return;
            }
            Ok(Err(_)) | Err(_) if patience.is_some_and(|p| renewed.elapsed() >= p) => {
                tracing::warn!(%key, holder = %held.holder, "lease not renewed in time; giving the work up");
                let _ = lost.send(true);
                return;
            }
            Ok(Err(e)) => tracing::debug!(%key, error = %e, "lease renewal failed; trying again"),
            Err(_) => tracing::debug!(%key, "lease renewal timed out; trying again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_another_holders_only_until_it_runs_out_or_is_given_up() {
        let h = Held {
            holder: "a".into(),
            until: 100,
            run: None,
        };
        assert!(h.held_by_another("b", 99));
        assert!(!h.held_by_another("b", 100), "run out");
        assert!(
            !h.held_by_another("a", 99),
            "its own holder may take it again"
        );
        let given_up = Held {
            holder: String::new(),
            ..h
        };
        assert!(!given_up.held_by_another("b", 0));
    }

    #[test]
    fn a_lease_written_before_runs_were_named_still_reads() {
        let old: Held = serde_json::from_str(r#"{"holder":"x","until":5}"#).unwrap();
        assert_eq!(old.run, None);
    }
}
