//! The store stage: one worker per network, each on its own durable consumer
//! of the SEALED stream, so a slow or dead network holds back only itself.
//! Writes are idempotent: a chunk already on the network is not written again
//! (content-addressed), backup metadata is atomically replaced.

use cairn_bus::{Bus, Delivery, Failure, Handler};
use cairn_events::subjects::stage;
use cairn_events::{decode, Envelope, Event, ObjectDigest, SealedObject, Stored};
use cairn_networks::{DynNetwork, Put};
use cairn_repo::layout;
use sha2::{Digest, Sha256};
use std::sync::Arc;

pub struct StoreWorker {
    pub bus: Bus,
    pub network: DynNetwork,
    /// `quota_bytes` of the network, if any.
    pub quota: Option<u64>,
    /// Bytes the network holds, as last counted plus what this worker wrote
    /// since (counted once, at the first write that needs it).
    used: tokio::sync::Mutex<Option<u64>>,
}

impl StoreWorker {
    pub fn new(bus: Bus, network: DynNetwork, quota: Option<u64>) -> Self {
        StoreWorker {
            bus,
            network,
            quota,
            used: tokio::sync::Mutex::new(None),
        }
    }

    /// Refuses a write that would take the network past its quota. An object
    /// already there costs nothing.
    async fn within_quota(&self, path: &str, len: u64) -> Result<(), Failure> {
        let Some(quota) = self.quota else {
            return Ok(());
        };
        let mut used = self.used.lock().await;
        let now = match *used {
            Some(u) => u,
            None => {
                let u = self
                    .network
                    .usage()
                    .await
                    .map_err(|e| Failure::Retry(e.to_string()))?
                    .bytes;
                *used = Some(u);
                u
            }
        };
        if now + len > quota
            && !self
                .network
                .exists(path)
                .await
                .map_err(|e| Failure::Retry(e.to_string()))?
        {
            return Err(Failure::Retry(format!(
                "network {} is at its quota ({now} of {quota} bytes; {path} needs {len} more)",
                self.network.name()
            )));
        }
        *used = Some(now + len);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Handler for StoreWorker {
    async fn handle(&self, d: &Delivery) -> Result<(), Failure> {
        let obj: SealedObject =
            decode(&d.payload, "sealed object").map_err(|e| Failure::Permanent(e.to_string()))?;
        let name = self.network.name().to_string();
        if !obj.networks.contains(&name) {
            return Ok(()); // another network's copy
        }
        let path = layout::object(&obj.object);
        let actual = hex::encode(Sha256::digest(&obj.payload));
        if actual != obj.sha256 {
            return Err(Failure::Permanent(format!(
                "{}: payload hashes to {actual}, the message says {}",
                layout::describe(&obj.object),
                obj.sha256
            )));
        }
        let len = obj.payload.len() as u64;
        self.within_quota(&path, len).await?;
        let put = self
            .network
            .put(&path, obj.payload.into(), layout::put_mode(&obj.object))
            .await
            .map_err(|e| Failure::Retry(e.to_string()))?;
        let source = cairn_bus::worker::label(stage::STORE, Some(&name));
        let env = Envelope::new(
            source,
            obj.backup_id,
            Event::ObjectStored(Stored {
                network: name.clone(),
                digest: ObjectDigest {
                    object: obj.object,
                    sha256: obj.sha256.clone(),
                    len,
                },
                existed: put == Put::Existed,
            }),
            &[name.as_bytes(), path.as_bytes(), obj.sha256.as_bytes()],
        );
        self.bus
            .publish_event(&env)
            .await
            .map_err(|e| Failure::Retry(e.to_string()))
    }
}

/// Runs the store worker of one network until the process stops.
pub async fn run(
    bus: Bus,
    network: DynNetwork,
    quota: Option<u64>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let name = network.name().to_string();
    let worker = Arc::new(StoreWorker::new(bus.clone(), network, quota));
    cairn_bus::worker::run(bus, stage::STORE, Some(&name), concurrency, worker).await?;
    Ok(())
}
