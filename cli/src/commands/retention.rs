//! `cairn retention plan`: keep or drop for every backup, and the rule
//! that decided, under each dataset's policy (`[retention]`);
//! `cairn retention apply`: forget what the plan drops.

use crate::{context, err, exit, out, output};
use cairn_bus::Bus;
use cairn_config::Config;
use cairn_retention::apply::{Applier, Outcome};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum RetentionCommand {
    /// Show, for every backup, keep or drop and the rules that decided
    /// (nothing is deleted).
    Plan(PlanArgs),
    /// Forget every backup the plan drops (held backups and the newest
    /// completed one of each dataset never are); `cairn gc` frees their
    /// chunks later.
    Apply(ApplyArgs),
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    #[arg(long)]
    dataset: Option<String>,
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the retention worker's answer to each forget.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

#[derive(clap::Args)]
pub struct PlanArgs {
    #[arg(long)]
    dataset: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: &Config, c: RetentionCommand) -> anyhow::Result<u8> {
    match c {
        RetentionCommand::Plan(a) => plan(cfg, a).await,
        RetentionCommand::Apply(a) => apply(cfg, a).await,
    }
}

/// What applies the policies, for the CLI and the service.
pub async fn applier(cfg: &Config, bus: &Bus, requested_by: String) -> anyhow::Result<Applier> {
    let retention = cfg.retention.clone();
    Ok(Applier {
        bus: bus.clone(),
        pg: context::ledger_as(cfg, cairn_ledger::Role::Reader).await?,
        policy_for: Arc::new(move |d| retention.policy_for(d)),
        selector: cfg.selector(),
        requested_by,
        source: context::whoami("retention-policy"),
        timeout: Duration::from_secs(120),
    })
}

async fn apply(cfg: &Config, a: ApplyArgs) -> anyhow::Result<u8> {
    let bus = context::bus(cfg, "cairn-cli").await?;
    let mut applier = applier(cfg, &bus, format!("retention apply by {}", context::user())).await?;
    applier.timeout = Duration::from_secs(a.timeout);
    let round = cairn_events::now_rfc3339();
    let report = applier.apply(a.dataset.as_deref(), &round).await?;
    let unanswered = report
        .applied
        .iter()
        .any(|x| matches!(x.outcome, Outcome::NoAnswer));
    let refused = report
        .applied
        .iter()
        .any(|x| matches!(x.outcome, Outcome::Refused { .. }));
    if a.json {
        output::json(&report)?;
    } else {
        for x in &report.applied {
            match &x.outcome {
                Outcome::Forgotten { objects_deleted } => out!(
                    "forgot {} ({}): {}; {objects_deleted} objects deleted",
                    x.backup_id,
                    x.dataset,
                    x.reasons.join("; ")
                ),
                Outcome::Refused { reason } => {
                    out!(
                        "kept {} ({}): forget refused: {reason}",
                        x.backup_id,
                        x.dataset
                    )
                }
                Outcome::NoAnswer => out!(
                    "asked to forget {} ({}): no answer yet",
                    x.backup_id,
                    x.dataset
                ),
            }
        }
        out!(
            "{} kept, {} forgotten of {} the policies drop; `cairn gc` frees the chunks nothing else uses",
            report.kept,
            report.forgotten(),
            report.applied.len()
        );
    }
    if unanswered {
        err!("cairn: no retention worker answered within {} s; the requests stay queued. Start one with `cairn serve retention`.", a.timeout);
        return Ok(exit::NO_WORKER);
    }
    Ok(u8::from(refused))
}

async fn plan(cfg: &Config, a: PlanArgs) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let plans = cairn_retention::policy::plan(
        &pg,
        a.dataset.as_deref(),
        |d| cfg.retention.policy_for(d),
        &cfg.selector(),
        chrono::Utc::now(),
    )
    .await?;
    if a.json {
        #[derive(serde::Serialize)]
        struct Planned {
            datasets: Vec<cairn_retention::policy::DatasetPlan>,
        }
        output::json(&Planned { datasets: plans })?;
        return Ok(0);
    }
    for p in plans {
        let dropped = p.dropped().count();
        out!(
            "dataset {:?} ({}): keep {}, drop {dropped}",
            p.dataset,
            p.policy_name,
            p.decisions.len() - dropped
        );
        for d in &p.decisions {
            out!(
                "  {:<4} {:<36} {:<20} {:<10} {}",
                if d.keep { "keep" } else { "drop" },
                d.backup_id,
                d.time.format("%Y-%m-%dT%H:%M:%SZ"),
                format!("{:?}", d.status).to_lowercase(),
                d.reasons.join("; ")
            );
        }
    }
    Ok(0)
}
