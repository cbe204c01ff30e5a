//! Appending events to the ledger: exactly once per event id, in batches,
//! each event stored as the exact bytes received together with its RFC 6962
//! leaf hash and a running chain hash; the projections are updated in the
//! same transaction, so they never disagree with the log. Once committed,
//! each entry is re-published on `audit.entry.<kind>` (the log's copy outside
//! PostgreSQL, in log order) before its event is acknowledged.

use crate::projection;
use cairn_bus::{BatchHandler, Delivery, Failure};
use cairn_events::{decode, Envelope, Event};
use std::collections::HashSet;
use tokio::sync::Mutex;
use tokio_postgres::Client;

pub struct Ledger {
    client: Mutex<Client>,
    /// Where committed entries are re-published (none while rebuilding).
    publisher: Option<cairn_bus::Bus>,
}

/// What one append did.
#[derive(Debug, Default)]
pub struct Appended {
    /// Entries new to the log.
    pub added: usize,
    /// `(seq, kind, exact bytes)` of every entry the batch's events have in
    /// the log, new or already there (a redelivery after a crash between
    /// commit and re-publishing must still reach `audit.entry`).
    pub entries: Vec<(u64, &'static str, bytes::Bytes)>,
}

/// A batch's new entries, column by column, for one `INSERT … unnest`.
#[derive(Default)]
struct EntryRows<'a> {
    seq: Vec<i64>,
    event_id: Vec<&'a str>,
    kind: Vec<&'static str>,
    backup_id: Vec<&'a str>,
    entry: Vec<&'a [u8]>,
    leaf_hash: Vec<Vec<u8>>,
    chain_hash: Vec<Vec<u8>>,
}

impl<'a> EntryRows<'a> {
    fn push(&mut self, seq: i64, env: &'a Envelope, raw: &'a [u8], leaf: &[u8], chain: &[u8]) {
        self.seq.push(seq);
        self.event_id.push(env.id.as_str());
        self.kind.push(env.event.kind());
        self.backup_id.push(env.backup_id.as_str());
        self.entry.push(raw);
        self.leaf_hash.push(leaf.to_vec());
        self.chain_hash.push(chain.to_vec());
    }

    async fn insert(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<(), tokio_postgres::Error> {
        if self.seq.is_empty() {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO ledger_entries (seq, event_id, kind, backup_id, entry, leaf_hash, chain_hash)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bytea[], $7::bytea[])",
            &[
                &self.seq,
                &self.event_id,
                &self.kind,
                &self.backup_id,
                &self.entry,
                &self.leaf_hash,
                &self.chain_hash,
            ],
        )
        .await?;
        Ok(())
    }
}

impl Ledger {
    /// Resolves once the ledger's PostgreSQL connection is gone
    /// (`cairn_ledger::db::closed`).
    pub async fn closed(&self) {
        loop {
            if self.client.lock().await.is_closed() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    pub fn new(client: Client, publisher: Option<cairn_bus::Bus>) -> Self {
        Ledger {
            client: Mutex::new(client),
            publisher,
        }
    }

    /// The connection back, once appending is over.
    pub fn into_client(self) -> Client {
        self.client.into_inner()
    }

    /// Appends events (their exact bytes, and decoded) in one transaction.
    pub async fn append(
        &self,
        items: &[(&[u8], &Envelope)],
    ) -> Result<Appended, cairn_ledger::tree::TreeError> {
        let mut client = self.client.lock().await;
        let tx = client.transaction().await?;
        let head = tx
            .query_one(
                "SELECT size, chain_hash FROM ledger_head WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await?;
        let first: i64 = head.get(0);
        let mut size = first;
        let mut leaves: Vec<[u8; 32]> = Vec::new();
        let mut prev: Vec<u8> = head.get(1);
        let ids: Vec<&str> = items.iter().map(|(_, e)| e.id.as_str()).collect();
        let mut out = Appended::default();
        let mut seen: HashSet<String> = HashSet::new();
        for r in tx
            .query(
                "SELECT event_id, seq, kind, entry FROM ledger_entries WHERE event_id = ANY($1) ORDER BY seq",
                &[&ids],
            )
            .await?
        {
            seen.insert(r.get(0));
            let kind: String = r.get(2);
            let kind = Event::known_kind(&kind).unwrap_or("unknown");
            let entry: Vec<u8> = r.get(3);
            out.entries
                .push((r.get::<_, i64>(1) as u64, kind, entry.into()));
        }
        // One statement for all the batch's entries; projections in order,
        // each statement prepared once per batch.
        let mut rows = EntryRows::default();
        let mut projections = projection::Projector::default();
        for (raw, env) in items {
            if !seen.insert(env.id.to_string()) {
                continue;
            }
            size += 1;
            let leaf = cairn_tlog::leaf_hash(raw).0;
            let next = cairn_ledger::chain(&prev, &leaf);
            rows.push(size, env, raw, &leaf, &next);
            projections.apply(&tx, env).await?;
            prev = next.to_vec();
            leaves.push(leaf);
            out.added += 1;
            out.entries.push((
                size as u64,
                env.event.kind(),
                bytes::Bytes::copy_from_slice(raw),
            ));
        }
        projections.flush(&tx).await?;
        rows.insert(&tx).await?;
        let root = cairn_ledger::tree::append(&tx, first as u64, &leaves).await?;
        tx.execute(
            "UPDATE ledger_head SET size = $1, chain_hash = $2, tree_root = $3 WHERE id = 1",
            &[&size, &prev, &root.0.as_slice()],
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Appends, then re-publishes what the batch holds in the log.
    async fn append_and_publish(&self, items: &[(&[u8], &Envelope)]) -> Result<usize, String> {
        let done = self
            .append(items)
            .await
            .map_err(|e| format!("ledger append: {e}"))?;
        if let Some(bus) = &self.publisher {
            bus.publish_entries(&done.entries)
                .await
                .map_err(|e| format!("re-publishing ledger entries: {e}"))?;
        }
        Ok(done.added)
    }
}

#[async_trait::async_trait]
impl BatchHandler for Ledger {
    async fn handle_batch(&self, batch: &[Delivery]) -> Vec<Result<(), Failure>> {
        let decoded: Vec<Result<Envelope, String>> = batch
            .iter()
            .map(|d| decode::<Envelope>(&d.payload, "event").map_err(|e| e.to_string()))
            .collect();
        let good: Vec<(&[u8], &Envelope)> = batch
            .iter()
            .zip(&decoded)
            .filter_map(|(d, e)| e.as_ref().ok().map(|e| (&d.payload[..], e)))
            .collect();
        let whole = if good.is_empty() {
            Ok(0)
        } else {
            self.append_and_publish(&good).await
        };
        match whole {
            Ok(n) => {
                tracing::debug!(appended = n, batch = batch.len(), "ledger batch committed");
                decoded
                    .into_iter()
                    .map(|e| e.map(|_| ()).map_err(Failure::Permanent))
                    .collect()
            }
            Err(batch_err) => {
                // One bad event must not sink its neighbours: retry one by one.
                tracing::warn!(
                    error = batch_err,
                    "ledger batch failed; appending one by one"
                );
                let mut out = Vec::with_capacity(batch.len());
                for (d, e) in batch.iter().zip(decoded) {
                    out.push(match e {
                        Err(reason) => Err(Failure::Permanent(reason)),
                        Ok(env) => self
                            .append_and_publish(&[(&d.payload[..], &env)])
                            .await
                            .map(|_| ())
                            .map_err(Failure::Retry),
                    });
                }
                out
            }
        }
    }
}
