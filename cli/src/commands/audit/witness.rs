//! `cairn audit witness`: cosign the newest checkpoint if it extends the
//! last one this witness cosigned.

use crate::{out, output};
use anyhow::Context;
use cairn_config::Config;
use cairn_verify::witness::Witnessed;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    status: &'static str,
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extends: Option<Option<u64>>,
}

pub async fn run(cfg: &Config, a: Args) -> anyhow::Result<u8> {
    let w = super::witness(cfg)
        .await?
        .context("no witness key: set [audit] witness_key_file (`cairn audit keygen` makes one)")?;
    let done = w.witness_once().await?;
    let (status, size) = match &done {
        Witnessed::NoCheckpoint => ("no checkpoint yet", None),
        Witnessed::Unchanged { size } => ("already cosigned", Some(*size)),
        Witnessed::Older { size, .. } => ("older than the last cosigned", Some(*size)),
        Witnessed::Cosigned { size, .. } => ("cosigned", Some(*size)),
    };
    let (checkpoint, extends) = match &done {
        Witnessed::Cosigned { note, extends, .. } => (
            Some(String::from_utf8_lossy(note).into_owned()),
            Some(*extends),
        ),
        _ => (None, None),
    };
    if a.json {
        output::json(&Report {
            status,
            size,
            checkpoint,
            extends,
        })?;
    } else if let Some(note) = checkpoint {
        output::raw(&note)?;
    } else {
        out!(
            "{status}{}",
            size.map(|s| format!(" (size {s})")).unwrap_or_default()
        );
    }
    Ok(0)
}
