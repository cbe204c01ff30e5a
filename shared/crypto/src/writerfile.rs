//! The writer file: what a write-only worker (ingest) is given instead of a
//! passphrase. It holds the repository id, the repository's public key and
//! the chunk-id key, and nothing that opens a stored object.
//!
//! The public key is pinned here, in the worker's own configuration, and
//! not read from a network: a network that substituted its own public key
//! would otherwise receive every later backup's data keys.

use crate::{CryptoError, IdKey, Key32, PublicKey, Writer};
use serde::{Deserialize, Serialize};

/// `cairn key writer --out FILE` writes it (mode 0600); `keys.writer_file`
/// names it.
#[derive(Clone, Serialize, Deserialize)]
pub struct WriterFile {
    pub format: u32,
    pub repo_id: String,
    pub public_key: String,
    /// The chunk-id key, hex. A secret: with it, whoever sees a chunk list
    /// can test whether a chunk of given content is in a backup.
    id_key: String,
}

impl std::fmt::Debug for WriterFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterFile")
            .field("repo_id", &self.repo_id)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl WriterFile {
    pub fn new(repo_id: &str, writer: &Writer) -> Self {
        WriterFile {
            format: 1,
            repo_id: repo_id.to_string(),
            public_key: writer.public().to_hex(),
            id_key: hex::encode(writer.id_key().0.as_bytes()),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("writer file serializes")
    }

    /// Reads and checks a writer file (`name` in errors).
    pub fn from_json(name: &str, bytes: &[u8]) -> Result<Self, CryptoError> {
        let bad = |problem: String| CryptoError::WriterFile {
            name: name.to_string(),
            problem,
        };
        let f: WriterFile = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("not a Cairn writer file ({e})")))?;
        if f.format != 1 {
            return Err(bad(format!(
                "format {}, this build reads format 1",
                f.format
            )));
        }
        f.writer().map_err(|e| bad(e.to_string()))?;
        Ok(f)
    }

    pub fn writer(&self) -> Result<Writer, CryptoError> {
        let public = PublicKey::from_hex(&self.public_key)?;
        let id: [u8; 32] = hex::decode(&self.id_key)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| CryptoError::WriterFile {
                name: self.repo_id.clone(),
                problem: "id_key is not 32 hex bytes".into(),
            })?;
        Ok(Writer::new(public, IdKey(Key32(id))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keyring;

    #[test]
    fn round_trips_and_names_bad_files() {
        let ring = Keyring::generate();
        let w = ring.writer().unwrap();
        let f = WriterFile::new("repo1", &w);
        let back = WriterFile::from_json("w.json", &f.to_json()).unwrap();
        assert_eq!(back.writer().unwrap().public(), w.public());
        assert_eq!(
            back.writer().unwrap().id_key().chunk_id(b"x"),
            ring.id_key().chunk_id(b"x")
        );
        assert!(!format!("{back:?}").contains(&back.id_key));
        let err = WriterFile::from_json("w.json", b"{}")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("writer file w.json: not a Cairn writer file"),
            "{err}"
        );
        let mut newer = f.clone();
        newer.format = 2;
        let err = WriterFile::from_json("w.json", &newer.to_json())
            .unwrap_err()
            .to_string();
        assert!(err.contains("format 2"), "{err}");
    }
}
