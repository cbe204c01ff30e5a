//! Proofs as files. Inclusion proofs in the C2SP tlog-proof format: a header, the
//! entry's index, the Merkle inclusion proof, a blank line, and the signed
//! checkpoint it is proven against. With the entry's bytes and the log's
//! public key, anyone checks one offline: no database, no broker.
//! Consistency proofs (for which C2SP defines no file) are a small JSON
//! document holding both signed checkpoints and the proof.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! index 41
//! <base64 hash>
//! ...
//!
//! <signed checkpoint>
//! ```

use crate::checkpoint::{self, CheckpointError};
use crate::proof::{verify_inclusion, ProofError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use tlog_tiles::checkpoint::Checkpoint;
use tlog_tiles::tlog::{record_hash, Hash};

const HEADER: &str = "c2sp.org/tlog-proof@v1";

#[derive(Debug, thiserror::Error)]
pub enum ProofFileError {
    #[error("not a tlog proof: {0}")]
    Malformed(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(
        "the log at size {new} is not an append-only extension of the log at size {old}: {source}"
    )]
    Inconsistent {
        old: u64,
        new: u64,
        #[source]
        source: ProofError,
    },
    #[error("the entry is not entry {} (index {index}) of the checkpointed log: {source}", .index + 1)]
    NotIncluded {
        index: u64,
        #[source]
        source: ProofError,
    },
}

/// The proof file for entry `index` (0-based) against `checkpoint` (a signed note).
pub fn format(index: u64, proof: &[Hash], checkpoint: &[u8]) -> Vec<u8> {
    let mut out = format!("{HEADER}\nindex {index}\n");
    for h in proof {
        out.push_str(&B64.encode(h.0));
        out.push('\n');
    }
    out.push('\n');
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(checkpoint);
    bytes
}

/// A parsed proof file.
pub struct ProofFile {
    pub index: u64,
    pub extra: Option<Vec<u8>>,
    pub proof: Vec<Vec<u8>>,
    /// The signed checkpoint, as it stands in the file.
    pub checkpoint: Vec<u8>,
}

pub fn parse(bytes: &[u8]) -> Result<ProofFile, ProofFileError> {
    let bad = |m: &str| ProofFileError::Malformed(m.to_string());
    let split = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or_else(|| bad("no blank line before the checkpoint"))?;
    let head = std::str::from_utf8(&bytes[..split]).map_err(|_| bad("not UTF-8"))?;
    let checkpoint = bytes[split + 2..].to_vec();
    let mut lines = head.split('\n');
    if lines.next() != Some(HEADER) {
        return Err(bad("the first line is not c2sp.org/tlog-proof@v1"));
    }
    let mut line = lines.next().ok_or_else(|| bad("no index line"))?;
    let mut extra = None;
    if let Some(e) = line.strip_prefix("extra ") {
        extra = Some(B64.decode(e).map_err(|_| bad("extra is not base64"))?);
        line = lines.next().ok_or_else(|| bad("no index line"))?;
    }
    let index = line
        .strip_prefix("index ")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| bad("no index line"))?;
    let proof = lines
        .map(|l| B64.decode(l).map_err(|_| bad("a proof line is not base64")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ProofFile {
        index,
        extra,
        proof,
        checkpoint,
    })
}

/// Checks a proof file: its checkpoint is signed by `vkey`, and `entry` (the
/// exact bytes that were logged) is entry `index` of that tree. Returns the
/// checkpoint.
pub fn check(
    file: &[u8],
    entry: &[u8],
    vkey: &str,
) -> Result<(ProofFile, Checkpoint), ProofFileError> {
    let p = parse(file)?;
    let cp = checkpoint::verify(&p.checkpoint, vkey)?;
    verify_inclusion(
        p.index,
        cp.size(),
        &record_hash(entry).0,
        &p.proof,
        &cp.hash().0,
    )
    .map_err(|source| ProofFileError::NotIncluded {
        index: p.index,
        source,
    })?;
    Ok((p, cp))
}

/// Marks a consistency proof file (JSON; C2SP has no format for these).
pub const CONSISTENCY_FORMAT: &str = "cairn-tlog-consistency@v1";

/// A consistency proof between two signed checkpoints of one log, as JSON:
/// `{"format", "old", "new", "proof"}` (the checkpoints as signed notes, the
/// proof hashes in base64).
#[derive(serde::Serialize, serde::Deserialize)]
struct ConsistencyFile {
    format: String,
    old: String,
    new: String,
    proof: Vec<String>,
}

/// The consistency proof file from `old` to `new` (signed notes).
pub fn format_consistency(old: &[u8], new: &[u8], proof: &[Hash]) -> Vec<u8> {
    let file = ConsistencyFile {
        format: CONSISTENCY_FORMAT.to_string(),
        old: String::from_utf8_lossy(old).into_owned(),
        new: String::from_utf8_lossy(new).into_owned(),
        proof: proof.iter().map(|h| B64.encode(h.0)).collect(),
    };
    let mut out = serde_json::to_vec_pretty(&file).expect("serializes");
    out.push(b'\n');
    out
}

/// Checks a consistency proof file: both checkpoints are signed by `vkey`
/// and the newer tree is an append-only extension of the older. Returns
/// (older, newer).
pub fn check_consistency(
    file: &[u8],
    vkey: &str,
) -> Result<(Checkpoint, Checkpoint), ProofFileError> {
    let bad = |m: &str| ProofFileError::Malformed(m.to_string());
    let v: ConsistencyFile =
        serde_json::from_slice(file).map_err(|e| bad(&format!("not a consistency proof: {e}")))?;
    if v.format != CONSISTENCY_FORMAT {
        return Err(bad("not a cairn-tlog-consistency@v1 file"));
    }
    let old = checkpoint::verify(v.old.as_bytes(), vkey)?;
    let new = checkpoint::verify(v.new.as_bytes(), vkey)?;
    let proof = v
        .proof
        .iter()
        .map(|h| B64.decode(h).map_err(|_| bad("a proof hash is not base64")))
        .collect::<Result<Vec<_>, _>>()?;
    crate::proof::verify_consistency(old.size(), new.size(), &proof, &old.hash().0, &new.hash().0)
        .map_err(|source| ProofFileError::Inconsistent {
            old: old.size(),
            new: new.size(),
            source,
        })?;
    Ok((old, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_malformed_files() {
        let proof = [Hash([1; 32]), Hash([2; 32])];
        let file = format(41, &proof, b"origin\n1\nroot\n\n- sig\n");
        let p = parse(&file).unwrap();
        assert_eq!(p.index, 41);
        assert_eq!(p.proof, vec![vec![1u8; 32], vec![2u8; 32]]);
        assert_eq!(p.checkpoint, b"origin\n1\nroot\n\n- sig\n");
        assert!(p.extra.is_none());
        let with_extra = b"c2sp.org/tlog-proof@v1\nextra aGk=\nindex 0\n\ncp";
        assert_eq!(
            parse(with_extra).unwrap().extra.as_deref(),
            Some(&b"hi"[..])
        );
        for bad in [
            &b"c2sp.org/tlog-proof@v2\nindex 1\n\ncp"[..],
            b"c2sp.org/tlog-proof@v1\nindex x\n\ncp",
            b"c2sp.org/tlog-proof@v1\nindex 1\nnot*base64\n\ncp",
            b"c2sp.org/tlog-proof@v1\nindex 1\n",
        ] {
            assert!(matches!(parse(bad), Err(ProofFileError::Malformed(_))));
        }
    }
}
