//! Counting what this process asks of each network: requests by kind and
//! bytes each way. Every network [`open`](crate::open) builds counts into
//! one table per process, so nothing has to thread a counter through; the
//! process records what [`take`] returns in the ledger (`network.traffic`),
//! where `cairn cost` reads egress and requests from.
//!
//! Counts are of calls to the [`Network`](crate::Network) interface (an
//! adapter may make more than one HTTP request for one of them, as an S3
//! write that first asks whether the object is there).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One network's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub gets: u64,
    pub puts: u64,
    pub heads: u64,
    pub lists: u64,
    pub deletes: u64,
    pub locks: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl Counts {
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }

    fn add(&mut self, o: &Counts) {
        self.gets += o.gets;
        self.puts += o.puts;
        self.heads += o.heads;
        self.lists += o.lists;
        self.deletes += o.deletes;
        self.locks += o.locks;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
    }
}

static TABLE: Mutex<BTreeMap<String, Counts>> = Mutex::new(BTreeMap::new());

tokio::task_local! {
    static UNMETERED: ();
}

/// Runs `f` without counting what it asks of the networks. For the ledger's
/// own copies of its signed checkpoints: counting them would record
/// traffic, which grows the ledger, which signs another checkpoint, whose
/// copies would be counted again, for ever on an idle system.
pub async fn unmetered<F: std::future::Future>(f: F) -> F::Output {
    UNMETERED.scope((), f).await
}

/// Adds to `network`'s counts.
pub(crate) fn count(network: &str, c: Counts) {
    if UNMETERED.try_with(|_| ()).is_ok() {
        return;
    }
    let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    match t.get_mut(network) {
        Some(have) => have.add(&c),
        None => {
            t.insert(network.to_string(), c);
        }
    }
}

/// The counts since the last `take`, per network, and zero from here on.
pub fn take() -> BTreeMap<String, Counts> {
    let mut t = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    std::mem::take(&mut *t)
        .into_iter()
        .filter(|(_, c)| !c.is_empty())
        .collect()
}

/// Whether nothing was counted since the last `take`.
pub fn is_empty() -> bool {
    TABLE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .all(Counts::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the table is the process's, shared by every test thread.
    #[tokio::test]
    async fn counts_add_up_per_network_take_empties_the_table_and_unmetered_work_is_not_counted() {
        count(
            "m-a",
            Counts {
                gets: 1,
                bytes_read: 10,
                ..Default::default()
            },
        );
        count(
            "m-a",
            Counts {
                gets: 2,
                bytes_read: 5,
                ..Default::default()
            },
        );
        count(
            "m-b",
            Counts {
                puts: 1,
                ..Default::default()
            },
        );
        count("m-c", Counts::default());
        unmetered(async {
            count(
                "m-u",
                Counts {
                    puts: 1,
                    ..Default::default()
                },
            )
        })
        .await;
        assert!(!is_empty());
        let t = take();
        assert_eq!(t["m-a"].gets, 3);
        assert_eq!(t["m-a"].bytes_read, 15);
        assert_eq!(t["m-b"].puts, 1);
        assert!(!t.contains_key("m-c"), "an empty count is not reported");
        assert!(!t.contains_key("m-u"), "unmetered work is not counted");
        assert!(take().is_empty() && is_empty());
    }
}
