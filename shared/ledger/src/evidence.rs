//! Evidence bundles (`cairn audit evidence BACKUP_ID`): everything an
//! auditor asks about one backup, provable without the database. The bundle
//! holds the backup's ledger entries (exact bytes), an inclusion proof of
//! each against one signed (when a witness runs, cosigned) checkpoint, and a
//! summary: manifest digest, Merkle roots, where each object is stored. The
//! summary is not trusted either: [`check`] re-derives it from the proven
//! entries and refuses a bundle whose summary says anything else.
//!
//! What it cannot show is absence: that no other entry of the backup exists
//! past the checkpoint. `cairn audit verify` over the whole log answers that.

use crate::prove::{checkpoint_for, entry_proof, ProveError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_events::{decode, Envelope, Event, ObjectKey};
use cairn_tlog::reader::Known;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio_postgres::Client;

/// The bundle's format name.
pub const FORMAT: &str = "cairn-evidence@v1";

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("the ledger has no entry for backup {0}")]
    NoBackup(String),
    #[error(transparent)]
    Prove(#[from] ProveError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error("not an evidence bundle ({FORMAT}): {0}")]
    Malformed(String),
    #[error("the checkpoint: {0}")]
    Checkpoint(#[from] cairn_tlog::checkpoint::CheckpointError),
    #[error("entry {seq}: {detail}")]
    Entry { seq: u64, detail: String },
    #[error("the summary does not follow from the proven entries: {0}")]
    Summary(String),
}

/// The bundle, as written (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    pub format: String,
    pub backup_id: String,
    pub summary: Summary,
    /// The signed note of the checkpoint every proof is against.
    pub checkpoint: String,
    pub entries: Vec<ProvenEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProvenEntry {
    pub seq: u64,
    pub kind: String,
    /// The entry's exact bytes (base64).
    pub entry: String,
    /// The RFC 6962 inclusion proof of leaf `seq - 1` (base64 hashes).
    pub proof: Vec<String>,
}

impl ProvenEntry {
    /// The entry's envelope, once its bytes decode and its inclusion proof
    /// leads to `root`, the root of the log's first `size` entries.
    pub fn prove(&self, size: u64, root: &[u8]) -> Result<Envelope, String> {
        let bytes = B64
            .decode(&self.entry)
            .map_err(|err| format!("not base64: {err}"))?;
        let proof = self
            .proof
            .iter()
            .map(|h| B64.decode(h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| format!("proof not base64: {err}"))?;
        if self.seq == 0 || self.seq > size {
            return Err(format!("outside the checkpoint of size {size}"));
        }
        let leaf = cairn_tlog::leaf_hash(&bytes);
        cairn_tlog::verify_inclusion(self.seq - 1, size, &leaf.0, &proof, root)
            .map_err(|err| format!("not in the log at this place: {err}"))?;
        decode::<Envelope>(&bytes, "entry").map_err(|err| err.to_string())
    }
}

/// What the entries say about the backup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub dataset: String,
    pub requested_by: String,
    pub requested_at: String,
    /// The last terminal event: completed, degraded, failed, forgotten
    /// (empty while the backup runs).
    pub status: String,
    pub finished_at: String,
    /// Merkle root over the backup's chunk ids (hex).
    pub merkle_root: String,
    /// Merkle root over (chunk id, sealed SHA-256) (hex).
    pub sealed_root: String,
    pub manifest: Option<ObjectSummary>,
    /// Objects sealed for this backup (new chunks, chunk lists, manifest).
    pub objects_sealed: u64,
    /// Per network: where the manifest and chunk lists are, and how many
    /// of the backup's objects it confirmed storing.
    pub networks: BTreeMap<String, NetworkSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectSummary {
    pub path: String,
    pub sha256: String,
    pub len: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkSummary {
    /// Paths of the manifest and chunk lists on the network.
    pub locators: Vec<String>,
    pub objects_stored: u64,
    /// Verify's verdict for this network, if the backup finished.
    pub verified: Option<bool>,
}

/// Derives the summary from a backup's entries, in log order.
pub fn summarize(entries: &[Envelope]) -> Summary {
    let mut s = Summary::default();
    for env in entries {
        match &env.event {
            Event::BackupRequested(r) => {
                s.dataset = r.dataset.clone();
                s.requested_by = r.requested_by.clone();
                s.requested_at = env.at.clone();
            }
            Event::ObjectSealed(d) => {
                s.objects_sealed += 1;
                if matches!(d.object, ObjectKey::Manifest { .. }) {
                    s.manifest = Some(ObjectSummary {
                        path: cairn_repo::layout::object(&d.object),
                        sha256: d.sha256.clone(),
                        len: d.len,
                    });
                }
            }
            Event::ObjectStored(st) => {
                let n = s.networks.entry(st.network.clone()).or_default();
                n.objects_stored += 1;
                if !matches!(
                    st.digest.object,
                    ObjectKey::Chunk { .. } | ObjectKey::Pack { .. }
                ) {
                    let path = cairn_repo::layout::object(&st.digest.object);
                    if !n.locators.contains(&path) {
                        n.locators.push(path);
                    }
                }
            }
            Event::BackupCompleted(o) | Event::BackupDegraded(o) | Event::BackupFailed(o) => {
                s.status = env.event.kind().trim_start_matches("backup.").to_string();
                s.finished_at = env.at.clone();
                s.merkle_root = o.merkle_root.clone();
                s.sealed_root = o.sealed_root.clone();
                for r in &o.networks {
                    s.networks.entry(r.network.clone()).or_default().verified = Some(r.ok);
                }
            }
            Event::BackupForgotten(_) => {
                s.status = "forgotten".into();
            }
            _ => {}
        }
    }
    for n in s.networks.values_mut() {
        n.locators.sort();
    }
    s
}

/// Builds the bundle for `backup` against the newest (cosigned, if any in
/// `cosigned`) checkpoint that covers all its entries.
pub async fn build(
    pg: &Client,
    backup: &str,
    cosigned: &BTreeMap<u64, Vec<u8>>,
) -> Result<Evidence, EvidenceError> {
    let rows = pg
        .query(
            "SELECT seq, kind, entry FROM ledger_entries WHERE backup_id = $1 ORDER BY seq",
            &[&backup],
        )
        .await?;
    let last = rows
        .last()
        .map(|r| r.get::<_, i64>(0) as u64)
        .ok_or_else(|| EvidenceError::NoBackup(backup.to_string()))?;
    let (size, note) = checkpoint_for(pg, last, cosigned).await?;
    let mut known = Known::new();
    let mut entries = Vec::with_capacity(rows.len());
    let mut envs = Vec::with_capacity(rows.len());
    for r in &rows {
        let seq = r.get::<_, i64>(0) as u64;
        let bytes: Vec<u8> = r.get(2);
        envs.push(decode::<Envelope>(&bytes, "ledger entry").map_err(|e| {
            EvidenceError::Entry {
                seq,
                detail: e.to_string(),
            }
        })?);
        let proof = entry_proof(pg, &mut known, size, seq).await?;
        entries.push(ProvenEntry {
            seq,
            kind: r.get(1),
            entry: B64.encode(&bytes),
            proof: proof.iter().map(|h| B64.encode(h.0)).collect(),
        });
    }
    Ok(Evidence {
        format: FORMAT.into(),
        backup_id: backup.to_string(),
        summary: summarize(&envs),
        checkpoint: String::from_utf8_lossy(&note).into_owned(),
        entries,
    })
}

/// What [`check`] established.
#[derive(Debug, Clone)]
pub struct Checked {
    pub backup_id: String,
    pub origin: String,
    pub checkpoint_size: u64,
    pub entries: usize,
    pub cosigned: bool,
    pub summary: Summary,
}

/// Checks a bundle offline with the log's public key (and a witness's, to
/// require its cosignature): the checkpoint's signatures, every entry's
/// inclusion proof, that every entry is of the bundle's backup, and that the
/// summary is what the entries say.
pub fn check(
    bundle: &[u8],
    vkey: &str,
    witness_vkey: Option<&str>,
) -> Result<Checked, EvidenceError> {
    let ev: Evidence =
        serde_json::from_slice(bundle).map_err(|e| EvidenceError::Malformed(e.to_string()))?;
    if ev.format != FORMAT {
        return Err(EvidenceError::Malformed(format!("format {:?}", ev.format)));
    }
    let cp = match witness_vkey {
        Some(w) => cairn_tlog::checkpoint::verify_cosigned(ev.checkpoint.as_bytes(), vkey, w)?,
        None => cairn_tlog::checkpoint::verify(ev.checkpoint.as_bytes(), vkey)?,
    };
    if ev.entries.is_empty() {
        return Err(EvidenceError::Malformed("no entries".into()));
    }
    let mut envs = Vec::with_capacity(ev.entries.len());
    let mut last = 0;
    for e in &ev.entries {
        let bad = |detail: String| EvidenceError::Entry { seq: e.seq, detail };
        if e.seq <= last {
            return Err(bad("entries out of log order".into()));
        }
        last = e.seq;
        let env = e.prove(cp.size(), &cp.hash().0).map_err(bad)?;
        if env.backup_id.as_str() != ev.backup_id || env.event.kind() != e.kind {
            return Err(bad(format!(
                "it is {} of {}, not {} of {}",
                env.event.kind(),
                env.backup_id,
                e.kind,
                ev.backup_id
            )));
        }
        envs.push(env);
    }
    let derived = summarize(&envs);
    if derived != ev.summary {
        let (claimed, proven) = (
            serde_json::to_value(&ev.summary).unwrap_or_default(),
            serde_json::to_value(&derived).unwrap_or_default(),
        );
        let field = proven
            .as_object()
            .into_iter()
            .flatten()
            .find(|(k, v)| claimed.get(k.as_str()) != Some(v))
            .map(|(k, _)| k.clone())
            .unwrap_or_default();
        return Err(EvidenceError::Summary(format!(
            "{field}: the bundle says {}, the entries say {}",
            claimed.get(&field).cloned().unwrap_or_default(),
            proven.get(&field).cloned().unwrap_or_default()
        )));
    }
    Ok(Checked {
        backup_id: ev.backup_id,
        origin: cp.origin().to_string(),
        checkpoint_size: cp.size(),
        entries: ev.entries.len(),
        cosigned: witness_vkey.is_some(),
        summary: derived,
    })
}
