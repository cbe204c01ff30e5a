//! `cairn console`: serves the ops console (`cairn_console`) until stopped;
//! `cairn console token NAME` makes an operator's token.

use crate::context::{self, whoami};
use crate::out;
use cairn_compliance::document::Document;
use cairn_compliance::judge::Scope;
use cairn_config::Config;
use cairn_events::BackupId;
use cairn_ledger::Role;
use cairn_retention::hold::HoldOutcome;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConsoleArgs {
    /// Address to listen on (default: [console] listen, 127.0.0.1:8321).
    #[arg(long)]
    listen: Option<String>,
    #[command(subcommand)]
    command: Option<ConsoleCommand>,
}

#[derive(clap::Subcommand)]
pub enum ConsoleCommand {
    /// Make a token for operator NAME: prints the token (give it to them)
    /// and the line for [console] operators_file (which keeps only its
    /// SHA-256).
    Token { name: String },
}

/// How long an action waits for the ledger to record it.
const WAIT: Duration = Duration::from_secs(30);

/// Judges `scope` now, as `cairn compliance check` does. Judging borrows
/// closures that are not `Sync`: it runs on a thread of its own rather than
/// in the server's tasks.
async fn judged(cfg: &Config, scope: Scope) -> Result<Document, String> {
    let pg = reads(cfg).await?;
    let cfg = cfg.clone();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || rt.block_on(super::compliance::judged(&cfg, pg, &scope)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{e:#}"))
}

/// The ledger as the console's pages read it: its own role.
async fn reads(cfg: &Config) -> Result<tokio_postgres::Client, String> {
    context::ledger_as(cfg, Role::Console)
        .await
        .map_err(|e| e.to_string())
}

/// The ledger as an action reads it: the stages' reader, as the command
/// doing the same would.
async fn acts(cfg: &Config) -> Result<tokio_postgres::Client, String> {
    context::ledger_as(cfg, Role::Reader)
        .await
        .map_err(|e| e.to_string())
}

/// What the console does through the stages.
struct Ops {
    cfg: Config,
}

#[async_trait::async_trait]
impl cairn_console::Operations for Ops {
    async fn evidence(&self, backup: &BackupId) -> Result<serde_json::Value, String> {
        let doc = judged(&self.cfg, Scope::Backup(backup.to_string())).await?;
        serde_json::to_value(&doc).map_err(|e| e.to_string())
    }

    async fn health(&self, backup: &BackupId) -> Result<serde_json::Value, String> {
        let cfg = &self.cfg;
        let pg = reads(cfg).await?;
        let run = async {
            let report =
                cairn_verify::care::health(&context::repo(cfg)?, &pg, backup, false).await?;
            anyhow::Ok(serde_json::to_value(&report)?)
        };
        run.await.map_err(|e| format!("{e:#}"))
    }

    async fn hold(
        &self,
        backup: &BackupId,
        on: bool,
        reason: &str,
        operator: &str,
    ) -> Result<String, String> {
        let by = format!("console:{operator}");
        let pg = acts(&self.cfg).await?;
        let c = super::hold::place(&self.cfg, &pg, backup, on, by, reason, WAIT)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let done = if on { "held" } else { "released" };
        match c.outcome {
            HoldOutcome::NotYetRecorded => Err(format!(
                "the ledger has not recorded it within {} s, so it is not in force yet: is `cairn serve ledger` running?",
                WAIT.as_secs()
            )),
            HoldOutcome::Recorded { .. } if c.partial() => Err(format!(
                "{done} in Cairn, but not on every object where the storage locks them; try again once the network answers"
            )),
            HoldOutcome::Recorded { .. } => Ok(format!(
                "{done}: {reason}{}",
                if c.locked.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; the storage's legal hold {} on {} networks",
                        if on { "placed" } else { "lifted" },
                        c.locked.len()
                    )
                }
            )),
        }
    }

    async fn drill(&self, dataset: &str, operator: &str) -> Result<String, String> {
        let cfg = &self.cfg;
        if !cfg.datasets.contains_key(dataset) {
            // A dataset that has backups but no [datasets.X] entry is still
            // drilled; one with neither is named in the answer.
            let pg = reads(cfg).await?;
            let any = cairn_ledger::query::backups_page(&pg, Some(dataset), None, None, 1)
                .await
                .map_err(|e| e.to_string())?;
            if any.is_empty() {
                return Err(format!("no backup of dataset {dataset:?} in the ledger"));
            }
        }
        let run = async {
            let bus = context::bus(cfg, "cairn-console").await?;
            let d =
                super::drill::driller(cfg, &bus, format!("console:{operator}"), whoami("console"))
                    .await?;
            anyhow::Ok(
                d.drill_picked(Some(dataset), cfg.retention.drills.sample)
                    .await?,
            )
        };
        let results = run.await.map_err(|e| format!("{e:#}"))?;
        if results.is_empty() {
            return Err(format!(
                "nothing to drill: no completed or degraded backup of dataset {dataset:?}"
            ));
        }
        let failed: Vec<String> = results
            .iter()
            .filter(|r| !r.ok)
            .map(|r| {
                format!(
                    "{}: {}",
                    r.backup_id,
                    r.drill.reason.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        if failed.is_empty() {
            Ok(format!(
                "{} backup(s) of {dataset:?} restored and checked, scratch removed",
                results.len()
            ))
        } else {
            Err(format!("drill failed: {}", failed.join("; ")))
        }
    }

    async fn schedules(&self) -> Result<serde_json::Value, String> {
        let cfg = &self.cfg;
        let pg = reads(cfg).await?;
        let run = async {
            let schedules =
                cairn_retention::schedule::list(&pg, &cfg.schedules, chrono::Utc::now()).await?;
            anyhow::Ok(serde_json::json!({ "schedules": schedules }))
        };
        run.await.map_err(|e| format!("{e:#}"))
    }

    async fn retention_plan(&self) -> Result<serde_json::Value, String> {
        let cfg = &self.cfg;
        let pg = reads(cfg).await?;
        let run = async {
            let plans = cairn_retention::policy::plan(
                &pg,
                None,
                |d| cfg.retention.policy_for(d),
                &cfg.selector(),
                chrono::Utc::now(),
            )
            .await?;
            anyhow::Ok(serde_json::json!({ "datasets": plans }))
        };
        run.await.map_err(|e| format!("{e:#}"))
    }

    async fn compliance(&self) -> Result<serde_json::Value, String> {
        let mut doc = judged(&self.cfg, Scope::All).await?;
        // The page shows verdicts; the proofs stay with `compliance check`.
        doc.entries.clear();
        for b in &mut doc.backups {
            for f in &mut b.findings {
                f.evidence.clear();
            }
        }
        serde_json::to_value(&doc).map_err(|e| e.to_string())
    }

    async fn repair(&self, backup: &BackupId, operator: &str) -> Result<String, String> {
        let cfg = &self.cfg;
        let pg = acts(cfg).await?;
        let run = async {
            let bus = context::bus(cfg, "cairn-console").await?;
            let repo = context::repo(cfg)?;
            let r = cairn_verify::care::repair_backup(
                &repo,
                &pg,
                &bus,
                backup,
                &format!("console:{operator}"),
                &cfg.quotas(),
            )
            .await?;
            anyhow::Ok(r)
        };
        let r = run.await.map_err(|e| format!("{e:#}"))?;
        Ok(if r.ok {
            format!(
                "{} objects copied; every network holds it intact",
                r.objects_copied
            )
        } else {
            format!(
                "{} objects copied; still incomplete: {}",
                r.objects_copied,
                r.problems.join("; ")
            )
        })
    }
}

pub async fn console(cfg: &Config, a: ConsoleArgs) -> anyhow::Result<u8> {
    if let Some(ConsoleCommand::Token { name }) = a.command {
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '#') {
            anyhow::bail!("operator name {name:?}: one word, no '#'");
        }
        let (token, line) = cairn_console::auth::new_token(&name);
        out!("token for {name} (give it to them; it is not kept): {token}");
        out!("add to [console] operators_file: {line}");
        return Ok(0);
    }
    let c = &cfg.console;
    let listen = a.listen.unwrap_or_else(|| c.listen.clone());
    let listener = cairn_console::bind(&listen, c.allow_remote).await?;
    let operators = match &c.operators_file {
        Some(f) => cairn_console::auth::Operators::load(f)?,
        None => cairn_console::auth::Operators::none(),
    };
    // Its own connections: a reader's to the ledger (the console changes
    // nothing there), and the bus for the live feed and ledgered actions.
    context::ledger(cfg).await?;
    let networks = cfg
        .networks
        .iter()
        .map(|n| cairn_console::NetworkInfo {
            name: n.name.clone(),
            kind: n.kind.name().to_string(),
            price_gb_month: n.common.price_gb_month,
            quota_bytes: n.common.quota_bytes,
        })
        .collect();
    let console = cairn_console::Console {
        networks,
        pg: context::ledger_as(cfg, Role::Console).await?,
        bus: context::bus(cfg, "cairn-console").await?,
        operators,
        ops: Arc::new(Ops { cfg: cfg.clone() }),
        source: whoami("console"),
    };
    let at = listener.local_addr()?;
    tracing::info!(%at, "console listening");
    out!(
        "console at http://{at}/ ({})",
        if console.operators.is_empty() {
            "read-only: no operators_file"
        } else {
            "actions need an operator token"
        }
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = cairn_console::serve(listener, console) => r?,
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(0)
}
