//! `cairn retention plan`: keep or drop for every backup, and the rule
//! that decided, under each dataset's policy (`[retention]`).

use crate::{context, out, output};
use cairn_config::Config;

#[derive(clap::Subcommand)]
pub enum RetentionCommand {
    /// Show, for every backup, keep or drop and the rules that decided
    /// (nothing is deleted).
    Plan(PlanArgs),
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
    }
}

async fn plan(cfg: &Config, a: PlanArgs) -> anyhow::Result<u8> {
    let pg = context::ledger(cfg).await?;
    let plans =
        cairn_retention::policy::plan(&pg, a.dataset.as_deref(), |d| cfg.retention.policy_for(d))
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
