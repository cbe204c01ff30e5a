//! The encrypt stage: seals each plaintext chunk (and each manifest) with
//! AES-256-GCM under its backup's data key, the object id as associated
//! data, and hands the sealed bytes to the store workers. A pack arrives as
//! its chunks and leaves as one object: each chunk sealed on its own, one
//! after the other, with a table of where each is in its `object.sealed`.
//!
//! Plaintext arrives as core-NATS requests (`<prefix>.seal.<backup>`, one
//! queue group for every replica), which the server never stores; the
//! answer says the object is on SEALED and recorded, or that ingest should
//! ask again later (SEALED full), or never (malformed: dead-lettered
//! without its payload). It holds no key of its own: each request carries
//! its backup's data key, used for that request and dropped, so an encrypt
//! worker never holds a key to a backup it is not sealing right now. It
//! persists nothing.
//!
//! A pack of an erasure-coded backup is sealed as any other; its
//! `object.sealed` also records the digest of each shard the store workers
//! will cut from it, so that what each network must hold is in the ledger
//! before anything is stored.

use bytes::Bytes;
use cairn_bus::{publish, Bus, BusError, Delivery, Failure, Handler};
use cairn_crypto::{DataKeyId, Key32, ObjectKind, Sealer};
use cairn_events::{
    decode, encode, DecodeError, Envelope, Event, ObjectDigest, ObjectKey, PackId, PlainChunk,
    SealedObject, ShardDigest, Shards, Stage, SCHEMA_VERSION,
};
use cairn_repo::layout;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// Why a chunk was not sealed.
#[derive(Debug, thiserror::Error)]
pub enum EncryptError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("chunk lists and data keys are never sealed by encrypt")]
    ChunkList,
    #[error("seal request without a usable data key ({0}): from a Cairn older than repository format 3?")]
    NoDataKey(&'static str),
    #[error("{0}")]
    BadPack(String),
    #[error("sealing task: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl From<EncryptError> for Failure {
    fn from(e: EncryptError) -> Self {
        match e {
            EncryptError::Decode(_)
            | EncryptError::ChunkList
            | EncryptError::NoDataKey(_)
            | EncryptError::BadPack(_) => Failure::permanent(e),
            EncryptError::Task(_) | EncryptError::Bus(_) => Failure::retry(e),
        }
    }
}

/// Payloads sealed on the worker's own task rather than a blocking thread.
const INLINE_SEAL_MAX: usize = 64 * 1024;

pub struct EncryptWorker {
    pub bus: Bus,
    pub source: String,
}

#[async_trait::async_trait]
impl Handler for EncryptWorker {
    async fn handle(&self, d: &Delivery) -> Result<(), Failure> {
        Ok(self.seal(d).await?)
    }
}

impl EncryptWorker {
    async fn seal(&self, d: &Delivery) -> Result<(), EncryptError> {
        let chunk: PlainChunk = decode(&d.payload, "plain chunk")?;
        let sealer = {
            let k = chunk
                .data_key
                .as_ref()
                .ok_or(EncryptError::NoDataKey("none given"))?;
            let key = Key32::from_slice(&k.key).ok_or(EncryptError::NoDataKey("not 32 bytes"))?;
            Sealer::for_data_key(DataKeyId(k.id.0), &key)
        };
        let key_id = chunk
            .data_key
            .as_ref()
            .map(|k| k.id)
            .expect("checked above");
        let chunk_len =
            chunk.payload.len() + chunk.parts.iter().map(|p| p.payload.len()).sum::<usize>();
        let (kind, object_id): (ObjectKind, Vec<u8>) = match &chunk.object {
            ObjectKey::Chunk { id } => (ObjectKind::Chunk, id.0.to_vec()),
            ObjectKey::Pack { id } => {
                let formed = PackId::keyed(&key_id, chunk.parts.iter().map(|p| &p.id));
                if chunk.parts.is_empty() || formed != *id {
                    return Err(EncryptError::BadPack(format!(
                        "pack {id} of backup {}: its {} chunks make pack {formed}",
                        chunk.backup_id,
                        chunk.parts.len()
                    )));
                }
                (ObjectKind::Chunk, Vec::new())
            }
            ObjectKey::Manifest { backup_id } => {
                (ObjectKind::Manifest, backup_id.as_str().as_bytes().to_vec())
            }
            ObjectKey::Catalogue { backup_id } => (
                ObjectKind::Catalogue,
                backup_id.as_str().as_bytes().to_vec(),
            ),
            ObjectKey::ChunkList { .. }
            | ObjectKey::DataKey { .. }
            | ObjectKey::DatasetKey { .. } => return Err(EncryptError::ChunkList),
        };
        let PlainChunk {
            backup_id,
            object,
            networks,
            compressed,
            payload,
            parts,
            retain_until,
            run,
            erasure,
            ..
        } = chunk;
        // A pack's shards are cut by each store worker; sealing records
        // what each must hold. One shard per target network.
        let erasure = match (erasure, &object) {
            (Some(e), ObjectKey::Pack { id }) => {
                if e.n as usize != networks.len() {
                    return Err(EncryptError::BadPack(format!(
                        "pack {id} of backup {backup_id}: {e} needs {} networks, the request names {}",
                        e.n,
                        networks.len()
                    )));
                }
                Some(e)
            }
            (Some(e), other) => {
                return Err(EncryptError::BadPack(format!(
                    "{}: only packs are erasure-coded, not {e}",
                    layout::describe(other)
                )))
            }
            (None, _) => None,
        };
        let work = move || {
            let (sealed, packed) = if parts.is_empty() {
                (
                    sealer.seal(kind, compressed, &object_id, &payload),
                    Vec::new(),
                )
            } else {
                cairn_repo::pack::seal_pack(&sealer, &parts)
            };
            let sha = hex::encode(Sha256::digest(&sealed));
            let shards = erasure.map(|e| {
                cairn_repo::erasure::digests(&sealed, e.k, e.n).map(|files| Shards {
                    k: e.k,
                    files: files
                        .into_iter()
                        .map(|(sha256, len)| ShardDigest { sha256, len })
                        .collect(),
                })
            });
            (sealed, sha, packed, shards)
        };
        // A small file's chunk seals in microseconds: handing it to another
        // thread would cost more than the work.
        let sealed = if chunk_len <= INLINE_SEAL_MAX {
            work()
        } else {
            tokio::task::spawn_blocking(work).await?
        };
        let (payload, sha256, packed, shards) = sealed;
        let shards = shards
            .transpose()
            .map_err(|e| EncryptError::BadPack(e.to_string()))?;
        let path = layout::object(&object);
        let run = run.filter(|_| layout::of_one_run(&object));
        let msg_id = layout::sealed_msg_id(&backup_id, &path, run.as_ref().map(|r| &r.key));
        let digest = ObjectDigest {
            object: object.clone(),
            sha256: sha256.clone(),
            len: payload.len() as u64,
            packed,
            run,
            shards,
        };
        let msg = SealedObject {
            schema: SCHEMA_VERSION,
            backup_id: backup_id.clone(),
            object,
            networks,
            sha256: sha256.clone(),
            payload,
            retain_until,
            run,
            erasure,
        };
        // A full SEALED stream (a slow network) is ingest's to wait out:
        // answer busy before it stops waiting, rather than hold the request.
        publish::publish_within(
            &self.bus.js,
            &self.bus.subjects.sealed(&backup_id),
            &msg_id,
            Bytes::from(encode(&msg)),
            Duration::from_secs(self.bus.cfg.ack_wait_secs.max(1)) / 3,
        )
        .await?;
        cairn_telemetry::metrics::get().chunk("encrypt", digest.len);
        let env = Envelope::new(
            self.source.clone(),
            backup_id,
            Event::ObjectSealed(digest),
            &[path.as_bytes(), sha256.as_bytes()],
        );
        Ok(self.bus.publish_event(&env).await?)
    }
}

/// Answers seal requests until the process stops.
pub async fn run(worker: EncryptWorker, concurrency: usize) -> Result<(), BusError> {
    let bus = worker.bus.clone();
    let (subject, group) = (bus.subjects.all_seal(), bus.subjects.encrypt_group());
    let label = Stage::Encrypt.label(None);
    cairn_bus::request::serve(bus, label, subject, group, concurrency, Arc::new(worker)).await
}
