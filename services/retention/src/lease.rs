//! One collector at a time per repository: a lease on the schedules stream
//! (`cairn_bus::lease`), taken by compare-and-set and renewed while the
//! collection runs. Two sweeps at once could each undo the other's safety
//! steps (one reviving what the other is deleting), so the second waits. A
//! collector killed mid-way stops renewing; its lease runs out after
//! [`TTL`] and the next collector takes over.

use cairn_bus::claims::Claims;
use cairn_bus::{Bus, BusError};
use std::time::Duration;

const KEY: &str = "gc-lease";
/// A lease not renewed for this long is free.
pub const TTL: Duration = Duration::from_secs(30);

/// A held lease; renewed in the background until dropped.
pub struct Lease(cairn_bus::lease::Lease);

impl Lease {
    /// Takes the lease for `holder`, waiting up to `wait` for another
    /// holder's to end or run out. `Ok(Err(holder))` names who still holds it.
    pub async fn acquire(
        bus: &Bus,
        holder: &str,
        wait: Duration,
    ) -> Result<Result<Lease, String>, BusError> {
        let claims = Claims::new(bus);
        Ok(
            // Any failed renewal stops the sweep: another collector may
            // take over once the lease runs out.
            cairn_bus::lease::Lease::acquire(&claims, KEY, holder, TTL, Some(Duration::ZERO), wait)
                .await?
                .map(Lease)
                .map_err(|held| held.holder),
        )
    }

    /// False once a renewal failed: another collector may have taken over.
    pub fn held(&self) -> bool {
        self.0.held()
    }

    /// Gives the lease up, so the next collector need not wait for it to run out.
    pub async fn release(self) {
        self.0.release().await
    }
}
