//! Reading a log's stored hashes from somewhere slow (PostgreSQL) for
//! `tlog_tiles`, whose tree functions ask for hashes synchronously: a run
//! against the hashes at hand notes which ones it lacked; the caller fetches
//! exactly those and runs again. Which hashes a computation needs depends
//! only on sizes and indexes, never on hash values, so the second run needs
//! nothing more.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use tlog_tiles::tlog::{Error, Hash, HashReader};

/// Stored hashes by index (`tlog_tiles::tlog::stored_hash_index`).
pub type Known = HashMap<u64, Hash>;

/// A `HashReader` over `known` that records the indexes it did not have
/// (and answers zero hashes for them, so the run completes).
pub struct Recorder<'a> {
    known: &'a Known,
    missing: RefCell<BTreeSet<u64>>,
}

impl<'a> Recorder<'a> {
    pub fn new(known: &'a Known) -> Self {
        Recorder {
            known,
            missing: RefCell::new(BTreeSet::new()),
        }
    }

    /// The indexes the run asked for and `known` lacked.
    pub fn missing(&self) -> Vec<u64> {
        self.missing.borrow().iter().copied().collect()
    }
}

impl HashReader for Recorder<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Error> {
        Ok(indexes
            .iter()
            .map(|i| {
                self.known.get(i).copied().unwrap_or_else(|| {
                    self.missing.borrow_mut().insert(*i);
                    Hash([0; 32])
                })
            })
            .collect())
    }
}

/// Runs `f` against `known`; if it lacked hashes, fetches them with `fetch`
/// (which must return every index asked for) into `known` and runs again.
pub async fn run_with<T, F, Fut, E>(
    known: &mut Known,
    f: impl Fn(&Recorder) -> Result<T, Error>,
    fetch: F,
) -> Result<Result<T, Error>, E>
where
    F: Fn(Vec<u64>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(u64, Hash)>, E>>,
{
    for _ in 0..2 {
        let rec = Recorder::new(known);
        let out = f(&rec);
        let missing = rec.missing();
        if missing.is_empty() {
            return Ok(out);
        }
        for (i, h) in fetch(missing).await? {
            known.insert(i, h);
        }
    }
    Ok(Err(Error::InvalidInput(
        "the store did not return every hash asked for".into(),
    )))
}
