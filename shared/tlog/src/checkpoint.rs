//! Signed checkpoints: a log's origin, size and root in the C2SP
//! tlog-checkpoint format, signed with Ed25519 as a C2SP signed note, and
//! their verification with nothing but the log's public (verifier) key.
//! Formats and signatures are `tlog_tiles`' and `signed_note`'s (ports of Go's
//! sumdb packages); this module fixes Cairn's rules: one key per log, whose
//! name is the log's origin, so a checkpoint of another log never verifies.

use signed_note::{generate_key, Note, Signer, StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::checkpoint::Checkpoint;
use tlog_tiles::tlog::Hash;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the log's signing key is malformed (expected PRIVATE+KEY+<origin>+<id>+<key>)")]
    BadSigningKey,
    #[error("the log's public key is malformed (expected <origin>+<id>+<key>)")]
    BadVerifierKey,
    #[error("origin {0:?} cannot name a log (no spaces or '+')")]
    BadOrigin(String),
    #[error("not a signed note: {0}")]
    NotANote(String),
    #[error("no valid signature by {origin}: {detail}")]
    NotSigned { origin: String, detail: String },
    #[error("the signed text is not a checkpoint")]
    NotACheckpoint,
    #[error("the checkpoint is of log {found:?}, not {expected:?}")]
    OtherLog { found: String, expected: String },
}

/// The key a log signs its checkpoints with. Its name is the log's origin.
pub struct LogKey {
    signer: StandardSigner,
}

/// A new key pair for the log `origin`: (signing key, verifier key), both
/// as text. The signing key is secret; the verifier key is what auditors get.
pub fn generate(origin: &str) -> Result<(String, String), CheckpointError> {
    if !signed_note::is_key_name_valid(origin) {
        return Err(CheckpointError::BadOrigin(origin.to_string()));
    }
    Ok(generate_key(&mut rand::rngs::OsRng, origin))
}

impl LogKey {
    /// The key from its text (`PRIVATE+KEY+...`, as `generate` made it).
    pub fn from_text(skey: &str) -> Result<Self, CheckpointError> {
        let signer =
            StandardSigner::new(skey.trim()).map_err(|_| CheckpointError::BadSigningKey)?;
        Ok(LogKey { signer })
    }

    /// The log this key signs for.
    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// The signed checkpoint of the log at `size` entries with root `root`.
    pub fn sign(&self, size: u64, root: Hash) -> Result<Vec<u8>, CheckpointError> {
        let cp = Checkpoint::new(self.origin(), size, root, "")
            .map_err(|_| CheckpointError::BadOrigin(self.origin().to_string()))?;
        let mut note =
            Note::new(&cp.to_bytes(), &[]).map_err(|e| CheckpointError::NotANote(e.to_string()))?;
        note.add_sigs(&[&self.signer])
            .map_err(|e| CheckpointError::NotANote(e.to_string()))?;
        Ok(note.to_bytes())
    }
}

impl LogKey {
    /// Adds this key's signature to an already signed checkpoint, keeping
    /// the log's: a witness's cosignature (an Ed25519 note signature by the
    /// witness, named after it). The caller has checked the checkpoint.
    pub fn cosign(&self, signed: &[u8]) -> Result<Vec<u8>, CheckpointError> {
        let mut note =
            Note::from_bytes(signed).map_err(|e| CheckpointError::NotANote(e.to_string()))?;
        note.add_sigs(&[&self.signer])
            .map_err(|e| CheckpointError::NotANote(e.to_string()))?;
        Ok(note.to_bytes())
    }
}

/// The size and root a signed checkpoint states, its signatures unchecked:
/// for notes whose signature was checked when they were made or is checked
/// elsewhere (a signer's own state file, a rebuild holding roots against
/// its tree).
pub fn unverified(signed: &[u8]) -> Result<(u64, Hash), CheckpointError> {
    let note = Note::from_bytes(signed).map_err(|e| CheckpointError::NotANote(e.to_string()))?;
    let cp = Checkpoint::from_bytes(note.text()).map_err(|_| CheckpointError::NotACheckpoint)?;
    Ok((cp.size(), *cp.hash()))
}

/// The name (log origin, or witness) a verifier key is for; an error if
/// `vkey` is not a verifier key at all.
pub fn key_name(vkey: &str) -> Result<String, CheckpointError> {
    let v = StandardVerifier::new(vkey.trim()).map_err(|_| CheckpointError::BadVerifierKey)?;
    Ok(signed_note::Verifier::name(&v).to_string())
}

/// The note in `signed`, if it carries a valid signature by `vkey`'s key,
/// with that key's name.
fn signed_by(signed: &[u8], vkey: &str) -> Result<(Note, String), CheckpointError> {
    let verifier =
        StandardVerifier::new(vkey.trim()).map_err(|_| CheckpointError::BadVerifierKey)?;
    let name = signed_note::Verifier::name(&verifier).to_string();
    let note = Note::from_bytes(signed).map_err(|e| CheckpointError::NotANote(e.to_string()))?;
    note.verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| CheckpointError::NotSigned {
            origin: name.clone(),
            detail: e.to_string(),
        })?;
    Ok((note, name))
}

/// Checks a cosigned checkpoint: the log's signature as [`verify`] does, and
/// a valid signature by the witness whose verifier key is `witness_vkey`.
pub fn verify_cosigned(
    signed: &[u8],
    vkey: &str,
    witness_vkey: &str,
) -> Result<Checkpoint, CheckpointError> {
    let cp = verify(signed, vkey)?;
    signed_by(signed, witness_vkey)?;
    Ok(cp)
}

/// Checks `signed` (a signed note) with the log's verifier key `vkey` and
/// returns the checkpoint it carries; refuses a note without a valid
/// signature by that key and a checkpoint of any other origin.
pub fn verify(signed: &[u8], vkey: &str) -> Result<Checkpoint, CheckpointError> {
    let (note, origin) = signed_by(signed, vkey)?;
    let cp = Checkpoint::from_bytes(note.text()).map_err(|_| CheckpointError::NotACheckpoint)?;
    if cp.origin() != origin {
        return Err(CheckpointError::OtherLog {
            found: cp.origin().to_string(),
            expected: origin,
        });
    }
    Ok(cp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Go's golang.org/x/mod/sumdb/note, signed here: the
    /// same bytes, so Cairn's notes are Go's (and the C2SP spec's).
    #[test]
    fn signs_the_go_example_identically() {
        let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        let key = LogKey::from_text(skey).unwrap();
        let mut note = Note::new(text.as_bytes(), &[]).unwrap();
        note.add_sigs(&[&key.signer]).unwrap();
        let want = format!("{text}\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n");
        assert_eq!(String::from_utf8(note.to_bytes()).unwrap(), want);
    }

    #[test]
    fn checkpoints_verify_only_as_signed() {
        let (skey, vkey) = generate("cairn.example/ledger").unwrap();
        let key = LogKey::from_text(&skey).unwrap();
        let root = Hash([7; 32]);
        let signed = key.sign(42, root).unwrap();
        let text = String::from_utf8(signed.clone()).unwrap();
        assert!(text.starts_with("cairn.example/ledger\n42\nBwcH"), "{text}");
        let cp = verify(&signed, &vkey).unwrap();
        assert_eq!(
            (cp.origin(), cp.size(), *cp.hash()),
            ("cairn.example/ledger", 42, root)
        );

        // A changed size, another key, another log: refused.
        let forged = text.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(
            verify(forged.as_bytes(), &vkey),
            Err(CheckpointError::NotSigned { .. })
        ));
        let (_, other_vkey) = generate("cairn.example/ledger").unwrap();
        assert!(matches!(
            verify(&signed, &other_vkey),
            Err(CheckpointError::NotSigned { .. })
        ));
        // A witness adds its signature; both verify, the log's alone still does.
        let (wskey, wvkey) = generate("witness.example").unwrap();
        let cosigned = LogKey::from_text(&wskey).unwrap().cosign(&signed).unwrap();
        assert_eq!(
            verify_cosigned(&cosigned, &vkey, &wvkey).unwrap().size(),
            42
        );
        assert_eq!(verify(&cosigned, &vkey).unwrap().size(), 42);
        assert!(matches!(
            verify_cosigned(&signed, &vkey, &wvkey),
            Err(CheckpointError::NotSigned { .. })
        ));
        let (_, other_wvkey) = generate("witness.example").unwrap();
        assert!(verify_cosigned(&cosigned, &vkey, &other_wvkey).is_err());
        let (other_skey, other_log_vkey) = generate("cairn.example/other").unwrap();
        let other = LogKey::from_text(&other_skey)
            .unwrap()
            .sign(42, root)
            .unwrap();
        assert!(verify(&other, &vkey).is_err());
        verify(&other, &other_log_vkey).unwrap();
        assert!(matches!(
            LogKey::from_text("PRIVATE+KEY+nope"),
            Err(CheckpointError::BadSigningKey)
        ));
        assert!(matches!(
            generate("has space"),
            Err(CheckpointError::BadOrigin(_))
        ));
    }
}
