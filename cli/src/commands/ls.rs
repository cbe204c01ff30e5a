//! `cairn ls ID [PATH]`: a backup's tree (or the part under PATH) as the
//! networks hold it, without restoring: only the tree's chunks are read.

use crate::{context, out, output};
use cairn_config::Config;
use cairn_events::BackupId;
use cairn_repo::restore::{Restorer, Selection};

#[derive(clap::Args)]
pub struct LsArgs {
    backup_id: BackupId,
    /// A file or directory inside the backup (as listed, e.g. `data/sub`).
    path: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Listed<'a> {
    backup_id: &'a BackupId,
    entries: Vec<cairn_repo::restore::ListEntry>,
}

pub async fn ls(cfg: &Config, a: LsArgs) -> anyhow::Result<u8> {
    let select = Selection::under(a.path.as_deref().unwrap_or(""))?;
    let repo = context::repo(cfg)?;
    let keyring = context::unlock(cfg, &repo, "listing a backup decrypts its tree").await?;
    let restorer = Restorer::new(
        repo.fastest_first().await,
        keyring.sealer(),
        keyring.id_key(),
    );
    let m = restorer.manifest(&a.backup_id).await?;
    let entries = restorer.list(&m, &select).await?;
    if a.json {
        output::json(&Listed {
            backup_id: &a.backup_id,
            entries,
        })?;
        return Ok(0);
    }
    for e in entries {
        let when = chrono::DateTime::from_timestamp(e.mtime, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        let link = e.target.map(|t| format!(" -> {t}")).unwrap_or_default();
        out!(
            "{} {:>10}  {when}  {}{}{link}",
            mode_string(e.mode),
            if e.kind == "file" {
                output::bytes(e.size)
            } else {
                String::new()
            },
            e.path,
            if e.kind == "dir" { "/" } else { "" },
        );
    }
    Ok(0)
}

/// `drwxr-x---` from a mode.
fn mode_string(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        _ => '-',
    };
    let mut s = String::from(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}
