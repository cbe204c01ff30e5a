//! Sending a dead letter back where it came from. A stage gives up on a
//! message (`worker::dead_letter`) and keeps it on the DLQ stream with its
//! reason; once an operator has fixed the cause (a network back, a
//! configuration corrected) they ask for it again. The message goes back
//! to the subject it arrived on, so every consumer of that subject sees it
//! once more: Cairn's stages are idempotent (JetStream delivers at least
//! once), and the ledger records an event id only once.

use crate::{publish, Bus, BusError};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Why a dead letter cannot be sent again.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("no dead letter of stage {stage} with payload SHA-256 {sha256} on the DLQ stream (it keeps 1 GiB, the oldest dropped)")]
    NotFound { stage: String, sha256: String },
    #[error("stage {stage} did not keep the payload of what it gave up on {subject} (it may hold key or plaintext material); ask for the work again instead (a new backup, `cairn repair`)")]
    NoPayload { stage: String, subject: String },
    #[error("the dead letter of stage {stage} does not say where it came from (no Cairn-Dlq-Subject header)")]
    NoSubject { stage: String },
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// A dead letter sent again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Redriven {
    /// Where it went: the subject it first arrived on.
    pub subject: String,
    /// Its place on the DLQ stream (it stays there, as the record).
    pub dlq_seq: u64,
}

/// Whether a DLQ message is the dead letter of `sha256`, and if so the
/// subject it came from. Pure, for the tests.
pub fn origin(headers: Option<&async_nats::HeaderMap>, sha256: &str) -> Option<Option<String>> {
    let h = headers?;
    let sha = h.get("Cairn-Dlq-Payload-Sha256")?.as_str();
    if !sha.eq_ignore_ascii_case(sha256) {
        return None;
    }
    Some(
        h.get("Cairn-Dlq-Subject")
            .map(|v| v.as_str().to_string())
            .filter(|s| !s.is_empty()),
    )
}

/// Whether `payload` is the message whose SHA-256 the dead letter
/// recorded: a stage that keeps no payload leaves it empty.
pub fn kept(payload: &[u8], sha256: &str) -> bool {
    hex::encode(Sha256::digest(payload)).eq_ignore_ascii_case(sha256)
}

impl Bus {
    /// Sends the newest dead letter of `stage` whose payload has SHA-256
    /// `sha256` (the `event.deadlettered` entry names both) back to the
    /// subject it arrived on. `tag` makes its message id new, so the
    /// stream's duplicate window does not drop it.
    pub async fn redrive(
        &self,
        stage: &str,
        sha256: &str,
        tag: &str,
    ) -> Result<Redriven, RedriveError> {
        let mut found: Option<(String, Bytes, u64)> = None;
        let mut r = self
            .replay(&self.subjects.dlq_stream(), &self.subjects.dlq(stage))
            .await?;
        while let Some(m) = r.next().await {
            let m = m?;
            match origin(m.headers.as_ref(), sha256) {
                Some(Some(subject)) => found = Some((subject, m.payload, m.stream_seq)),
                Some(None) => {
                    return Err(RedriveError::NoSubject {
                        stage: stage.to_string(),
                    })
                }
                None => {}
            }
        }
        let Some((subject, payload, dlq_seq)) = found else {
            return Err(RedriveError::NotFound {
                stage: stage.to_string(),
                sha256: sha256.to_string(),
            });
        };
        if !kept(&payload, sha256) {
            return Err(RedriveError::NoPayload {
                stage: stage.to_string(),
                subject,
            });
        }
        let msg_id = format!("redrive-{stage}-{dlq_seq}-{tag}");
        publish::publish_once(&self.js, &subject, &msg_id, payload).await?;
        tracing::info!(stage, subject, dlq_seq, "dead letter sent again");
        Ok(Redriven { subject, dlq_seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(sha: &str, subject: Option<&str>) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Cairn-Dlq-Payload-Sha256", sha);
        if let Some(s) = subject {
            h.insert("Cairn-Dlq-Subject", s);
        }
        h
    }

    #[test]
    fn a_dead_letter_is_matched_by_its_payload_digest() {
        let h = headers("ABCD", Some("p.evt.x.1"));
        assert_eq!(origin(Some(&h), "abcd"), Some(Some("p.evt.x.1".into())));
        assert_eq!(origin(Some(&h), "abce"), None);
        assert_eq!(origin(None, "abcd"), None);
        assert_eq!(origin(Some(&headers("abcd", None)), "abcd"), Some(None));
    }

    #[test]
    fn an_empty_payload_is_kept_only_if_that_is_what_was_dead_lettered() {
        let sha = hex::encode(Sha256::digest(b"event"));
        assert!(kept(b"event", &sha));
        assert!(!kept(b"", &sha));
        assert!(kept(b"", &hex::encode(Sha256::digest(b""))));
    }
}
