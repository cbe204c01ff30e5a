//! `cairn audit check-proof`: checks a proof offline, with the log's public
//! key only: an inclusion proof with the entry's bytes, a consistency
//! proof, an evidence bundle, or a compliance document.

use super::read_key_arg;
use crate::out;
use anyhow::{bail, Context};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    proof: PathBuf,
    #[arg(long)]
    entry: Option<PathBuf>,
    /// The log's public key, or a file holding it (`cairn audit keygen`'s KEY_FILE.pub).
    #[arg(long)]
    key: String,
    /// Also require a witness's cosignature: its public key, or a file holding it.
    #[arg(long)]
    witness_key: Option<String>,
}

/// Just enough of a JSON proof file to tell its kind.
#[derive(serde::Deserialize)]
struct Kind {
    format: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let vkey = read_key_arg(&a.key);
    let witness_vkey = a.witness_key.as_deref().map(read_key_arg);
    let proof = &a.proof;
    let file = std::fs::read(proof).with_context(|| proof.display().to_string())?;
    let json = file.first() == Some(&b'{');
    let format = json
        .then(|| serde_json::from_slice::<Kind>(&file).ok())
        .flatten()
        .and_then(|k| k.format);
    if format.as_deref() == Some(cairn_ledger::evidence::FORMAT) {
        let c = cairn_ledger::evidence::check(&file, &vkey, witness_vkey.as_deref())
            .with_context(|| format!("{} is not valid evidence", proof.display()))?;
        super::evidence::print_summary(&c.backup_id, &c.summary)?;
        out!(
            "all {} entries are in log {} (checkpoint of size {}{})",
            c.entries,
            c.origin,
            c.checkpoint_size,
            if c.cosigned {
                ", cosigned by the witness"
            } else {
                ""
            }
        );
        return Ok(0);
    }
    if format.as_deref() == Some(cairn_compliance::document::FORMAT) {
        let c = cairn_compliance::document::check(&file, &vkey, witness_vkey.as_deref())
            .with_context(|| format!("{} is not a valid compliance document", proof.display()))?;
        out!(
            "compliance document: {} backup(s), {} rules passed, {} failed, {} not applicable",
            c.tally.backups,
            c.tally.passed,
            c.tally.failed,
            c.tally.not_applicable
        );
        if c.checkpoint_size > 0 {
            out!(
                "all {} cited entries are in log {} (checkpoint of size {}{})",
                c.proven,
                c.origin,
                c.checkpoint_size,
                if c.cosigned {
                    ", cosigned by the witness"
                } else {
                    ""
                }
            );
        }
        if !c.unproven.is_empty() {
            out!(
                "{} cited entries are newer than its checkpoint and carry no proof: {:?}",
                c.unproven.len(),
                c.unproven
            );
            crate::err!("cairn: the document is not fully proven: ask for one made after `cairn audit checkpoint`");
            return Ok(1);
        }
        return Ok(0);
    }
    if json {
        if witness_vkey.is_some() {
            bail!("--witness-key applies to inclusion proofs; a consistency proof relates two of the log's own checkpoints");
        }
        let (old, new) = cairn_tlog::proof_file::check_consistency(&file, &vkey)
            .with_context(|| format!("{} is not a valid consistency proof", proof.display()))?;
        out!(
            "log {}: the tree of {} entries extends the tree of {} (roots {} and {})",
            new.origin(),
            new.size(),
            old.size(),
            hex::encode(new.hash().0),
            hex::encode(old.hash().0)
        );
        return Ok(0);
    }
    let entry = a
        .entry
        .as_ref()
        .context("an inclusion proof needs the entry's bytes: --entry FILE")?;
    let bytes = std::fs::read(entry).with_context(|| entry.display().to_string())?;
    let (p, cp) = cairn_tlog::proof_file::check(&file, &bytes, &vkey)
        .with_context(|| format!("{} does not prove {}", proof.display(), entry.display()))?;
    if let Some(w) = &witness_vkey {
        cairn_tlog::checkpoint::verify_cosigned(&p.checkpoint, &vkey, w)
            .context("the checkpoint is not cosigned by the witness")?;
    }
    out!(
        "entry {} is in log {} (checkpoint of size {}, root {})",
        p.index + 1,
        cp.origin(),
        cp.size(),
        hex::encode(cp.hash().0)
    );
    Ok(0)
}
