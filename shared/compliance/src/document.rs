//! The compliance document (`cairn compliance check --json`): every rule's
//! finding per backup, and beside them every ledger entry a finding cites,
//! as its exact bytes with an inclusion proof against one signed checkpoint.
//! An auditor checks it offline with the log's public key alone
//! (`cairn audit check-proof FILE --key KEY`, or their own script: the
//! proofs are RFC 6962, the checkpoint a C2SP signed note): [`check`]
//! verifies the checkpoint, every proof, and that every cited entry is in
//! the document and of the kind the finding says.

use crate::evaluate::{Cite, Finding, Verdict};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_ledger::evidence::ProvenEntry;
use cairn_ledger::prove::{self, ProveError};
use cairn_tlog::reader::Known;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::Client;

/// The document's format name.
pub const FORMAT: &str = "cairn-compliance@v1";

/// One backup's findings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupReport {
    pub backup_id: String,
    pub dataset: String,
    pub tags: Vec<String>,
    pub status: String,
    pub requested_at: String,
    pub profiles: Vec<String>,
    /// Why the backup is not completed, as its outcome says (a refusal
    /// names the rule that refused it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    pub findings: Vec<Finding>,
}

impl BackupReport {
    /// Whether nothing of it could be judged (it failed, was forgotten or
    /// still runs): one line says so, rather than one per rule.
    pub fn unjudged(&self) -> bool {
        !self.findings.is_empty()
            && self
                .findings
                .iter()
                .all(|f| f.verdict == Verdict::NotApplicable)
    }
}

impl BackupReport {
    pub fn failed(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.verdict == Verdict::Fail)
    }
}

/// Counts over the whole document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub backups: u64,
    pub passed: u64,
    pub failed: u64,
    pub not_applicable: u64,
}

impl Tally {
    pub fn of(backups: &[BackupReport]) -> Tally {
        let mut t = Tally {
            backups: backups.len() as u64,
            ..Tally::default()
        };
        for f in backups.iter().flat_map(|b| &b.findings) {
            match f.verdict {
                Verdict::Pass => t.passed += 1,
                Verdict::Fail => t.failed += 1,
                Verdict::NotApplicable => t.not_applicable += 1,
            }
        }
        t
    }
}

/// The document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Document {
    pub format: String,
    /// When the check ran, and the time its rules were judged at.
    pub checked_at: String,
    pub as_of: String,
    pub tally: Tally,
    pub backups: Vec<BackupReport>,
    /// The signed note every proof is against (absent when no checkpoint
    /// has been signed yet).
    pub checkpoint: Option<String>,
    /// Every cited entry the checkpoint covers, in log order.
    pub entries: Vec<ProvenEntry>,
    /// Cited entries newer than the checkpoint (no proof yet).
    pub unproven: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error(transparent)]
    Prove(#[from] ProveError),
    #[error("the ledger (PostgreSQL): {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("not a compliance document ({FORMAT}): {0}")]
    Malformed(String),
    #[error("the checkpoint: {0}")]
    Checkpoint(#[from] cairn_tlog::checkpoint::CheckpointError),
    #[error("entry {seq}: {detail}")]
    Entry { seq: u64, detail: String },
}

fn cited(backups: &[BackupReport]) -> BTreeSet<u64> {
    backups
        .iter()
        .flat_map(|b| &b.findings)
        .flat_map(|f| &f.evidence)
        .filter_map(|c| match c {
            Cite::Entry { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

/// Puts the findings together with the cited entries and their proofs,
/// against the newest (cosigned, when `cosigned` has one) checkpoint that
/// covers them all, else the newest there is.
pub async fn build(
    pg: &Client,
    backups: Vec<BackupReport>,
    cosigned: &BTreeMap<u64, Vec<u8>>,
    checked_at: String,
    as_of: String,
) -> Result<Document, DocumentError> {
    let seqs = cited(&backups);
    let last = seqs.iter().next_back().copied().unwrap_or(1);
    let checkpoint = match prove::checkpoint_for(pg, last, cosigned).await {
        Ok(c) => Some(c),
        Err(ProveError::NoCheckpoint(_)) => pg
            .query_opt(
                "SELECT size, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1",
                &[],
            )
            .await?
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, Vec<u8>>(1))),
        Err(e) => return Err(e.into()),
    };
    let size = checkpoint.as_ref().map(|c| c.0).unwrap_or(0);
    let mut known = Known::new();
    let mut entries = Vec::new();
    let mut unproven = Vec::new();
    for seq in seqs {
        if seq > size {
            unproven.push(seq);
            continue;
        }
        let r = pg
            .query_one(
                "SELECT kind, entry FROM ledger_entries WHERE seq = $1",
                &[&(seq as i64)],
            )
            .await?;
        let bytes: Vec<u8> = r.get(1);
        let proof = prove::entry_proof(pg, &mut known, size, seq).await?;
        entries.push(ProvenEntry {
            seq,
            kind: r.get(0),
            entry: B64.encode(&bytes),
            proof: proof.iter().map(|h| B64.encode(h.0)).collect(),
        });
    }
    Ok(Document {
        format: FORMAT.into(),
        checked_at,
        as_of,
        tally: Tally::of(&backups),
        backups,
        checkpoint: checkpoint.map(|(_, note)| String::from_utf8_lossy(&note).into_owned()),
        entries,
        unproven,
    })
}

/// What [`check`] established.
#[derive(Debug, Clone)]
pub struct Checked {
    pub origin: String,
    pub checkpoint_size: u64,
    pub cosigned: bool,
    pub proven: usize,
    pub unproven: Vec<u64>,
    pub tally: Tally,
}

/// Checks a document offline with the log's public key (and a witness's,
/// to require its cosignature).
pub fn check(doc: &[u8], vkey: &str, witness_vkey: Option<&str>) -> Result<Checked, DocumentError> {
    let d: Document =
        serde_json::from_slice(doc).map_err(|e| DocumentError::Malformed(e.to_string()))?;
    if d.format != FORMAT {
        return Err(DocumentError::Malformed(format!("format {:?}", d.format)));
    }
    let tally = Tally::of(&d.backups);
    if tally != d.tally {
        return Err(DocumentError::Malformed(format!(
            "its tally ({:?}) is not what its findings add up to ({tally:?})",
            d.tally
        )));
    }
    // Each proven entry's kind and backup.
    let mut kinds: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let (origin, size) = match &d.checkpoint {
        None => {
            if !d.entries.is_empty() {
                return Err(DocumentError::Malformed(
                    "proven entries without a checkpoint".into(),
                ));
            }
            (String::new(), 0)
        }
        Some(note) => {
            let cp = match witness_vkey {
                Some(w) => cairn_tlog::checkpoint::verify_cosigned(note.as_bytes(), vkey, w)?,
                None => cairn_tlog::checkpoint::verify(note.as_bytes(), vkey)?,
            };
            for e in &d.entries {
                let bad = |detail: String| DocumentError::Entry { seq: e.seq, detail };
                let env = e.prove(cp.size(), &cp.hash().0).map_err(bad)?;
                if env.event.kind() != e.kind {
                    return Err(bad(format!("it is {}, not {}", env.event.kind(), e.kind)));
                }
                kinds.insert(e.seq, (e.kind.clone(), env.backup_id.as_str().to_string()));
            }
            (cp.origin().to_string(), cp.size())
        }
    };
    for b in &d.backups {
        for f in &b.findings {
            for c in &f.evidence {
                let Cite::Entry { seq, kind } = c else {
                    continue;
                };
                match kinds.get(seq) {
                    // Of the backup judged, or repository-wide (a key
                    // split, a shred).
                    Some((k, of)) if k == kind && (of == &b.backup_id || of == "repo") => {}
                    Some((k, of)) if k == kind => {
                        return Err(DocumentError::Entry {
                            seq: *seq,
                            detail: format!(
                                "{} rule {} cites it, and it is an entry of backup {of}",
                                b.backup_id, f.rule
                            ),
                        })
                    }
                    Some((k, _)) => {
                        return Err(DocumentError::Entry {
                            seq: *seq,
                            detail: format!(
                                "{} rule {} cites it as {kind}; it is {k}",
                                b.backup_id, f.rule
                            ),
                        })
                    }
                    None if d.unproven.contains(seq) && *seq > size => {}
                    None => {
                        return Err(DocumentError::Entry {
                            seq: *seq,
                            detail: format!(
                                "{} rule {} cites it, and the document holds no proof of it",
                                b.backup_id, f.rule
                            ),
                        })
                    }
                }
            }
        }
    }
    Ok(Checked {
        origin,
        checkpoint_size: size,
        cosigned: witness_vkey.is_some(),
        proven: d.entries.len(),
        unproven: d.unproven,
        tally,
    })
}
