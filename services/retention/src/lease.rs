//! One collector at a time per repository: a lease on the schedules stream
//! ([`Claims`]), taken by compare-and-set and renewed while the collection
//! runs. Two sweeps at once could each undo the other's safety steps (one
//! reviving what the other is deleting), so the second waits. A collector
//! killed mid-way stops renewing; its lease runs out after [`TTL`] and the
//! next collector takes over.

use cairn_bus::claims::Claims;
use cairn_bus::{Bus, BusError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "gc-lease";
/// A lease not renewed for this long is free.
pub const TTL: Duration = Duration::from_secs(30);
const RENEW_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Held {
    holder: String,
    /// Unix seconds (wall clock).
    until: i64,
}

/// A held lease; renewed in the background until dropped.
pub struct Lease {
    lost: Arc<AtomicBool>,
    renew: tokio::task::JoinHandle<()>,
    claims: Claims,
    holder: String,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Lease {
    /// Takes the lease for `holder`, waiting up to `wait` for another
    /// holder's to end or run out. `Ok(Err(holder))` names who still holds it.
    pub async fn acquire(
        bus: &Bus,
        holder: &str,
        wait: Duration,
    ) -> Result<Result<Lease, String>, BusError> {
        let claims = Claims::new(bus);
        let started = std::time::Instant::now();
        loop {
            match try_take(&claims, holder).await? {
                Ok(()) => {
                    let lost = Arc::new(AtomicBool::new(false));
                    let renew =
                        tokio::spawn(renew(claims.clone(), holder.to_string(), lost.clone()));
                    return Ok(Ok(Lease {
                        lost,
                        renew,
                        claims,
                        holder: holder.to_string(),
                    }));
                }
                Err(other) if started.elapsed() >= wait => return Ok(Err(other)),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// False once a renewal failed: another collector may have taken over.
    pub fn held(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
    }

    /// Gives the lease up, so the next collector need not wait for it to run out.
    pub async fn release(self) {
        self.renew.abort();
        if let Ok((Some(v), seq)) = self.claims.get(KEY).await {
            if serde_json::from_slice::<Held>(&v).is_ok_and(|h| h.holder == self.holder) {
                let free = Held {
                    holder: String::new(),
                    until: 0,
                };
                let _ = self
                    .claims
                    .swap(
                        KEY,
                        seq,
                        serde_json::to_vec(&free).unwrap_or_default().into(),
                    )
                    .await;
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

/// One attempt: `Err(holder)` while someone else holds it.
async fn try_take(claims: &Claims, holder: &str) -> Result<Result<(), String>, BusError> {
    let (value, seq) = claims.get(KEY).await?;
    if let Some(h) = value.and_then(|v| serde_json::from_slice::<Held>(&v).ok()) {
        if h.holder != holder && h.until > now() {
            return Ok(Err(h.holder));
        }
    }
    let mine = Held {
        holder: holder.to_string(),
        until: now() + TTL.as_secs() as i64,
    };
    let body = serde_json::to_vec(&mine).unwrap_or_default();
    if claims.swap(KEY, seq, body.into()).await? {
        Ok(Ok(()))
    } else {
        Ok(Err("another collector (it took the lease first)".into()))
    }
}

async fn renew(claims: Claims, holder: String, lost: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let ok = match claims.get(KEY).await {
            Ok((Some(v), seq)) => {
                let still_mine =
                    serde_json::from_slice::<Held>(&v).is_ok_and(|h| h.holder == holder);
                let mine = Held {
                    holder: holder.clone(),
                    until: now() + TTL.as_secs() as i64,
                };
                still_mine
                    && claims
                        .swap(
                            KEY,
                            seq,
                            serde_json::to_vec(&mine).unwrap_or_default().into(),
                        )
                        .await
                        .unwrap_or(false)
            }
            _ => false,
        };
        if !ok {
            tracing::warn!(%holder, "lost the collector lease; stopping before the next delete");
            lost.store(true, Ordering::SeqCst);
            return;
        }
    }
}
