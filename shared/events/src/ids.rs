//! Identifiers: backups, chunks and events. Each validates itself on decode,
//! so a malformed id is rejected where it enters, with its name in the error.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// An id's text form, both ways: parsing (`FromStr`, and `TryFrom<String>`
/// for serde) always goes through the type's `parse`, so no id enters
/// unchecked; `$text` is the method giving the text.
macro_rules! text_form {
    ($t:ident, $text:ident) => {
        impl std::str::FromStr for $t {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                $t::parse(s)
            }
        }
        impl TryFrom<String> for $t {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                $t::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(id: $t) -> String {
                id.to_string()
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.$text())
            }
        }
    };
}

text_form!(BackupId, as_str);
text_form!(ChunkId, to_hex);
text_form!(PackId, to_hex);
text_form!(EventId, as_str);
text_form!(KeyId, to_hex);

/// A backup id: 1–64 characters from `[A-Za-z0-9_-]`, so it is a valid
/// NATS subject token and file name. New ids are UUIDv7 (time-ordered).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        BackupId(uuid::Uuid::now_v7().to_string())
    }
    /// The pseudo backup id of repository-wide events.
    pub fn repo() -> Self {
        BackupId("repo".into())
    }
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(BackupId(s.to_string()))
        } else {
            Err(IdError::Backup(s.chars().take(80).collect()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupId({})", self.0)
    }
}

/// A chunk id: the keyed BLAKE3 hash of the chunk's plaintext under the
/// repository's id key. Without that key no one can confirm known plaintext.
/// Serialized as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct ChunkId(#[schemars(with = "String")] pub [u8; 32]);

/// A 32-byte hash id's parsing from and printing as hex; `$err` names it
/// in errors.
macro_rules! hex_id {
    ($t:ident, $err:ident) => {
        impl $t {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out)
                    .map_err(|_| IdError::$err(s.chars().take(80).collect()))?;
                Ok($t(out))
            }
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), &self.to_hex()[..16])
            }
        }
    };
}

hex_id!(ChunkId, Chunk);
hex_id!(PackId, Pack);

/// A pack id: names a pack (many sealed chunks stored as one object). A
/// hash of the ids of the chunks it holds, in order, so that a pack formed
/// again from the same chunks has the same name. Serialized as 64
/// lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct PackId(#[schemars(with = "String")] pub [u8; 32]);

/// A data key id: names one backup's data key (format 3), whose wrapped
/// copy is `datakeys/<id>`; every object sealed under it carries it in its
/// header. Serialized as 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(#[schemars(with = "String")] pub [u8; 16]);

impl KeyId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| IdError::Key(s.chars().take(80).collect()))?;
        Ok(KeyId(out))
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

impl PackId {
    /// The pack sealed under data key `key` holding `ids`, in this order
    /// (format 3). The key is part of the name: two backups that pack the
    /// same new chunks at once seal them under different keys, and must not
    /// write different bytes under one name.
    pub fn keyed<'a>(key: &KeyId, ids: impl IntoIterator<Item = &'a ChunkId>) -> Self {
        let mut h = Sha256::new();
        h.update(b"cairn pack v3");
        h.update(key.0);
        for id in ids {
            h.update(id.0);
        }
        PackId(h.finalize().into())
    }

    /// The pack holding `ids`, in this order (format 2).
    pub fn of<'a>(ids: impl IntoIterator<Item = &'a ChunkId>) -> Self {
        let mut h = Sha256::new();
        h.update(b"cairn pack v1");
        for id in ids {
            h.update(id.0);
        }
        PackId(h.finalize().into())
    }
}

/// An event id: 32 hex characters, derived from the event's kind and content,
/// so the same event emitted twice has the same id (JetStream's duplicate
/// window and the ledger's unique key both rely on it).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    pub fn derive(parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        EventId(hex::encode(&h.finalize()[..16]))
    }
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(EventId(s.to_string()))
        } else {
            Err(IdError::Event(s.chars().take(80).collect()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdError {
    #[error("invalid backup id {0:?}: expected 1-64 characters from [A-Za-z0-9_-]")]
    Backup(String),
    #[error("invalid chunk id {0:?}: expected 64 hex characters")]
    Chunk(String),
    #[error("invalid pack id {0:?}: expected 64 hex characters")]
    Pack(String),
    #[error("invalid event id {0:?}: expected 32 hex characters")]
    Event(String),
    #[error("invalid data key id {0:?}: expected 32 hex characters")]
    Key(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_ids_must_be_subject_tokens() {
        assert!(BackupId::parse(&BackupId::generate().to_string()).is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", &"x".repeat(65)] {
            let err = BackupId::parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid backup id"), "{err}");
        }
    }

    #[test]
    fn pack_ids_depend_on_the_chunks_and_their_order() {
        let (a, b) = (ChunkId([1; 32]), ChunkId([2; 32]));
        let p = PackId::of(&[a, b]);
        let k = KeyId([3; 16]);
        assert_eq!(PackId::keyed(&k, &[a, b]), PackId::keyed(&k, &[a, b]));
        assert_ne!(
            PackId::keyed(&k, &[a, b]),
            PackId::keyed(&KeyId([4; 16]), &[a, b])
        );
        assert_ne!(PackId::keyed(&k, &[a, b]), p);
        assert!(KeyId::parse("../x").is_err());
        assert_eq!(KeyId::parse(&k.to_hex()).unwrap(), k);
        assert_eq!(p, PackId::of(&[a, b]));
        assert_ne!(p, PackId::of(&[b, a]));
        assert_ne!(p.0, a.0);
        assert_eq!(PackId::parse(&p.to_hex()).unwrap(), p);
        assert!(PackId::parse("zz")
            .unwrap_err()
            .to_string()
            .contains("pack id"));
    }

    #[test]
    fn event_ids_depend_on_every_part_and_its_boundaries() {
        let a = EventId::derive(&[b"ab", b"c"]);
        assert_eq!(a, EventId::derive(&[b"ab", b"c"]));
        assert_ne!(a, EventId::derive(&[b"a", b"bc"]));
        assert_ne!(a, EventId::derive(&[b"ab", b"d"]));
    }
}
