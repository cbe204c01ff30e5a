//! `cairn cost`: per network, what it holds, what was read back and asked
//! of it, the month at the configured prices, and the next 12 months
//! (`cairn_retention::cost` counts and projects; this prints).

use crate::{out, output};
use cairn_config::Config;
use cairn_ledger::usage::size;
use cairn_retention::cost::{self, Ask, Prices, Terms};

#[derive(clap::Args)]
pub struct CostArgs {
    /// Only what this dataset's backups added (egress is not per dataset).
    #[arg(long)]
    dataset: Option<String>,
    /// Months to project (default 12).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(0..=120))]
    months: u32,
    /// The clock the report is taken at (RFC 3339; default now).
    #[arg(long)]
    as_of: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn cost(cfg: &Config, a: CostArgs) -> anyhow::Result<u8> {
    let now = crate::context::clock(a.as_of.as_deref())?;
    let cannot_delete = crate::context::cannot_delete(&crate::context::repo(cfg)?);
    let terms: Vec<Terms> = cfg
        .networks
        .iter()
        .map(|n| Terms {
            can_delete: !cannot_delete.contains(&n.name),
            network: n.name.clone(),
            quota_bytes: n.common.quota_bytes,
            prices: Prices {
                gb_month: n.common.price_gb_month,
                gb_egress: n.common.price_gb_egress,
                gb_once: n.common.price_gb_once,
            },
        })
        .collect();
    let pg = crate::context::ledger_as(cfg, cairn_ledger::Role::Reader).await?;
    if let Some(d) = &a.dataset {
        let known = cfg.datasets.contains_key(d)
            || cfg.schedules.iter().any(|s| &s.dataset == d)
            || !cairn_ledger::query::list_backups(&pg, Some(d), None)
                .await?
                .is_empty();
        if !known {
            anyhow::bail!(
                "dataset {d:?}: no backup of it in the ledger, and none configured (`cairn list` shows the datasets)"
            );
        }
    }
    let policy_for = |d: &str| cfg.retention.policy_for(d);
    let r = cost::report(
        &pg,
        &Ask {
            terms: &terms,
            dataset: a.dataset.as_deref(),
            policy_for: &policy_for,
            schedules: &cfg.schedules,
            selector: &cfg.selector(),
            now,
            months: a.months,
        },
    )
    .await?;
    if a.json {
        output::json(&r)?;
        return Ok(0);
    }
    if let Some(d) = &r.dataset {
        out!("dataset {d}: what its backups added");
    }
    out!(
        "{:<12} {:>9} {:>10} {:>14} {:>12} {:>9} {:>10}",
        "NETWORK",
        "OBJECTS",
        "STORED",
        "QUOTA",
        "EGRESS 30d",
        "REQ 30d",
        "PER MONTH"
    );
    for n in &r.networks {
        let quota = match n.quota_bytes {
            Some(q) => format!("{} ({:.0}%)", size(q), n.bytes as f64 * 100.0 / q as f64),
            None => "-".into(),
        };
        let t = &n.last_30d;
        let requests = t.gets + t.puts + t.heads + t.lists + t.deletes + t.locks;
        out!(
            "{:<12} {:>9} {:>10} {:>14} {:>12} {:>9} {:>10}",
            n.network,
            n.objects,
            size(n.bytes),
            quota,
            size(t.bytes_read),
            requests,
            money(n.monthly.total)
        );
    }
    out!("{:>84} a month", money(r.monthly_total));
    if !r.projection.is_empty() {
        out!("");
        out!(
            "next {} months (held at each month's end, cost of the month):",
            r.projection.len()
        );
        for m in &r.projection {
            let held: Vec<String> = m
                .networks
                .iter()
                .map(|n| format!("{} {}", n.network, size(n.bytes)))
                .collect();
            out!(
                "  {}  {:>4} backups  {:>10}  {}",
                m.month,
                m.backups,
                money(m.total),
                held.join(", ")
            );
        }
    }
    for n in &r.notes {
        out!("note: {n}");
    }
    Ok(0)
}

/// An amount in the prices' currency: cents, or four places below one.
fn money(x: f64) -> String {
    if x.abs() >= 1.0 || x == 0.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}
