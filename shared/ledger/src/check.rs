//! `cairn audit verify`: re-reads the whole log and checks, for every entry,
//! that its sequence number follows the previous one, that the stored leaf
//! hash is the hash of the stored bytes, that the chain hash links it to its
//! predecessor, and that the bytes decode to the event the row claims; then
//! that the head matches the last entry; then that the stored Merkle tree
//! (`ledger_tree`) and the head's tree root are exactly what the entries'
//! bytes give. The first bad entry (or tree hash) is named.
//!
//! Those checks catch edits that leave the rest of the database alone. A
//! database owner can rewrite entries, hashes, tree and head together; what
//! they cannot rewrite is what left the database: the signed checkpoints
//! (on the AUDIT stream, on every network, in the signer's state file) and
//! the copy of every entry on `audit.entry`. [`Witnesses`] carries those in;
//! the log must have each signed root at its size, and every entry must be
//! the bytes published for its place, which names the first rewritten one.
use crate::chain;
use cairn_events::{decode, Envelope};
use cairn_tlog::{split_stored_hash_index, stored_hashes_for_record_hash, tree_hash, Hash};
use futures::TryStreamExt;
use serde::Serialize;
use std::collections::BTreeMap;
use tlog_tiles::tlog::HashReader;
use tokio_postgres::Client;

#[derive(Debug, Clone, Serialize)]
pub struct LedgerReport {
    pub entries: u64,
    /// Chain hash after the last entry (hex).
    pub chain_hash: String,
    /// RFC 6962 root over all entries (hex).
    pub merkle_root: String,
    /// Empty when the ledger is intact.
    pub problems: Vec<String>,
    /// Signed checkpoints the log was held against, and where each was found.
    pub checkpoints: Vec<CheckedCheckpoint>,
    /// How many entries were compared with their copy on `audit.entry`.
    pub published_entries_compared: u64,
    /// What could not be checked, and why (not problems with the log).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckedCheckpoint {
    pub source: String,
    pub size: u64,
    pub ok: bool,
}

/// Copies of the log kept outside PostgreSQL, gathered by the caller.
#[derive(Debug, Default)]
pub struct Witnesses {
    /// The log's public key (a signed-note verifier key). Without it no
    /// checkpoint is trusted, and `notes` says so.
    pub key: Option<String>,
    /// Signed checkpoints, each with where it was found.
    pub checkpoints: Vec<(String, Vec<u8>)>,
    /// Leaf hashes of the entries re-published on `audit.entry`, by seq.
    pub published: BTreeMap<u64, [u8; 32]>,
    /// Why a source could not be read.
    pub notes: Vec<String>,
}

/// The rows of `sql` as they arrive: a ledger of millions of entries is
/// checked without holding it in memory.
async fn streamed(
    c: &Client,
    sql: &str,
) -> Result<tokio_postgres::RowStream, tokio_postgres::Error> {
    c.query_raw(sql, std::iter::empty::<i64>()).await
}

pub async fn verify(
    c: &Client,
    mut witnesses: Witnesses,
) -> Result<LedgerReport, tokio_postgres::Error> {
    let mut problems = Vec::new();
    let mut prev = vec![0u8; 32];
    let mut expected_seq: i64 = 1;
    let mut leaves: Vec<[u8; 32]> = Vec::new();
    let rows = streamed(
        c,
        "SELECT seq, event_id, kind, backup_id, entry, leaf_hash, chain_hash FROM ledger_entries ORDER BY seq",
    )
    .await?;
    futures::pin_mut!(rows);
    while let Some(r) = rows.try_next().await? {
        let seq: i64 = r.get(0);
        let event_id: String = r.get(1);
        let kind: String = r.get(2);
        let backup_id: String = r.get(3);
        let entry: Vec<u8> = r.get(4);
        let stored_leaf: Vec<u8> = r.get(5);
        let stored_chain: Vec<u8> = r.get(6);
        if problems.len() >= 20 {
            break;
        }
        if seq != expected_seq {
            problems.push(format!(
                "entry {expected_seq}: missing (next entry found is {seq}): an entry was deleted or renumbered"
            ));
        }
        let leaf = cairn_tlog::leaf_hash(&entry).0;
        if stored_leaf != leaf {
            problems.push(format!("entry {seq} ({kind} {event_id}): its bytes do not hash to its stored leaf hash: the entry was edited"));
        }
        let next = chain(&prev, &leaf);
        if stored_chain != next {
            problems.push(format!(
                "entry {seq} ({kind} {event_id}): chain hash does not follow from entry {}: entries were removed, reordered or rewritten",
                seq - 1
            ));
        }
        match decode::<Envelope>(&entry, "ledger entry") {
            Ok(env) => {
                if env.id.as_str() != event_id
                    || env.event.kind() != kind
                    || env.backup_id.as_str() != backup_id
                {
                    problems.push(format!(
                        "entry {seq}: row says {kind} {event_id} of {backup_id}, its bytes say {} {} of {}",
                        env.event.kind(),
                        env.id,
                        env.backup_id
                    ));
                }
            }
            Err(e) => problems.push(format!("entry {seq}: {e}")),
        }
        leaves.push(leaf);
        // Continue from the stored chain so one bad row is reported once.
        prev = stored_chain;
        expected_seq = seq + 1;
    }
    let head = c
        .query_one(
            "SELECT size, chain_hash, tree_root FROM ledger_head WHERE id = 1",
            &[],
        )
        .await?;
    let size: i64 = head.get(0);
    let head_chain: Vec<u8> = head.get(1);
    let head_root: Vec<u8> = head.get(2);
    let all = check_tree(c, &leaves, &head_root, &mut problems).await?;
    if size != expected_seq - 1 {
        problems.push(format!(
            "head says {size} entries, the log holds {}: entries were appended or removed behind the ledger's back",
            expected_seq - 1
        ));
    } else if head_chain != prev {
        problems.push(
            "head chain hash does not match the last entry: the log's tail was rewritten".into(),
        );
    }
    for r in c
        .query("SELECT note FROM ledger_checkpoints ORDER BY size", &[])
        .await?
    {
        witnesses
            .checkpoints
            .push(("the database".into(), r.get::<_, Vec<u8>>(0)));
    }
    let mut report = LedgerReport {
        entries: (expected_seq - 1).max(0) as u64,
        chain_hash: hex::encode(&prev),
        merkle_root: hex::encode(
            match leaves.len() as u64 {
                0 => crate::tree::empty_root(),
                n => tree_hash(n, &all).unwrap_or(Hash([0; 32])),
            }
            .0,
        ),
        problems,
        checkpoints: Vec::new(),
        published_entries_compared: 0,
        notes: Vec::new(),
    };
    check_witnesses(&leaves, &all, witnesses, &mut report);
    Ok(report)
}

/// Holds the log against the signed checkpoints and the published entries.
fn check_witnesses(leaves: &[[u8; 32]], all: &AllHashes, w: Witnesses, report: &mut LedgerReport) {
    let n = leaves.len() as u64;
    report.notes.extend(w.notes);
    // The published copy names entries exactly: the first that differs.
    let mut first_rewritten: Option<u64> = None;
    for (&seq, leaf) in &w.published {
        if seq == 0 || seq > n {
            continue;
        }
        report.published_entries_compared += 1;
        if leaves[seq as usize - 1] != *leaf && first_rewritten.is_none() {
            first_rewritten = Some(seq);
        }
    }
    if report.published_entries_compared < n && !w.published.is_empty() {
        report.notes.push(format!(
            "{} of the log's {n} entries are not on audit.entry (yet): the ledger publishes missing ones when it starts",
            n - report.published_entries_compared
        ));
    }
    if let Some(seq) = first_rewritten {
        report.problems.push(format!(
            "entry {seq}: not the entry published for that place on audit.entry: the log was rewritten from entry {seq} on"
        ));
    }
    if let Some((&last, _)) = w.published.iter().next_back() {
        if last > n {
            report.problems.push(format!(
                "entries {}–{last} were published on audit.entry but the log holds only {n}: entries were removed from entry {} on",
                n + 1,
                n + 1
            ));
        }
    }
    let Some(key) = w.key else {
        if !w.checkpoints.is_empty() {
            report.notes.push(format!(
                "{} signed checkpoints not checked: no public key (`--key`, or `[audit] signing_key_file` with its .pub beside it)",
                w.checkpoints.len()
            ));
        }
        return;
    };
    // A key no checkpoint verifies with is the wrong key, not N forgeries.
    let verified: Vec<_> = w
        .checkpoints
        .iter()
        .map(|(source, note)| (source, cairn_tlog::checkpoint::verify(note, &key)))
        .collect();
    if !verified.is_empty() && verified.iter().all(|(_, r)| r.is_err()) {
        report.problems.push(format!(
            "none of the {} signed checkpoints found verifies with the key given ({}): is it this log's public key?",
            verified.len(),
            cairn_tlog::checkpoint::key_name(&key).unwrap_or_default()
        ));
        return;
    }
    // Sizes whose signed root the log has, to bracket a rewrite.
    let mut good: Vec<u64> = Vec::new();
    let mut bad: Vec<(String, u64, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (source, result) in verified {
        let cp = match result {
            Ok(cp) => cp,
            Err(e) => {
                report.problems.push(format!(
                    "a checkpoint from {source} does not verify with the log's key ({e}): forged, or of another log"
                ));
                continue;
            }
        };
        let size = cp.size();
        if !seen.insert((size, cp.hash().0, source.clone())) {
            continue;
        }
        let ok = if size > n {
            bad.push((
                source.clone(),
                size,
                format!("it was signed at {size} entries, the log holds only {n}: entries were removed from entry {} on", n + 1),
            ));
            false
        } else {
            let ours = if size == 0 {
                crate::tree::empty_root()
            } else {
                match tree_hash(size, all) {
                    Ok(h) => h,
                    Err(e) => {
                        report.problems.push(format!("tree: {e}"));
                        return;
                    }
                }
            };
            let ok = ours == *cp.hash();
            if ok {
                good.push(size);
            } else {
                bad.push((
                    source.clone(),
                    size,
                    format!("the log's first {size} entries do not have the root signed for them"),
                ));
            }
            ok
        };
        report.checkpoints.push(CheckedCheckpoint {
            source: source.clone(),
            size,
            ok,
        });
    }
    for (source, size, why) in bad {
        let below = good
            .iter()
            .copied()
            .filter(|&g| g < size)
            .max()
            .unwrap_or(0);
        let whereabouts = match first_rewritten {
            Some(seq) if seq <= size => format!("first rewritten entry: {seq}"),
            _ if size > n => String::new(),
            _ => format!(
                "the first rewritten entry is among entries {}–{size} (signed roots hold up to {below})",
                below + 1
            ),
        };
        report.problems.push(format!(
            "checkpoint {size} (from {source}): {why}{}{whereabouts}",
            if whereabouts.is_empty() { "" } else { "; " }
        ));
    }
    if report.checkpoints.is_empty() {
        report.notes.push(
            "no signed checkpoint found: only the database's own consistency was checked".into(),
        );
    }
}

/// Every stored hash of the log, in index order (the whole tree in memory:
/// 64 bytes per entry).
struct AllHashes(Vec<Hash>);

impl HashReader for AllHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::tlog::Error> {
        indexes
            .iter()
            .map(|&i| {
                self.0
                    .get(i as usize)
                    .copied()
                    .ok_or(tlog_tiles::tlog::Error::IndexesNotInTree)
            })
            .collect()
    }
}

/// The entries `split_stored_hash_index(idx)` covers, as 1-based sequence numbers.
fn covered(idx: u64) -> String {
    let (level, k) = split_stored_hash_index(idx);
    let (first, last) = (k << level, ((k + 1) << level) - 1);
    if first == last {
        format!("entry {}", first + 1)
    } else {
        format!("entries {}–{}", first + 1, last + 1)
    }
}

/// Compares `ledger_tree` and the head's tree root with the tree the
/// entries' bytes give.
async fn check_tree(
    c: &Client,
    leaves: &[[u8; 32]],
    head_root: &[u8],
    problems: &mut Vec<String>,
) -> Result<AllHashes, tokio_postgres::Error> {
    let mut all = AllHashes(Vec::with_capacity(leaves.len() * 2));
    for (n, leaf) in leaves.iter().enumerate() {
        match stored_hashes_for_record_hash(n as u64, Hash(*leaf), &all) {
            Ok(new) => all.0.extend(new),
            Err(e) => {
                problems.push(format!("tree: cannot compute entry {}: {e}", n + 1));
                return Ok(all);
            }
        }
    }
    let rows = streamed(c, "SELECT idx, hash FROM ledger_tree ORDER BY idx").await?;
    futures::pin_mut!(rows);
    let mut expected_idx = 0u64;
    let mut reported = 0;
    while let Some(r) = rows.try_next().await? {
        let idx: i64 = r.get(0);
        let hash: Vec<u8> = r.get(1);
        let idx = idx as u64;
        if reported >= 5 {
            break;
        }
        if idx != expected_idx {
            problems.push(format!(
                "tree hash {expected_idx} ({}) is missing: the tree was cut",
                covered(expected_idx)
            ));
            reported += 1;
        }
        match all.0.get(idx as usize) {
            Some(h) if h.0.as_slice() == hash.as_slice() => {}
            Some(_) => {
                problems.push(format!(
                    "tree hash {idx} (over {}) is not what the entries give: the tree was rewritten",
                    covered(idx)
                ));
                reported += 1;
            }
            None => {
                problems.push(format!(
                    "tree hash {idx} (over {}) is beyond the log's {} entries: entries were removed",
                    covered(idx),
                    leaves.len()
                ));
                reported += 1;
            }
        }
        expected_idx = idx + 1;
    }
    if reported == 0 && (expected_idx as usize) < all.0.len() {
        problems.push(format!(
            "the tree holds {expected_idx} hashes, the {} entries need {}: the tree was cut",
            leaves.len(),
            all.0.len()
        ));
    }
    let root = if leaves.is_empty() {
        crate::tree::empty_root()
    } else {
        match tree_hash(leaves.len() as u64, &all) {
            Ok(h) => h,
            Err(e) => {
                problems.push(format!("tree: {e}"));
                return Ok(all);
            }
        }
    };
    if root.0.as_slice() != head_root {
        problems.push(format!(
            "head tree root {} is not the root of the {} entries ({}): the head was rewritten",
            hex::encode(head_root),
            leaves.len(),
            hex::encode(root.0)
        ));
    }
    Ok(all)
}

/// Gathers the copies of the log that live outside PostgreSQL: the signed
/// checkpoints and entries on the AUDIT stream, the newest checkpoint on
/// each network (of log `log`: [`crate::query::log_id`]), and the signer's
/// last checkpoint (`state_file`). A source
/// that cannot be read becomes a note, never a silent pass.
pub async fn gather(
    key: Option<String>,
    log: Option<&str>,
    bus: Result<&cairn_bus::Bus, String>,
    repo: Option<&cairn_repo::Repository>,
    state_file: Option<&std::path::Path>,
) -> Witnesses {
    let mut w = Witnesses {
        key,
        ..Witnesses::default()
    };
    match bus {
        Ok(bus) => {
            if let Err(e) = read_stream(bus, &mut w).await {
                w.notes
                    .push(format!("the AUDIT stream could not be read: {e}"));
            }
        }
        Err(e) => w
            .notes
            .push(format!("the AUDIT stream was not checked: {e}")),
    }
    if let Some(repo) = repo {
        for net in repo.networks() {
            let newest = match net.list(&cairn_repo::layout::checkpoints_dir(log)).await {
                Ok(mut names) => {
                    names.retain(|p| cairn_repo::layout::is_checkpoint_of(log, p));
                    names.sort();
                    names.pop()
                }
                Err(e) => {
                    w.notes.push(format!(
                        "network {}: checkpoints not listed: {e}",
                        net.name()
                    ));
                    continue;
                }
            };
            if let Some(path) = newest {
                match net.get(&path).await {
                    Ok(b) => w
                        .checkpoints
                        .push((format!("network {}", net.name()), b.to_vec())),
                    Err(e) => w
                        .notes
                        .push(format!("network {}: {path} not read: {e}", net.name())),
                }
            }
        }
    }
    if let Some(path) = state_file {
        match std::fs::read(path) {
            Ok(b) => w
                .checkpoints
                .push((format!("the signer's {}", path.display()), b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => w.notes.push(format!("{}: {e}", path.display())),
        }
    }
    w
}

async fn read_stream(bus: &cairn_bus::Bus, w: &mut Witnesses) -> Result<(), cairn_bus::BusError> {
    for subject in [bus.subjects.checkpoint(), bus.subjects.cosigned()] {
        let mut r = bus.replay_audit(&subject).await?;
        while let Some(m) = r.next().await {
            w.checkpoints
                .push(("the AUDIT stream".into(), m?.payload.to_vec()));
        }
    }
    let mut r = bus.replay_audit(&bus.subjects.all_audit_entries()).await?;
    while let Some(m) = r.next().await {
        let m = m?;
        if let Some(seq) = m.entry_seq() {
            w.published
                .entry(seq)
                .or_insert(cairn_tlog::leaf_hash(&m.payload).0);
        }
    }
    Ok(())
}
