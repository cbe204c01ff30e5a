//! `cairn forget`: asks retention to take a backup out of the catalogue
//! (manifest and chunk list; `cairn gc` frees its chunks later), and prints
//! its answer: what was deleted, or why nothing was.

use crate::{context, err, exit, out, output};
use anyhow::bail;
use cairn_bus::client::{self, ForgetAnswer};
use cairn_config::Config;
use cairn_events::BackupId;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ForgetArgs {
    backup_id: BackupId,
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the retention worker.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    backup_id: &'a BackupId,
    status: &'static str,
    #[serde(flatten)]
    forgotten: &'a cairn_events::Forgotten,
}

pub async fn forget(cfg: &Config, a: ForgetArgs) -> anyhow::Result<u8> {
    let id = a.backup_id;
    let repo = context::repo(cfg)?;
    // Retention decides what may be deleted; this only catches a typo.
    if repo.holders(&id).await?.is_empty() {
        bail!(
            "backup {id} not found on any network ({})",
            cfg.network_names().join(", ")
        );
    }
    let bus = context::bus(cfg, "cairn-cli").await?;
    let answer = client::request_forget(
        &bus,
        "cli",
        &id,
        context::user(),
        Duration::from_secs(a.timeout),
    )
    .await?;
    match answer {
        ForgetAnswer::Forgotten(f) => {
            if a.json {
                output::json(&Report {
                    backup_id: &id,
                    status: "forgotten",
                    forgotten: &f,
                })?;
            } else {
                out!(
                    "forgot backup {id}: {} objects deleted from {}{}; `cairn gc` frees the chunks nothing else uses",
                    f.objects_deleted,
                    f.networks.join(", "),
                    if f.retained_on.is_empty() {
                        String::new()
                    } else {
                        format!(" (kept on {}: it cannot delete)", f.retained_on.join(", "))
                    }
                );
            }
            Ok(0)
        }
        ForgetAnswer::Refused(reason) => bail!("backup {id} not forgotten: {reason}"),
        ForgetAnswer::NoAnswer => {
            err!("cairn: no retention worker answered within {} s; the request stays queued. Start one with `cairn serve retention`.", a.timeout);
            Ok(exit::NO_WORKER)
        }
    }
}
