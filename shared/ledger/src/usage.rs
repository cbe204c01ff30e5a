//! What each network holds and what was asked of it, from the log: the
//! `network_objects` and `network_traffic` projections (migration 12), how
//! events change them, filling them from an existing log, the reads `cairn
//! cost` and the quotas make, and recording a process's requests
//! (`network.traffic`).
//!
//! A quota counted here is the same for every process and every replica:
//! forget, the collector, migration and shredding lower it as they record
//! what they deleted.

use cairn_events::{Envelope, Event, NetworkRequests, ObjectKey, Traffic};
use cairn_repo::layout;
use tokio_postgres::GenericClient;

/// The event kinds that change `network_objects` or `network_traffic`.
pub const KINDS: &[&str] = &[
    "object.stored",
    "objects.recovered",
    "object.deleted",
    "chunks.deleted",
    "backup.forgotten",
    "backup.left",
    "dataset.shredded",
    "network.traffic",
];

/// Applies events to the two projections. Stored objects are gathered and
/// written as one statement; any deletion first writes what was gathered,
/// so a delete never runs ahead of the store it undoes.
#[derive(Default)]
pub struct UsageProjector {
    /// (network, path, len, backup, at)
    stored: Vec<(String, String, i64, String, String)>,
}

impl UsageProjector {
    pub async fn apply<C: GenericClient>(
        &mut self,
        c: &C,
        env: &Envelope,
    ) -> Result<(), tokio_postgres::Error> {
        let id = env.backup_id.as_str();
        match &env.event {
            Event::ObjectStored(st) => {
                self.stored.push((
                    st.network.clone(),
                    layout::object(&st.digest.object),
                    st.digest.len as i64,
                    id.to_string(),
                    env.at.clone(),
                ));
                Ok(())
            }
            Event::ObjectsRecovered(r) => {
                for d in &r.objects {
                    let path = layout::object(&d.object);
                    for n in &r.networks {
                        // A shard's length where the network holds one.
                        let len = r
                            .shards
                            .iter()
                            .find(|s| s.path == path && &s.network == n)
                            .and_then(|s| d.shards.as_ref()?.files.get(s.index as usize))
                            .map(|f| f.len)
                            .unwrap_or(d.len);
                        self.stored.push((
                            n.clone(),
                            path.clone(),
                            len as i64,
                            id.to_string(),
                            env.at.clone(),
                        ));
                    }
                }
                Ok(())
            }
            Event::ObjectDeleted { network, object } => {
                self.flush(c).await?;
                let paths = vec![layout::object(object)];
                gone(c, std::slice::from_ref(network), &paths).await
            }
            Event::ChunksDeleted(b) => {
                self.flush(c).await?;
                let paths: Vec<String> = b
                    .chunks
                    .iter()
                    .map(|id| layout::object(&ObjectKey::Chunk { id: *id }))
                    .chain(
                        b.packs
                            .iter()
                            .map(|id| layout::object(&ObjectKey::Pack { id: *id })),
                    )
                    .collect();
                gone(c, std::slice::from_ref(&b.network), &paths).await
            }
            Event::BackupForgotten(f) => {
                self.flush(c).await?;
                metadata_gone(c, &f.networks, &[id]).await
            }
            Event::BackupLeft(l) => {
                self.flush(c).await?;
                metadata_gone(c, &l.networks, &[id]).await
            }
            Event::DatasetShredded(s) => {
                self.flush(c).await?;
                let keys: Vec<String> = s
                    .keys
                    .iter()
                    .map(|k| layout::object(&ObjectKey::DatasetKey { id: *k }))
                    .collect();
                gone(c, &s.deleted_from, &keys).await?;
                let backups: Vec<&str> = s.backups.iter().map(|b| b.as_str()).collect();
                metadata_gone(c, &s.deleted_from, &backups).await?;
                // Each backup's own data key went with it.
                c.execute(
                    "DELETE FROM network_objects WHERE network = ANY($1) AND backup_id = ANY($2)
                     AND left(path, length($3)) = $3",
                    &[&s.deleted_from, &backups, &layout::DATA_KEYS_DIR],
                )
                .await?;
                Ok(())
            }
            Event::NetworkTraffic(t) => {
                for n in &t.networks {
                    let v = |x: u64| x as i64;
                    c.execute(
                        "INSERT INTO network_traffic (event_id, network, purpose, at, gets, puts, heads,
                                                      lists, deletes, locks, bytes_read, bytes_written)
                         VALUES ($1, $2, $3, $4::text::timestamptz, $5, $6, $7, $8, $9, $10, $11, $12)
                         ON CONFLICT DO NOTHING",
                        &[&env.id.as_str(), &n.network, &t.purpose, &env.at, &v(n.gets), &v(n.puts),
                          &v(n.heads), &v(n.lists), &v(n.deletes), &v(n.locks), &v(n.bytes_read),
                          &v(n.bytes_written)],
                    )
                    .await?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Writes the gathered stored objects. An object stored again keeps its
    /// first backup and time; its length follows the latest write (a
    /// metadata object a retry rewrote).
    pub async fn flush<C: GenericClient>(&mut self, c: &C) -> Result<(), tokio_postgres::Error> {
        if self.stored.is_empty() {
            return Ok(());
        }
        // One row per (network, path) per statement: ON CONFLICT may not
        // touch a row twice.
        // The first store of a path in the batch gives its backup and time
        // (as a later batch's conflict keeps them), the last its length.
        let mut first: std::collections::HashMap<(&str, &str), (usize, i64)> =
            std::collections::HashMap::new();
        for (i, r) in self.stored.iter().enumerate() {
            first
                .entry((r.0.as_str(), r.1.as_str()))
                .and_modify(|e| e.1 = r.2)
                .or_insert((i, r.2));
        }
        let mut keep: Vec<(usize, i64)> = first.into_values().collect();
        keep.sort_unstable();
        let (mut nets, mut paths, mut lens, mut ids, mut ats) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, len) in keep {
            let r = &self.stored[i];
            nets.push(r.0.clone());
            paths.push(r.1.clone());
            lens.push(len);
            ids.push(r.3.clone());
            ats.push(r.4.clone());
        }
        self.stored.clear();
        c.execute(
            "INSERT INTO network_objects (network, path, len, backup_id, stored_at)
             SELECT n, p, l, b, a::timestamptz
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[]) AS s(n, p, l, b, a)
             ON CONFLICT (network, path) DO UPDATE SET len = EXCLUDED.len",
            &[&nets, &paths, &lens, &ids, &ats],
        )
        .await?;
        Ok(())
    }
}

async fn gone<C: GenericClient>(
    c: &C,
    networks: &[String],
    paths: &[String],
) -> Result<(), tokio_postgres::Error> {
    if networks.is_empty() || paths.is_empty() {
        return Ok(());
    }
    c.execute(
        "DELETE FROM network_objects WHERE network = ANY($1) AND path = ANY($2)",
        &[&networks, &paths],
    )
    .await?;
    Ok(())
}

/// The backups' manifests, chunk lists and catalogue entries (everything
/// under `backups/<id>/`) are gone from `networks`.
async fn metadata_gone<C: GenericClient>(
    c: &C,
    networks: &[String],
    backups: &[&str],
) -> Result<(), tokio_postgres::Error> {
    if networks.is_empty() || backups.is_empty() {
        return Ok(());
    }
    // `backups/<id>/` up to `backups/<id>0`, the next string after every
    // path under it ('0' follows '/'): a range the primary key's index
    // serves (paths sort bytewise, `COLLATE "C"`).
    let from: Vec<String> = backups.iter().map(|b| format!("backups/{b}/")).collect();
    let to: Vec<String> = backups.iter().map(|b| format!("backups/{b}0")).collect();
    c.execute(
        "DELETE FROM network_objects o USING unnest($2::text[], $3::text[]) AS d(lo, hi)
         WHERE o.network = ANY($1) AND o.path >= d.lo AND o.path < d.hi",
        &[&networks, &from, &to],
    )
    .await?;
    Ok(())
}

/// Fills the projections from the entries already in the log (migration
/// 12, inside its transaction), in log order, a page at a time.
pub async fn backfill<C: GenericClient>(c: &C) -> Result<u64, String> {
    let kinds: Vec<&str> = KINDS.to_vec();
    let mut p = UsageProjector::default();
    let mut after = 0i64;
    let mut applied = 0u64;
    loop {
        let rows = c
            .query(
                "SELECT seq, entry FROM ledger_entries WHERE seq > $1 AND kind = ANY($2)
                 ORDER BY seq LIMIT 5000",
                &[&after, &kinds],
            )
            .await
            .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            after = r.get(0);
            let bytes: Vec<u8> = r.get(1);
            let env: Envelope = cairn_events::decode(&bytes, "ledger entry")
                .map_err(|e| format!("entry {after}: {e}"))?;
            p.apply(c, &env).await.map_err(|e| e.to_string())?;
            applied += 1;
        }
        p.flush(c).await.map_err(|e| e.to_string())?;
    }
    Ok(applied)
}

/// What one network holds, as the ledger counts it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Held {
    pub network: String,
    pub objects: u64,
    pub bytes: u64,
}

/// Objects and bytes per network; of the backups of `dataset` only (what
/// they added) when one is given.
pub async fn held<C: GenericClient>(
    c: &C,
    dataset: Option<&str>,
) -> Result<Vec<Held>, tokio_postgres::Error> {
    let rows = match dataset {
        None => {
            c.query(
                "SELECT network, count(*), coalesce(sum(len), 0)::bigint FROM network_objects
                 GROUP BY network ORDER BY network",
                &[],
            )
            .await?
        }
        Some(d) => {
            c.query(
                "SELECT o.network, count(*), coalesce(sum(o.len), 0)::bigint
                 FROM network_objects o JOIN backups b USING (backup_id)
                 WHERE b.dataset = $1 GROUP BY o.network ORDER BY o.network",
                &[&d],
            )
            .await?
        }
    };
    Ok(rows
        .iter()
        .map(|r| Held {
            network: r.get(0),
            objects: r.get::<_, i64>(1) as u64,
            bytes: r.get::<_, i64>(2) as u64,
        })
        .collect())
}

/// Bytes each dataset's backups added to each network and are still
/// there: (dataset, network, bytes).
pub async fn held_by_dataset<C: GenericClient>(
    c: &C,
) -> Result<Vec<(String, String, u64)>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT b.dataset, o.network, coalesce(sum(o.len), 0)::bigint
             FROM network_objects o JOIN backups b USING (backup_id)
             GROUP BY b.dataset, o.network ORDER BY 1, 2",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64))
        .collect())
}

/// Bytes `network` holds, as the ledger counts them (what a quota is held
/// to).
pub async fn used<C: GenericClient>(c: &C, network: &str) -> Result<u64, tokio_postgres::Error> {
    let r = c
        .query_one(
            "SELECT coalesce(sum(len), 0)::bigint FROM network_objects WHERE network = $1",
            &[&network],
        )
        .await?;
    Ok(r.get::<_, i64>(0) as u64)
}

/// Bytes `network` holds as the ledger counts them, and which of `paths`
/// it already counts: one statement, so one snapshot (a writer adds to
/// the count what it wrote and the ledger does not show yet).
pub async fn used_and_counted<C: GenericClient>(
    c: &C,
    network: &str,
    paths: &[String],
) -> Result<(u64, Vec<String>), tokio_postgres::Error> {
    let row = c
        .query_one(
            "SELECT (SELECT coalesce(sum(len), 0)::bigint FROM network_objects WHERE network = $1),
                    ARRAY(SELECT path FROM network_objects WHERE network = $1 AND path = ANY($2))",
            &[&network, &paths],
        )
        .await?;
    Ok((row.get::<_, i64>(0) as u64, row.get(1)))
}

/// Whether the ledger knows `path` to be on `network` (a write of it then
/// adds nothing).
pub async fn holds<C: GenericClient>(
    c: &C,
    network: &str,
    path: &str,
) -> Result<bool, tokio_postgres::Error> {
    Ok(c.query_opt(
        "SELECT 1 FROM network_objects WHERE network = $1 AND path = $2",
        &[&network, &path],
    )
    .await?
    .is_some())
}

/// Bytes written to each network since `since` that are still there (what
/// a network that charges once per stored byte charged in that time).
pub async fn stored_since<C: GenericClient>(
    c: &C,
    since: &str,
    dataset: Option<&str>,
) -> Result<Vec<(String, u64)>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT o.network, coalesce(sum(o.len), 0)::bigint FROM network_objects o
             LEFT JOIN backups b USING (backup_id)
             WHERE o.stored_at >= $1::text::timestamptz AND ($2::text IS NULL OR b.dataset = $2)
             GROUP BY o.network",
            &[&since, &dataset],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
        .collect())
}

/// Requests and bytes each way per network, recorded since `since` (all
/// time when `None`).
pub async fn traffic<C: GenericClient>(
    c: &C,
    since: Option<&str>,
) -> Result<Vec<NetworkRequests>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT network, sum(gets)::bigint, sum(puts)::bigint, sum(heads)::bigint,
                    sum(lists)::bigint, sum(deletes)::bigint, sum(locks)::bigint,
                    sum(bytes_read)::bigint, sum(bytes_written)::bigint
             FROM network_traffic WHERE ($1::text IS NULL OR at >= $1::text::timestamptz)
             GROUP BY network ORDER BY network",
            &[&since],
        )
        .await?;
    let u = |r: &tokio_postgres::Row, i: usize| r.get::<_, i64>(i) as u64;
    Ok(rows
        .iter()
        .map(|r| NetworkRequests {
            network: r.get(0),
            gets: u(r, 1),
            puts: u(r, 2),
            heads: u(r, 3),
            lists: u(r, 4),
            deletes: u(r, 5),
            locks: u(r, 6),
            bytes_read: u(r, 7),
            bytes_written: u(r, 8),
        })
        .collect())
}

/// Egress per network and purpose (`restore`, `drill`, `serve`...) since
/// `since` (all time when `None`).
pub async fn egress_by_purpose<C: GenericClient>(
    c: &C,
    since: Option<&str>,
) -> Result<Vec<(String, String, u64)>, tokio_postgres::Error> {
    let rows = c
        .query(
            "SELECT network, purpose, sum(bytes_read)::bigint FROM network_traffic
             WHERE ($1::text IS NULL OR at >= $1::text::timestamptz)
             GROUP BY network, purpose HAVING sum(bytes_read) > 0 ORDER BY network, purpose",
            &[&since],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64))
        .collect())
}

fn envelope(
    purpose: &str,
    by: &str,
    counts: std::collections::BTreeMap<String, cairn_networks::meter::Counts>,
) -> Envelope {
    let networks = counts
        .into_iter()
        .map(|(network, c)| NetworkRequests {
            network,
            gets: c.gets,
            puts: c.puts,
            heads: c.heads,
            lists: c.lists,
            deletes: c.deletes,
            locks: c.locks,
            bytes_read: c.bytes_read,
            bytes_written: c.bytes_written,
        })
        .collect();
    // Each recording is its own event: the process, the moment and a
    // sequence make the id.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let unique = format!("{by}/{}/{nanos}/{seq}", std::process::id());
    Envelope::new(
        by.to_string(),
        cairn_events::BackupId::repo(),
        Event::NetworkTraffic(Traffic {
            purpose: purpose.to_string(),
            networks,
            by: by.to_string(),
        }),
        &[unique.as_bytes()],
    )
}

/// A recording the broker did not acknowledge: sent again as it was (the
/// same id), since it may have landed after all and JetStream then drops
/// the second copy.
static UNSENT: std::sync::Mutex<Option<Envelope>> = std::sync::Mutex::new(None);

/// Records what this process asked of its networks since it last did.
pub async fn record_traffic(
    bus: &cairn_bus::Bus,
    purpose: &str,
    by: &str,
) -> Result<(), cairn_bus::BusError> {
    let unsent = UNSENT.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(env) = unsent {
        if let Err(e) = bus.publish_event(&env).await {
            *UNSENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(env);
            return Err(e);
        }
    }
    let counts = cairn_networks::meter::take();
    if counts.is_empty() {
        return Ok(());
    }
    let env = envelope(purpose, by, counts);
    if let Err(e) = bus.publish_event(&env).await {
        *UNSENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(env);
        return Err(e);
    }
    Ok(())
}

/// How often a long-running process records its traffic.
pub const TRAFFIC_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Records this process's traffic every `every` until the process stops.
pub async fn record_traffic_every(
    bus: cairn_bus::Bus,
    purpose: String,
    by: String,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = record_traffic(&bus, &purpose, &by).await {
            tracing::warn!(error = %e, "network traffic not recorded yet; kept for the next try");
        }
    }
}

/// A byte count in decimal units, as providers quote quotas and prices.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Where a backup goes once the quotas have had their say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub targets: Vec<String>,
    pub rerouted: Vec<cairn_events::Reroute>,
}

/// A backup turned away by quotas.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}. Nothing was read or stored")]
pub struct OverQuota(pub String);

/// Decides where a backup that may add `estimate` bytes goes, given each
/// network's quota and what the ledger counts on it (`room`: network →
/// (quota, used); a network not there has no quota). A target that the
/// backup would take past its quota is replaced by the first network of
/// `overflow` with room; with none, it is dropped if the other targets
/// still make `min_copies`, and otherwise the backup is refused, naming
/// every quota in the way.
pub fn admit(
    targets: &[String],
    min_copies: u32,
    overflow: &[String],
    room: &std::collections::BTreeMap<String, (Option<u64>, u64)>,
    estimate: u64,
    basis: &str,
) -> Result<Admitted, OverQuota> {
    let over = |n: &str| -> Option<String> {
        let (quota, used) = room.get(n).copied().unwrap_or((None, 0));
        let q = quota?;
        (used.saturating_add(estimate) > q).then(|| {
            format!(
                "network {n} holds {} of its {} quota (quota_bytes = {q}) and this backup may add {} ({basis})",
                size(used),
                size(q),
                size(estimate)
            )
        })
    };
    let mut out: Vec<String> = Vec::new();
    let mut rerouted = Vec::new();
    let mut full = Vec::new();
    for t in targets {
        match over(t) {
            None => out.push(t.clone()),
            Some(reason) => full.push((t.clone(), reason)),
        }
    }
    let mut unplaced = Vec::new();
    for (from, reason) in full {
        let instead = overflow
            .iter()
            .find(|o| !targets.contains(o) && !out.contains(o) && over(o).is_none());
        match instead {
            Some(o) => {
                out.push(o.clone());
                rerouted.push(cairn_events::Reroute {
                    from,
                    to: Some(o.clone()),
                    reason,
                });
            }
            None => unplaced.push((from, reason)),
        }
    }
    if !unplaced.is_empty() && (out.len() as u32) < min_copies {
        let why: Vec<String> = unplaced.into_iter().map(|(_, r)| r).collect();
        let others = if overflow.is_empty() {
            "the dataset names no overflow networks ([datasets.<name>] overflow)".to_string()
        } else {
            format!("no overflow network ({}) has room", overflow.join(", "))
        };
        return Err(OverQuota(format!(
            "over quota: {}; {others}, and min_copies {min_copies} needs {} networks",
            why.join("; "),
            min_copies
        )));
    }
    for (from, reason) in unplaced {
        rerouted.push(cairn_events::Reroute {
            from,
            to: None,
            reason,
        });
    }
    Ok(Admitted {
        targets: out,
        rerouted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn room(r: &[(&str, Option<u64>, u64)]) -> BTreeMap<String, (Option<u64>, u64)> {
        r.iter()
            .map(|(n, q, u)| (n.to_string(), (*q, *u)))
            .collect()
    }

    #[test]
    fn a_target_with_room_keeps_the_backup_and_a_full_one_sends_it_to_an_overflow_network() {
        let r = room(&[
            ("storj", Some(1000), 900),
            ("sia", Some(1000), 0),
            ("local", None, 5),
        ]);
        let a = admit(
            &names(&["local", "storj"]),
            2,
            &names(&["sia"]),
            &r,
            50,
            "x",
        )
        .unwrap();
        assert_eq!(a.targets, names(&["local", "storj"]));
        assert!(a.rerouted.is_empty());

        let a = admit(
            &names(&["local", "storj"]),
            2,
            &names(&["sia"]),
            &r,
            200,
            "x",
        )
        .unwrap();
        assert_eq!(a.targets, names(&["local", "sia"]));
        assert_eq!(a.rerouted[0].from, "storj");
        assert_eq!(a.rerouted[0].to.as_deref(), Some("sia"));
        assert!(
            a.rerouted[0]
                .reason
                .contains("storj holds 900 B of its 1.0 kB quota"),
            "{}",
            a.rerouted[0].reason
        );
    }

    #[test]
    fn with_no_room_anywhere_it_is_dropped_if_min_copies_allows_else_refused_naming_the_quota() {
        let r = room(&[("storj", Some(1000), 990), ("sia", Some(1000), 990)]);
        let a = admit(
            &names(&["local", "storj"]),
            1,
            &names(&["sia"]),
            &r,
            20,
            "x",
        )
        .unwrap();
        assert_eq!(a.targets, names(&["local"]));
        assert_eq!(a.rerouted[0].to, None);

        let e = admit(
            &names(&["local", "storj"]),
            2,
            &names(&["sia"]),
            &r,
            20,
            "its last backups",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("network storj holds 990 B of its 1.0 kB quota"),
            "{e}"
        );
        assert!(
            e.contains("quota_bytes = 1000") && e.contains("its last backups"),
            "{e}"
        );
        assert!(e.contains("no overflow network (sia) has room"), "{e}");
        assert!(e.ends_with("Nothing was read or stored"), "{e}");
        let e = admit(&names(&["storj"]), 1, &[], &r, 20, "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("names no overflow networks"), "{e}");
    }

    #[test]
    fn an_overflow_network_already_a_target_is_not_counted_twice() {
        let r = room(&[("storj", Some(10), 10)]);
        let e = admit(&names(&["sia", "storj"]), 2, &names(&["sia"]), &r, 1, "x");
        assert!(e.is_err(), "{e:?}");
    }
}
