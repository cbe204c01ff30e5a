//! Which running backups hold off a sweep, and which networks delete at
//! all: pure functions over what was read, tested below. Deleting data is
//! the most dangerous thing Cairn does, so each one answers "not now"
//! whenever a reference could be missing.

use cairn_ledger::query::Unfinished;

/// The backups that hold off a sweep: unfinished ones that may write to the
/// networks it deletes from (`deleting_from`) and were active within
/// `window_secs` (older ones were abandoned). A backup whose networks are
/// not resolved yet may go anywhere.
pub fn holding_off<'a>(
    unfinished: &'a [Unfinished],
    forgetting: &str,
    deleting_from: &[String],
    window_secs: u64,
) -> Vec<&'a Unfinished> {
    unfinished
        .iter()
        .filter(|u| u.backup_id != forgetting)
        .filter(|u| u.idle_secs <= window_secs)
        .filter(|u| u.networks.is_empty() || u.networks.iter().any(|n| deleting_from.contains(n)))
        .collect()
}

/// Where deleting happens and where the backup stays: networks that cannot
/// delete keep everything.
pub fn split_networks(networks: &[(String, bool)]) -> (Vec<String>, Vec<String>) {
    let mut delete = Vec::new();
    let mut keep = Vec::new();
    for (name, can_delete) in networks {
        if *can_delete {
            delete.push(name.clone());
        } else {
            keep.push(name.clone());
        }
    }
    (delete, keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unfinished(id: &str, networks: &[&str], idle_secs: u64) -> Unfinished {
        Unfinished {
            backup_id: id.into(),
            dataset: "d".into(),
            status: "running".into(),
            networks: networks.iter().map(|n| n.to_string()).collect(),
            idle_secs,
        }
    }

    #[test]
    fn a_running_backup_on_a_network_being_deleted_from_holds_off_forget() {
        let from = vec!["local".to_string(), "s3".to_string()];
        let u = vec![
            unfinished("a", &["s3"], 5),
            unfinished("b", &["arweave"], 5),
            unfinished("c", &[], 5),
            unfinished("d", &["local"], 7200),
            unfinished("gone", &["local"], 0),
        ];
        let ids: Vec<&str> = holding_off(&u, "gone", &from, 3600)
            .iter()
            .map(|u| u.backup_id.as_str())
            .collect();
        // b writes elsewhere, d was abandoned an hour ago, `gone` is the one forgotten.
        assert_eq!(ids, ["a", "c"]);
        assert!(
            holding_off(&u, "gone", &[], 3600).len() == 1,
            "only c may go anywhere"
        );
    }

    #[test]
    fn networks_that_cannot_delete_keep_everything() {
        let (delete, keep) = split_networks(&[("a".into(), true), ("perma".into(), false)]);
        assert_eq!(
            (delete, keep),
            (vec!["a".to_string()], vec!["perma".to_string()])
        );
    }
}
