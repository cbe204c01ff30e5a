//! `cairn nats users`: a NATS user per role (an NKey each) and the
//! server's `authorization` block giving each only the subjects its work
//! needs (see `cairn_bus::access`).

use crate::{out, output};
use cairn_config::Config;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum NatsCommand {
    /// Writes `<role>.nk` seeds (kept if there) and `authorization.conf`
    /// for nats-server to include.
    Users(UsersArgs),
}

#[derive(clap::Args)]
pub struct UsersArgs {
    /// Where the seeds and the server's block go.
    #[arg(long)]
    dir: PathBuf,
    /// A factory and the datasets it may ask backups of: `NAME=DS1,DS2`
    /// (repeat for more).
    #[arg(long, value_parser = factory)]
    factory: Vec<(String, Vec<String>)>,
    #[arg(long)]
    json: bool,
}

fn factory(s: &str) -> Result<(String, Vec<String>), String> {
    let (name, datasets) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=DATASET[,DATASET...]"))?;
    let datasets: Vec<String> = datasets
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    Ok((name.to_string(), datasets))
}

pub async fn run(cfg: &Config, c: NatsCommand) -> anyhow::Result<u8> {
    match c {
        NatsCommand::Users(a) => users(cfg, a),
    }
}

fn users(cfg: &Config, a: UsersArgs) -> anyhow::Result<u8> {
    let subjects = cairn_events::subjects::Subjects::new(&cfg.nats.prefix)
        .map_err(|e| anyhow::anyhow!("nats.prefix: {e}"))?;
    let (keys, conf) = cairn_bus::access::write_users(&a.dir, &subjects, &a.factory)?;
    if a.json {
        output::json(&serde_json::json!({
            "authorization": conf,
            "users": keys,
        }))?;
        return Ok(0);
    }
    for k in &keys {
        let how = if k.created { "new" } else { "kept" };
        out!(
            "{:<20} {} {how:<4} {}",
            k.role,
            k.public_key,
            k.seed_file.display()
        );
    }
    out!(
        "include {} in nats-server's config; give each process its seed as nats.nkey_file and set nats.manage_topology = false for the services",
        conf.display()
    );
    Ok(0)
}
