//! What a collection may mark, revive and delete on one network, decided
//! without touching it: pure functions over what was read, tested below.
//!
//! Two phases, as kopia and restic learned to do it. A chunk that no
//! backup's chunk list names is first *marked*, with the collector's time;
//! only a chunk still unreferenced once the grace period (longer than any
//! backup runs) has passed becomes *due*. Due chunks are condemned (ingest
//! then stops deduplicating against them), the references are read again,
//! and only chunks still condemned and still unreferenced are deleted; every
//! other due chunk is spared. A marked chunk that is referenced again is
//! revived at once.

use cairn_events::ChunkId;
use cairn_ledger::marks::Mark;
use std::collections::{HashMap, HashSet};

/// What the first phase decides for one network.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MarkPlan {
    /// Held, unreferenced and not marked yet: mark now.
    pub mark: Vec<ChunkId>,
    /// Marked but referenced again: the mark goes.
    pub revive: Vec<ChunkId>,
    /// Marked at least `grace` ago, still unreferenced, still held: sweep.
    pub due: Vec<ChunkId>,
    /// Marked, unreferenced, its grace period not over yet.
    pub waiting: u64,
    /// Marked and unreferenced but no longer on the network: an earlier
    /// sweep deleted it and died before recording that. Recorded now.
    pub gone: Vec<ChunkId>,
}

/// Decides the first phase. `now` and each mark's time are Unix seconds of
/// the collector's clock.
pub fn mark_plan(
    present: &HashSet<ChunkId>,
    referenced: &HashSet<ChunkId>,
    marks: &HashMap<ChunkId, Mark>,
    now: i64,
    grace_secs: u64,
) -> MarkPlan {
    let mut plan = MarkPlan::default();
    let due_before = now.saturating_sub(grace_secs as i64);
    for id in present {
        if !referenced.contains(id) && !marks.contains_key(id) {
            plan.mark.push(*id);
        }
    }
    for (id, m) in marks {
        if referenced.contains(id) {
            plan.revive.push(*id);
        } else if !present.contains(id) {
            plan.gone.push(*id);
        } else if m.marked_at <= due_before {
            plan.due.push(*id);
        } else {
            plan.waiting += 1;
        }
    }
    plan.mark.sort();
    plan.revive.sort();
    plan.due.sort();
    plan.gone.sort();
    plan
}

/// The second phase: of the `due` chunks, those still condemned in the
/// ledger (`marks_now`, read after condemning) and named by no chunk list
/// read after condemning (`referenced_now`) are deleted; the others are
/// spared (their marks go; still unreferenced, they are marked again next
/// time and wait a whole grace period more).
pub fn sweep_plan(
    due: &[ChunkId],
    referenced_now: &HashSet<ChunkId>,
    marks_now: &HashMap<ChunkId, Mark>,
) -> (Vec<ChunkId>, Vec<ChunkId>) {
    let mut delete = Vec::new();
    let mut spare = Vec::new();
    for id in due {
        let condemned = marks_now.get(id).is_some_and(|m| m.condemned);
        if condemned && !referenced_now.contains(id) {
            delete.push(*id);
        } else if marks_now.contains_key(id) {
            spare.push(*id);
        }
    }
    (delete, spare)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> ChunkId {
        ChunkId([b; 32])
    }

    fn mark(at: i64, condemned: bool) -> Mark {
        Mark {
            marked_at: at,
            condemned,
        }
    }

    #[test]
    fn unreferenced_chunks_are_marked_then_swept_only_after_the_grace_period() {
        let present: HashSet<_> = [id(1), id(2), id(3)].into();
        let referenced: HashSet<_> = [id(1)].into();
        let first = mark_plan(&present, &referenced, &HashMap::new(), 1000, 600);
        assert_eq!(first.mark, vec![id(2), id(3)]);
        assert!(first.due.is_empty() && first.revive.is_empty());

        let marks: HashMap<_, _> = [(id(2), mark(1000, false)), (id(3), mark(1000, false))].into();
        let early = mark_plan(&present, &referenced, &marks, 1599, 600);
        assert!(early.due.is_empty() && early.mark.is_empty(), "{early:?}");
        assert_eq!(early.waiting, 2);
        let late = mark_plan(&present, &referenced, &marks, 1600, 600);
        assert_eq!(late.due, vec![id(2), id(3)]);
    }

    #[test]
    fn a_marked_chunk_referenced_again_is_revived_never_due() {
        let present: HashSet<_> = [id(1), id(2)].into();
        // A backup deduplicated against chunk 2 after it was marked.
        let referenced: HashSet<_> = [id(2)].into();
        let marks: HashMap<_, _> = [(id(1), mark(0, false)), (id(2), mark(0, true))].into();
        let p = mark_plan(&present, &referenced, &marks, 10_000, 600);
        assert_eq!(p.revive, vec![id(2)]);
        assert_eq!(p.due, vec![id(1)]);
    }

    #[test]
    fn a_mark_whose_chunk_is_gone_is_recorded_as_deleted_unless_referenced() {
        let present: HashSet<_> = [id(1)].into();
        let referenced: HashSet<_> = [id(3)].into();
        let marks: HashMap<_, _> = [
            (id(1), mark(0, true)),
            (id(2), mark(0, true)),
            (id(3), mark(0, true)),
        ]
        .into();
        let p = mark_plan(&present, &referenced, &marks, 10_000, 600);
        assert_eq!(p.gone, vec![id(2)]);
        // Referenced but missing is damage for `health` and `repair`, not garbage.
        assert_eq!(p.revive, vec![id(3)]);
        assert_eq!(p.due, vec![id(1)]);
    }

    #[test]
    fn only_chunks_still_condemned_and_still_unreferenced_are_deleted() {
        let due = [id(1), id(2), id(3), id(4)];
        let referenced_now: HashSet<_> = [id(2)].into();
        let marks_now: HashMap<_, _> = [
            (id(1), mark(0, true)),
            (id(2), mark(0, true)),
            // Written again by a backup meanwhile: its mark went.
            // id(3) absent.
            // Not condemned (the ledger has not recorded it): not deleted.
            (id(4), mark(0, false)),
        ]
        .into();
        let (delete, spare) = sweep_plan(&due, &referenced_now, &marks_now);
        assert_eq!(delete, vec![id(1)]);
        assert_eq!(spare, vec![id(2), id(4)]);
    }
}
