//! Projections of the log that the CLI and the stages query: backups and
//! their status, the digest each object must have, and which network holds
//! which chunk. Each is a pure function of the events, so replaying the
//! EVENTS stream into an empty database rebuilds them.

use cairn_events::{Envelope, Event, ObjectKey};
use tokio_postgres::Transaction;

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("event parts serialize")
}

pub async fn apply(tx: &Transaction<'_>, env: &Envelope) -> Result<(), tokio_postgres::Error> {
    let id = env.backup_id.as_str();
    match &env.event {
        Event::BackupRequested(r) => {
            tx.execute(
                "INSERT INTO backups (backup_id, dataset, tags, source, networks, status, requested_at, requested_by)
                 VALUES ($1, $2, $3, $4::text::jsonb, $5, 'requested', $6::text::timestamptz, $7)
                 ON CONFLICT (backup_id) DO UPDATE SET dataset = $2, tags = $3, source = $4::text::jsonb,
                     requested_at = $6::text::timestamptz, requested_by = $7",
                &[&id, &r.dataset, &r.tags, &json(&r.source), &r.networks, &env.at, &r.requested_by],
            )
            .await?;
        }
        Event::BackupStarted { .. } => {
            tx.execute(
                "UPDATE backups SET status = 'running' WHERE backup_id = $1 AND status = 'requested'",
                &[&id],
            )
            .await?;
        }
        Event::BackupIngested(i) => {
            tx.execute(
                "UPDATE backups SET status = CASE WHEN status IN ('requested', 'running') THEN 'verifying' ELSE status END,
                     stats = $2::text::jsonb, networks = $3 WHERE backup_id = $1",
                &[&id, &json(&i.stats), &i.networks],
            )
            .await?;
        }
        Event::BackupCompleted(_) | Event::BackupDegraded(_) | Event::BackupFailed(_) => {
            let (status, o) = env.event.outcome().expect("an outcome");
            tx.execute(
                "INSERT INTO backups (backup_id, status, finished_at, stats, outcome)
                 VALUES ($1, $2, $3::text::timestamptz, $4::text::jsonb, $5::text::jsonb)
                 ON CONFLICT (backup_id) DO UPDATE SET status = $2, finished_at = $3::text::timestamptz,
                     stats = $4::text::jsonb, outcome = $5::text::jsonb",
                &[&id, &status, &env.at, &json(&o.stats), &json(o)],
            )
            .await?;
        }
        Event::BackupForgotten(_) => {
            tx.execute(
                "UPDATE backups SET status = 'forgotten' WHERE backup_id = $1",
                &[&id],
            )
            .await?;
        }
        Event::ObjectSealed(d) => {
            let path = cairn_repo::layout::object(&d.object);
            tx.execute(
                "INSERT INTO object_digests (path, sha256, len) VALUES ($1, $2, $3)
                 ON CONFLICT (path) DO UPDATE SET sha256 = $2, len = $3",
                &[&path, &d.sha256, &(d.len as i64)],
            )
            .await?;
        }
        Event::ObjectStored(s) => {
            if let ObjectKey::Chunk { id: chunk } = &s.digest.object {
                tx.execute(
                    "INSERT INTO chunk_copies (chunk_id, network) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&chunk.0.as_slice(), &s.network],
                )
                .await?;
            }
        }
        Event::ObjectDeleted { network, object } => {
            if let ObjectKey::Chunk { id: chunk } = object {
                tx.execute(
                    "DELETE FROM chunk_copies WHERE chunk_id = $1 AND network = $2",
                    &[&chunk.0.as_slice(), network],
                )
                .await?;
            }
        }
        Event::BackupRestored(_)
        | Event::ForgetRequested { .. }
        | Event::RepoInitialised { .. }
        | Event::DeadLettered(_) => {}
    }
    Ok(())
}
