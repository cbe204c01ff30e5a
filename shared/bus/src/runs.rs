//! Which run of a backup's ingest counts. A backup whose ingest process
//! stopped renewing its lease (killed, frozen, its host cut off) is taken
//! over by another process as a new run, under a new data key; the old
//! one, if it is still alive somewhere, may yet send what it had under
//! way. Objects that a run writes under the backup's own names (manifest,
//! catalogue entry, chunk list pages) and its `backup.ingested` carry the
//! run, and whoever reads them passes over those of a run that is no longer
//! the backup's: store and verify by the lease on the RUNS stream, which
//! names the current run before anything of it is sent; the ledger by the
//! latest run its log names, so that a rebuild agrees. The ledger may read
//! a later run's objects before that run's `backup.started` (a message
//! handed to a host that was cut off comes again only once its delivery
//! times out), so it goes by the runs' order, never by what came last.

use crate::claims::Claims;
use crate::{Bus, BusError};
use cairn_events::{BackupId, KeyId, Run};

/// Whether something of run `run` is to be passed over when the lease names
/// `current` as the backup's run. Anything without a run (older objects, a
/// client's own `--stdin` ingest) or of a backup with no run named counts.
pub fn not_current(current: Option<&KeyId>, run: Option<&Run>) -> bool {
    matches!((current, run), (Some(c), Some(r)) if *c != r.key)
}

/// Whether something of run `run` is to be passed over when `latest` is the
/// latest run of its backup read so far: only if a later run was seen.
pub fn superseded(latest: Option<&Run>, run: Option<&Run>) -> bool {
    matches!((latest, run), (Some(l), Some(r)) if l.supersedes(r))
}

/// The later of two runs (the one already known on a tie).
pub fn latest(known: Option<Run>, seen: Option<Run>) -> Option<Run> {
    match (known, seen) {
        (Some(k), Some(s)) if s.supersedes(&k) => Some(s),
        (None, s) => s,
        (k, _) => k,
    }
}

/// The run the RUNS stream's lease on `backup` names, if any.
pub async fn current(bus: &Bus, backup: &BackupId) -> Result<Option<KeyId>, BusError> {
    let (held, _) = crate::lease::read(&Claims::runs(bus), backup.as_str()).await?;
    Ok(held.and_then(|h| h.run).and_then(|r| KeyId::parse(&r).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(k: u8, order: u64) -> Run {
        Run {
            key: KeyId([k; 16]),
            order,
        }
    }

    #[test]
    fn only_a_run_other_than_the_one_the_lease_names_is_passed_over() {
        let (a, b) = (run(1, 5), run(2, 9));
        assert!(not_current(Some(&b.key), Some(&a)));
        assert!(
            not_current(Some(&a.key), Some(&b)),
            "the lease is the truth, whatever the order"
        );
        assert!(!not_current(Some(&a.key), Some(&a)));
        assert!(!not_current(None, Some(&a)), "no run named: counts");
        assert!(
            !not_current(Some(&a.key), None),
            "no run of its own: counts"
        );
    }

    #[test]
    fn only_an_earlier_run_than_the_latest_seen_is_passed_over() {
        let (early, late) = (run(1, 5), run(2, 9));
        assert!(superseded(Some(&late), Some(&early)));
        assert!(
            !superseded(Some(&early), Some(&late)),
            "a later run's objects read before its backup.started count"
        );
        assert!(!superseded(Some(&late), Some(&late)));
        assert!(!superseded(None, Some(&early)), "nothing seen yet: counts");
        assert!(!superseded(Some(&late), None), "no run of its own: counts");
    }

    #[test]
    fn the_latest_run_does_not_depend_on_the_order_they_are_read_in() {
        let runs = [run(1, 5), run(2, 9), run(3, 7)];
        let fold = |order: &[usize]| order.iter().fold(None, |l, &i| latest(l, Some(runs[i])));
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]] {
            assert_eq!(fold(&order), Some(runs[1]), "read in order {order:?}");
        }
        assert_eq!(latest(Some(runs[0]), None), Some(runs[0]));
    }
}
