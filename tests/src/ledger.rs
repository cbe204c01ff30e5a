//! Reading a test deployment's ledger as an auditor would: its size, when
//! it has caught up, and every entry, as bytes or decoded.

use crate::postgres::psql;
use crate::process::wait_for;
use std::time::Duration;

pub fn ledger_size(db: &str) -> u64 {
    psql(db, "select size from ledger_head").parse().unwrap()
}

/// Waits until the ledger has caught up: two reads a moment apart agree.
pub fn settle(db: &str) {
    let mut last = 0;
    wait_for(30, "the ledger to settle", || {
        std::thread::sleep(Duration::from_millis(500));
        let now = ledger_size(db);
        let settled = now == last && now > 0;
        last = now;
        settled.then_some(())
    });
}

/// Every entry's exact bytes, in log order.
pub fn logged_entries(db: &str) -> Vec<Vec<u8>> {
    psql(
        db,
        "select string_agg(encode(entry, 'hex'), ',' order by seq) from ledger_entries",
    )
    .split(',')
    .filter(|h| !h.is_empty())
    .map(|h| hex::decode(h).unwrap())
    .collect()
}

/// Every entry, decoded, in log order.
pub fn logged_events(db: &str) -> Vec<cairn_events::Envelope> {
    logged_entries(db)
        .iter()
        .map(|b| cairn_events::decode(b, "ledger entry").unwrap())
        .collect()
}
