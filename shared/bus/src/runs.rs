//! Which run of a backup's ingest counts. A backup whose ingest process
//! stopped renewing its lease (killed, frozen, its host cut off) is taken
//! over by another process as a new run, under a new data key; the old
//! one, if it is still alive somewhere, may yet send what it had under
//! way. Objects that a run writes under the backup's own names (manifest,
//! catalogue entry, chunk list pages) and its `backup.ingested` carry the
//! run, and whoever reads them passes over those of a run that is no longer
//! the backup's: store by the lease on the RUNS stream, which names the
//! current run before anything of it is sent; the ledger by the runs its
//! log records (`backup.started`), so that a rebuild agrees.

use crate::claims::Claims;
use crate::{Bus, BusError};
use cairn_events::{BackupId, KeyId};

/// Whether something of run `run` is to be passed over when `current` is
/// the backup's run. Anything without a run (older objects, a client's own
/// `--stdin` ingest) or of a backup with no run named counts.
pub fn superseded(current: Option<&KeyId>, run: Option<&KeyId>) -> bool {
    matches!((current, run), (Some(c), Some(r)) if c != r)
}

/// The run the RUNS stream's lease on `backup` names, if any.
pub async fn current(bus: &Bus, backup: &BackupId) -> Result<Option<KeyId>, BusError> {
    let (held, _) = crate::lease::read(&Claims::runs(bus), backup.as_str()).await?;
    Ok(held.and_then(|h| h.run).and_then(|r| KeyId::parse(&r).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_another_named_run_is_passed_over() {
        let (a, b) = (KeyId([1; 16]), KeyId([2; 16]));
        assert!(superseded(Some(&b), Some(&a)));
        assert!(!superseded(Some(&a), Some(&a)));
        assert!(!superseded(None, Some(&a)), "no run named: counts");
        assert!(!superseded(Some(&a), None), "no run of its own: counts");
    }
}
