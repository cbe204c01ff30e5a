//! `cairn console`: serves the ops console (`cairn_console`) until stopped;
//! `cairn console token NAME` makes an operator's token.

use crate::context::{self, whoami};
use crate::out;
use cairn_config::Config;
use cairn_events::BackupId;
use cairn_ledger::Role;
use std::sync::Arc;

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

/// What the console does through the stages.
struct Ops {
    cfg: Config,
}

#[async_trait::async_trait]
impl cairn_console::Operations for Ops {
    async fn evidence(&self, backup: &BackupId) -> Result<serde_json::Value, String> {
        // Judging borrows closures that are not `Sync`: it runs on a thread
        // of its own rather than in the server's tasks.
        let (cfg, id) = (self.cfg.clone(), backup.to_string());
        let rt = tokio::runtime::Handle::current();
        let doc = tokio::task::spawn_blocking(move || {
            rt.block_on(super::compliance::evidence_of(&cfg, &id))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{e:#}"))?;
        serde_json::to_value(&doc).map_err(|e| e.to_string())
    }

    async fn repair(&self, backup: &BackupId, operator: &str) -> Result<String, String> {
        let cfg = &self.cfg;
        let run = async {
            let pg = context::ledger(cfg).await?;
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
        pg: context::ledger_as(cfg, Role::Reader).await?,
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
