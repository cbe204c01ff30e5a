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

/// Decodes `bytes` as `T`, naming `what` in the error.
pub fn decode<T: DeserializeOwned + Versioned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, DecodeError> {
    let value: T =
        rmp_serde::from_slice(bytes).map_err(|source| DecodeError::Malformed { what, source })?;
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
    rmp_serde::from_slice(bytes).map_err(|source| DecodeError::Malformed { what, source })
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
