//! `cairn setup`: the NATS streams and consumers and the ledger's schema,
//! or (`--print`) the stream and consumer definitions, touching nothing.

use crate::{context, out};
use cairn_config::Config;

#[derive(clap::Args)]
pub struct SetupArgs {
    /// Print the stream and consumer definitions as JSON instead.
    #[arg(long)]
    print: bool,
}

pub async fn setup(cfg: &Config, a: SetupArgs) -> anyhow::Result<u8> {
    if a.print {
        let subjects =
            cairn_events::subjects::Subjects::new(&cfg.nats.prefix).map_err(anyhow::Error::msg)?;
        let printed = cairn_bus::topology::printed(&subjects, &cfg.nats, &cfg.network_names());
        out!("{}", serde_json::to_string_pretty(&printed)?);
        return Ok(0);
    }
    context::bus(cfg, "cairn-setup").await?;
    context::ledger(cfg).await?;
    out!(
        "streams, consumers and database schema are in place (prefix {})",
        cfg.nats.prefix
    );
    Ok(0)
}
