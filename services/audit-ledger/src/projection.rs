//! Projections of the log that the CLI and the stages query: backups and
//! their status, the digest each object must have, and which network holds
//! which chunk. Each is a pure function of the events, so replaying the
//! EVENTS stream into an empty database rebuilds them.

use cairn_events::{Envelope, Event, ObjectKey};
use std::collections::HashMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Statement, Transaction};

/// Statements prepared in one transaction, so each projection is one round
/// trip (a batch of a thousand events would otherwise prepare a thousand).
#[derive(Default)]
pub struct Prepared(HashMap<&'static str, Statement>);

impl Prepared {
    async fn execute(
        &mut self,
        tx: &Transaction<'_>,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let stmt = match self.0.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = tx.prepare(sql).await?;
                self.0.insert(sql, s.clone());
                s
            }
        };
        tx.execute(&stmt, params).await
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("event parts serialize")
}

pub async fn apply(
    tx: &Transaction<'_>,
    prepared: &mut Prepared,
    env: &Envelope,
) -> Result<(), tokio_postgres::Error> {
    let id = env.backup_id.as_str();
    match &env.event {
        Event::BackupRequested(r) => {
            prepared.execute(
                tx,
                "INSERT INTO backups (backup_id, dataset, tags, source, networks, status, requested_at, requested_by)
                 VALUES ($1, $2, $3, $4::text::jsonb, $5, 'requested', $6::text::timestamptz, $7)
                 ON CONFLICT (backup_id) DO UPDATE SET dataset = $2, tags = $3, source = $4::text::jsonb,
                     requested_at = $6::text::timestamptz, requested_by = $7",
                &[&id, &r.dataset, &r.tags, &json(&r.source), &r.networks, &env.at, &r.requested_by],
            )
            .await?;
        }
        Event::BackupStarted { .. } => {
            prepared.execute(
                tx,
                "UPDATE backups SET status = 'running' WHERE backup_id = $1 AND status = 'requested'",
                &[&id],
            )
            .await?;
        }
        Event::BackupIngested(i) => {
            prepared.execute(
                tx,
                "UPDATE backups SET status = CASE WHEN status IN ('requested', 'running') THEN 'verifying' ELSE status END,
                     stats = $2::text::jsonb, networks = $3 WHERE backup_id = $1",
                &[&id, &json(&i.stats), &i.networks],
            )
            .await?;
        }
        Event::BackupCompleted(_) | Event::BackupDegraded(_) | Event::BackupFailed(_) => {
            let (status, o) = env.event.outcome().expect("an outcome");
            prepared.execute(
                tx,
                "INSERT INTO backups (backup_id, status, finished_at, stats, outcome)
                 VALUES ($1, $2, $3::text::timestamptz, $4::text::jsonb, $5::text::jsonb)
                 ON CONFLICT (backup_id) DO UPDATE SET status = $2, finished_at = $3::text::timestamptz,
                     stats = $4::text::jsonb, outcome = $5::text::jsonb",
                &[&id, &status, &env.at, &json(&o.stats), &json(o)],
            )
            .await?;
        }
        Event::BackupForgotten(_) => {
            prepared
                .execute(
                    tx,
                    "UPDATE backups SET status = 'forgotten' WHERE backup_id = $1",
                    &[&id],
                )
                .await?;
        }
        Event::ObjectSealed(d) => {
            let path = cairn_repo::layout::object(&d.object);
            prepared
                .execute(
                    tx,
                    "INSERT INTO object_digests (path, sha256, len) VALUES ($1, $2, $3)
                 ON CONFLICT (path) DO UPDATE SET sha256 = $2, len = $3",
                    &[&path, &d.sha256, &(d.len as i64)],
                )
                .await?;
        }
        Event::ObjectStored(s) => {
            if let ObjectKey::Chunk { id: chunk } = &s.digest.object {
                prepared.execute(
                    tx,
                    "INSERT INTO chunk_copies (chunk_id, network) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&chunk.0.as_slice(), &s.network],
                )
                .await?;
            }
        }
        Event::ObjectDeleted { network, object } => {
            if let ObjectKey::Chunk { id: chunk } = object {
                prepared
                    .execute(
                        tx,
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
