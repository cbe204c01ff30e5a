//! The live feed: one subscription per console process to every event
//! (`<prefix>.evt.>`, what the EVENTS stream records) and every ledger entry
//! re-published on AUDIT (`<prefix>.audit.entry.>`), fanned out to each
//! open page. Only the kind, the backup and the ledger position travel to
//! the page, never an event's content: the page asks the API for what it
//! shows.

use cairn_bus::Bus;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::broadcast;

/// One thing that happened, as the page hears of it.
#[derive(Debug, Clone, Serialize)]
pub struct Happened {
    /// `event` (sent by a stage) or `ledger` (recorded in the ledger).
    #[serde(skip)]
    pub source: &'static str,
    pub kind: String,
    pub backup_id: String,
    /// The ledger entry's position, for `ledger`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// How many happenings a slow page may fall behind before it is told to
/// load again.
const BACKLOG: usize = 4096;

#[derive(Clone)]
pub struct Feed(broadcast::Sender<Happened>);

impl Feed {
    pub async fn start(bus: &Bus) -> Result<Feed, cairn_bus::BusError> {
        let (tx, _) = broadcast::channel(BACKLOG);
        let subscribe = |subject: String| {
            let client = bus.client.clone();
            async move {
                client.subscribe(subject.clone()).await.map_err(|e| {
                    cairn_bus::BusError::JetStream(format!("subscribe to {subject}: {e}"))
                })
            }
        };
        let events = subscribe(bus.subjects.all_events()).await?;
        let entries = subscribe(bus.subjects.all_audit_entries()).await?;
        let prefix = format!("{}.audit.entry.", bus.subjects.prefix());
        let t = tx.clone();
        let subjects = bus.subjects.clone();
        tokio::spawn(async move {
            let mut events = events;
            while let Some(m) = events.next().await {
                let Some((kind, backup)) = subjects.parse_event(m.subject.as_str()) else {
                    continue;
                };
                let _ = t.send(Happened {
                    source: "event",
                    kind,
                    backup_id: backup.to_string(),
                    seq: None,
                });
            }
        });
        let t = tx.clone();
        tokio::spawn(async move {
            let mut entries = entries;
            while let Some(m) = entries.next().await {
                let Ok(env) = cairn_events::decode::<cairn_events::Envelope>(&m.payload, "entry")
                else {
                    continue;
                };
                let seq = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .and_then(|v| v.as_str().strip_prefix("entry-")?.parse().ok());
                let _ = t.send(Happened {
                    source: "ledger",
                    kind: m.subject.as_str().trim_start_matches(&prefix).to_string(),
                    backup_id: env.backup_id.to_string(),
                    seq,
                });
            }
        });
        Ok(Feed(tx))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Happened> {
        self.0.subscribe()
    }
}
