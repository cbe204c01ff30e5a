//! `cairn init`: the repository (config and key file) on every configured
//! network; run again after adding a network, it copies the repository's
//! config and key files to the networks that lack them.

use crate::{context, out, output};
use cairn_config::Config;
use cairn_crypto::KdfParams;
use cairn_events::{BackupId, Envelope, Event};
use cairn_repo::complete::Initialised;

/// The Argon2id cost of a new key file (`init`, `key add`).
#[derive(clap::Args)]
pub struct KdfArgs {
    /// Argon2id memory in KiB (default 65536).
    #[arg(long)]
    kdf_memory_kib: Option<u32>,
    /// Argon2id passes (default 3).
    #[arg(long)]
    kdf_iterations: Option<u32>,
}

impl KdfArgs {
    pub fn params(&self) -> KdfParams {
        let mut kdf = KdfParams::default();
        if let Some(m) = self.kdf_memory_kib {
            kdf.memory_kib = m;
        }
        if let Some(t) = self.kdf_iterations {
            kdf.iterations = t;
        }
        kdf
    }
}

#[derive(clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    kdf: KdfArgs,
    #[arg(long)]
    json: bool,
}

pub async fn init(cfg: &Config, a: InitArgs) -> anyhow::Result<u8> {
    let pass = context::passphrase(cfg)?;
    let kdf = a.kdf.params();
    let done = context::repo(cfg)?.init_or_complete(&pass, kdf).await?;
    if let (
        Initialised::Created {
            repo_id,
            key_id,
            networks,
        },
        Some(bus),
    ) = (&done, context::try_bus(cfg).await)
    {
        let env = Envelope::new(
            "cli",
            BackupId::repo(),
            Event::RepoInitialised {
                repo_id: repo_id.clone(),
                key_id: key_id.clone(),
                networks: networks.clone(),
            },
            &[repo_id.as_bytes()],
        );
        bus.publish_event(&env).await?;
    }
    if a.json {
        output::json(&done)?;
        return Ok(0);
    }
    match &done {
        Initialised::Created {
            repo_id,
            key_id,
            networks,
        } => out!(
            "repository {repo_id} initialised on {} (key {key_id}). Keep the passphrase safe: without it nothing can be restored.",
            networks.join(", ")
        ),
        Initialised::Completed { repo_id, copied } => {
            for (network, files) in copied {
                out!(
                    "repository {repo_id}: copied {} to network {network}",
                    files.join(", ")
                );
            }
        }
    }
    Ok(0)
}
