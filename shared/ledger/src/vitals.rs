//! The ledger's vital signs for monitoring: its size, the age of its newest
//! checkpoint, and per dataset when it last completed a backup, last passed
//! a restore drill, and how much its last backup deduplicated. Read every
//! `telemetry.vitals_interval_secs`: the backups are read along their
//! (dataset, requested_at) index, the checkpoint along its key; the drills
//! table is small.

use tokio_postgres::GenericClient;

/// One dataset's.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetVitals {
    pub dataset: String,
    /// Unix seconds.
    pub last_backup: Option<f64>,
    /// Unix seconds.
    pub last_drill: Option<f64>,
    /// Bytes read per byte newly stored by the last completed backup (the
    /// last requested of those completed; none when it stored nothing).
    pub dedup_ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vitals {
    pub entries: u64,
    /// Unix seconds the newest signed checkpoint was recorded.
    pub checkpoint_at: Option<f64>,
    pub datasets: Vec<DatasetVitals>,
}

pub async fn read<C: GenericClient>(c: &C) -> Result<Vitals, tokio_postgres::Error> {
    // seq is gapless from 1: its maximum is the count, from the index.
    let entries: i64 = c
        .query_one("SELECT coalesce(max(seq), 0) FROM ledger_entries", &[])
        .await?
        .get(0);
    let checkpoint_at: Option<f64> = c
        .query_opt(
            "SELECT extract(epoch FROM issued_at)::float8 FROM ledger_checkpoints
             ORDER BY size DESC LIMIT 1",
            &[],
        )
        .await?
        .map(|r| r.get(0));
    let mut datasets: std::collections::BTreeMap<String, DatasetVitals> = Default::default();
    for row in c
        .query(
            "SELECT DISTINCT ON (dataset) dataset,
                    extract(epoch FROM finished_at)::float8,
                    (stats->>'bytes_read')::float8, (stats->>'bytes_stored')::float8
             FROM backups WHERE status = 'completed' AND finished_at IS NOT NULL
             ORDER BY dataset, requested_at DESC",
            &[],
        )
        .await?
    {
        let v = slot(&mut datasets, row.get(0));
        v.last_backup = row.get(1);
        let (read, stored): (Option<f64>, Option<f64>) = (row.get(2), row.get(3));
        v.dedup_ratio = match (read, stored) {
            (Some(r), Some(s)) if s > 0.0 => Some(r / s),
            _ => None,
        };
    }
    for row in c
        .query(
            "SELECT dataset, extract(epoch FROM max(finished_at))::float8
             FROM drills WHERE ok GROUP BY dataset",
            &[],
        )
        .await?
    {
        slot(&mut datasets, row.get(0)).last_drill = row.get(1);
    }
    Ok(Vitals {
        entries: entries.max(0) as u64,
        checkpoint_at,
        datasets: datasets.into_values().collect(),
    })
}

fn slot(
    m: &mut std::collections::BTreeMap<String, DatasetVitals>,
    dataset: String,
) -> &mut DatasetVitals {
    m.entry(dataset.clone()).or_insert(DatasetVitals {
        dataset,
        last_backup: None,
        last_drill: None,
        dedup_ratio: None,
    })
}
