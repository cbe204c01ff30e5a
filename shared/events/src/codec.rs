//! Encoding on the wire: MessagePack with named fields, and a decoder that
//! refuses unknown schema versions and says what was wrong.

use serde::{de::DeserializeOwned, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed message: not a valid {what} ({source})")]
    Malformed {
        what: &'static str,
        #[source]
        source: rmp_serde::decode::Error,
    },
    #[error("unsupported schema version {found} in {what} (this build reads up to {supported})")]
    Version {
        what: &'static str,
        found: u16,
        supported: u16,
    },
}

/// Encodes with field names, so readers in any language see a map.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own derive-generated types into a Vec cannot fail.
    rmp_serde::to_vec_named(value).expect("MessagePack encoding of a Cairn type")
}

/// How deep MessagePack may nest in what Cairn reads. Its own types nest a
/// few levels; a hostile message of maps nested hundreds deep would
/// otherwise recurse until a worker thread's stack runs out (found by
/// fuzzing: 660 levels overflow a 2 MiB stack in a debug build).
pub const MAX_DEPTH: usize = 32;

/// `rmp_serde::from_slice` nesting at most [`MAX_DEPTH`] deep: every
/// MessagePack decode of bytes Cairn did not make itself goes through it.
pub fn from_msgpack<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<T, rmp_serde::decode::Error> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut de)
}

/// Decodes `bytes` as `T`, naming `what` in the error.
pub fn decode<T: DeserializeOwned + Versioned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, DecodeError> {
    let value: T = from_msgpack(bytes).map_err(|source| DecodeError::Malformed { what, source })?;
    let found = value.schema();
    if found == 0 || found > crate::SCHEMA_VERSION {
        return Err(DecodeError::Version {
            what,
            found,
            supported: crate::SCHEMA_VERSION,
        });
    }
    Ok(value)
}

/// Decodes a reply that carries no schema version of its own (an
/// [`crate::Answer`]: its request carried one), naming `what` in the error.
pub fn decode_reply<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, DecodeError> {
    from_msgpack(bytes).map_err(|source| DecodeError::Malformed { what, source })
}

/// Types that carry a schema version.
pub trait Versioned {
    fn schema(&self) -> u16;
}

impl Versioned for crate::Envelope {
    fn schema(&self) -> u16 {
        self.schema
    }
}
impl Versioned for crate::PlainChunk {
    fn schema(&self) -> u16 {
        self.schema
    }
}
impl Versioned for crate::SealedObject {
    fn schema(&self) -> u16 {
        self.schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    /// Maps nested far deeper than any Cairn type: refused by name, not a
    /// stack overflow (which rmp-serde's own limit of 1024 allowed).
    #[test]
    fn deep_nesting_is_refused() {
        // An event with an unknown field holding arrays 100 deep: within
        // rmp-serde's own limit, past Cairn's.
        let mut bytes = vec![0x81u8, 0xa1, b'x'];
        bytes.extend(std::iter::repeat_n(0x91u8, 100));
        bytes.push(0xc0);
        let e = decode::<Envelope>(&bytes, "event").unwrap_err();
        assert!(e.to_string().contains("event"), "{e}");
        assert!(e.to_string().contains("depth"), "{e}");
    }

    fn sample() -> Envelope {
        Envelope::new(
            "cli",
            BackupId::generate(),
            Event::BackupRequested(BackupRequest {
                dataset: "app".into(),
                tags: vec!["gdpr".into()],
                source: Source::Paths {
                    paths: vec!["/srv/app".into()],
                },
                networks: vec![],
                min_copies: None,
                requested_by: "test".into(),
                force_read: false,
            }),
            &[],
        )
    }

    #[test]
    fn round_trips_with_named_fields() {
        let env = sample();
        let bytes = encode(&env);
        // Named fields: the map keys are on the wire.
        assert!(bytes.windows(7).any(|w| w == b"dataset"));
        let back: Envelope = decode(&bytes, "event").unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn garbage_and_future_versions_are_named() {
        let err = decode::<Envelope>(b"\x93garbage", "event")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("malformed message: not a valid event"),
            "{err}"
        );
        let mut env = sample();
        env.schema = 99;
        let err = decode::<Envelope>(&encode(&env), "event")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported schema version 99"), "{err}");
    }
}
