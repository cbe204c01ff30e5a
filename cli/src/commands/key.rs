//! `cairn key add | list | remove | split | writer | upgrade`: the
//! passphrases that open the repository on every network, threshold shares
//! of its master key, the write-only key that ingest runs with, and the
//! upgrade that gives an older repository its key pair.
//! Every change is recorded in the ledger (when the broker is up; a warning
//! says so when it is not), never the secrets themselves.

use crate::{context, err, out, output};
use anyhow::{bail, Context};
use cairn_config::Config;
use cairn_crypto::{shares, Secret};
use cairn_events::{
    BackupId, Envelope, Event, KeyChange, KeyRotated, KeySplit, KeyUpgraded, WriterIssued,
};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum KeyCommand {
    /// Add a passphrase: another key file wrapping the same master key, on
    /// every network. Opens with the current passphrase (or shares).
    Add(AddArgs),
    /// The key files, which networks hold each, and which one opened.
    List(ListArgs),
    /// Remove a passphrase's key file from every network (never the last).
    Remove(RemoveArgs),
    /// Split the master key into threshold shares: any THRESHOLD of the
    /// SHARES files open the repository (`--share FILE`, repeated).
    Split(SplitArgs),
    /// Write the writer file that ingest runs with instead of the
    /// passphrase (`keys.writer_file`): it makes backups and opens none.
    Writer(WriterArgs),
    /// Give a repository of format 2 the key pair of write-only backups
    /// (format 3); nothing stored is rewritten but key files and config.
    Upgrade(UpgradeArgs),
    /// A new master key and key pair: one new key file (for the new
    /// passphrase, else the current one), every wrapped data key re-wrapped,
    /// the old key files removed once every network has the new state. Run
    /// again with the new passphrase to finish where a network was away.
    Rotate(RotateArgs),
}

#[derive(clap::Args)]
pub struct RotateArgs {
    /// File whose first line is the passphrase of the new key (or
    /// CAIRN_NEW_PASSPHRASE; default: the passphrase given).
    #[arg(long, value_name = "FILE")]
    new_passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    kdf: super::init::KdfArgs,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct WriterArgs {
    /// Where to write it (created, mode 0600; never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct UpgradeArgs {
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct AddArgs {
    /// File whose first line is the new passphrase (or CAIRN_NEW_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    new_passphrase_file: Option<PathBuf>,
    /// Who or what this passphrase is for, shown by `cairn key list`.
    #[arg(long)]
    label: Option<String>,
    #[command(flatten)]
    kdf: super::init::KdfArgs,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct RemoveArgs {
    /// The key's id (`cairn key list`).
    key_id: String,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct SplitArgs {
    /// How many shares open the repository together (at least 2).
    #[arg(long)]
    threshold: u8,
    /// How many shares to write.
    #[arg(long)]
    shares: u8,
    /// Directory for the share files (created; must not hold share files).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[arg(long)]
    json: bool,
}

pub async fn run(cfg: &Config, c: KeyCommand) -> anyhow::Result<u8> {
    match c {
        KeyCommand::Add(a) => add(cfg, a).await,
        KeyCommand::List(a) => list(cfg, a).await,
        KeyCommand::Remove(a) => remove(cfg, a).await,
        KeyCommand::Split(a) => split(cfg, a).await,
        KeyCommand::Writer(a) => writer(cfg, a).await,
        KeyCommand::Upgrade(a) => upgrade(cfg, a).await,
        KeyCommand::Rotate(a) => rotate(cfg, a).await,
    }
}

async fn writer(cfg: &Config, a: WriterArgs) -> anyhow::Result<u8> {
    let repo = context::repo(cfg)?;
    let opened = context::open(
        cfg,
        &repo,
        "writing a writer file needs a key that opens the repository",
    )
    .await?;
    let writer = opened.keyring.writer().with_context(|| {
        format!(
            "repository {} has no key pair yet (format 2): run `cairn key upgrade` first",
            opened.repo_id
        )
    })?;
    let file = cairn_crypto::WriterFile::new(&opened.repo_id, &writer);
    write_private(&a.out, &file.to_json(), "writer file")?;
    let path = std::fs::canonicalize(&a.out).unwrap_or_else(|_| a.out.clone());
    record(
        cfg,
        &opened.repo_id,
        &format!("writer {} {}", file.public_key, path.display()),
        Event::WriterIssued(WriterIssued {
            repo_id: opened.repo_id.clone(),
            public_key: file.public_key.clone(),
            file: path.display().to_string(),
        }),
    )
    .await?;
    if a.json {
        output::json(&serde_json::json!({
            "repo_id": opened.repo_id, "public_key": file.public_key, "file": a.out
        }))?;
    } else {
        out!(
            "writer file {} for repository {} (public key {})",
            a.out.display(),
            opened.repo_id,
            file.public_key
        );
        out!("Give it to the ingest workers as keys.writer_file; it opens no backup, but lets its holder write to the repository and test which content it holds: keep it as private as an S3 secret.");
    }
    Ok(0)
}

async fn upgrade(cfg: &Config, a: UpgradeArgs) -> anyhow::Result<u8> {
    let repo = context::repo(cfg)?;
    let opened = context::open(
        cfg,
        &repo,
        "upgrading needs a key that opens the repository",
    )
    .await?;
    let done = repo.upgrade(&opened).await?;
    if !done.already {
        record(
            cfg,
            &done.repo_id,
            &format!("upgrade {} {}", done.public_key, done.networks.join(",")),
            Event::KeyUpgraded(KeyUpgraded {
                repo_id: done.repo_id.clone(),
                public_key: done.public_key.clone(),
                networks: done.networks.clone(),
                pending: done.pending.clone(),
            }),
        )
        .await?;
    }
    if a.json {
        output::json(&done)?;
    } else if done.already {
        out!(
            "repository {} already has its key pair (public key {})",
            done.repo_id,
            done.public_key
        );
    } else {
        out!(
            "repository {} upgraded on {}: public key {}",
            done.repo_id,
            done.networks.join(", "),
            done.public_key
        );
    }
    for p in &done.pending {
        err!("cairn: not upgraded on {} yet: {}", p.network, p.reason);
    }
    Ok(degraded_if(&done.pending))
}

async fn rotate(cfg: &Config, a: RotateArgs) -> anyhow::Result<u8> {
    let repo = context::repo(cfg)?;
    let creds = context::credentials(cfg, "rotating needs a key that opens the repository")?;
    let new = match given_new_passphrase(a.new_passphrase_file.as_deref())? {
        Some(p) => p,
        None => match &creds {
            cairn_repo::Credentials::Passphrase(p) => p.clone(),
            cairn_repo::Credentials::Shares(_) => bail!(
                "rotating with key shares needs the new key's passphrase: give --new-passphrase-file FILE or set CAIRN_NEW_PASSPHRASE (split the new key again after)"
            ),
        },
    };
    let opened = repo.open_keys(&creds).await?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let done = repo.rotate(&opened, &new, a.kdf.params(), &now).await?;
    record(
        cfg,
        &done.repo_id,
        &format!(
            "rotate {} {} {}",
            done.public_key,
            done.finished,
            done.networks.join(",")
        ),
        Event::KeyRotated(KeyRotated {
            repo_id: done.repo_id.clone(),
            public_key: done.public_key.clone(),
            key_id: done.key_id.clone(),
            dropped: done.dropped.clone(),
            rewrapped: done.rewrapped,
            finished: done.finished,
            pending: done.pending.clone(),
        }),
    )
    .await?;
    if a.json {
        output::json(&done)?;
    } else {
        out!(
            "rotated repository {} to public key {} (new key {}); {} wrapped data keys re-wrapped on {}",
            done.repo_id,
            done.public_key,
            done.key_id,
            done.rewrapped,
            done.networks.join(", ")
        );
        if done.finished {
            out!(
                "old keys removed: {}. Add other passphrases again (cairn key add), split the new key again if shares are used, and give writers a new writer file (cairn key writer).",
                done.dropped.join(", ")
            );
        }
        for p in &done.pending {
            err!("cairn: not rotated on {} yet: {}", p.network, p.reason);
        }
        for k in &done.not_rewrapped {
            err!("cairn: not re-wrapped: {k}");
        }
        if !done.finished {
            err!("cairn: the old keys still open the repository until the rotation is finished");
        }
    }
    Ok(if done.finished {
        0
    } else {
        crate::exit::DEGRADED
    })
}

/// Exit 3 when a key change left networks it could not reach (or read).
fn degraded_if(pending: &[cairn_events::Pending]) -> u8 {
    if pending.is_empty() {
        0
    } else {
        crate::exit::DEGRADED
    }
}

/// Writes a secret file for one holder: created new (never overwriting
/// one), mode 0600.
fn write_private(path: &std::path::Path, bytes: &[u8], what: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {what} {}", path.display()))?;
    std::io::Write::write_all(&mut f, bytes)
        .with_context(|| format!("cannot write {what} {}", path.display()))
}

fn new_passphrase(a: &AddArgs) -> anyhow::Result<Secret> {
    given_new_passphrase(a.new_passphrase_file.as_deref())?.with_context(|| {
        "no new passphrase: give --new-passphrase-file FILE or set CAIRN_NEW_PASSPHRASE"
    })
}

/// The new passphrase from `file` (first line) or CAIRN_NEW_PASSPHRASE.
fn given_new_passphrase(file: Option<&std::path::Path>) -> anyhow::Result<Option<Secret>> {
    let pass = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        None => std::env::var("CAIRN_NEW_PASSPHRASE").unwrap_or_default(),
    };
    Ok((!pass.is_empty()).then(|| Secret::new(pass)))
}

async fn add(cfg: &Config, a: AddArgs) -> anyhow::Result<u8> {
    let new = new_passphrase(&a)?;
    let repo = context::repo(cfg)?;
    let opened = context::open(
        cfg,
        &repo,
        "adding a key needs a key that opens the repository",
    )
    .await?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let change = repo
        .add_key(&opened, &new, a.kdf.params(), a.label.clone(), &now)
        .await?;
    record(
        cfg,
        &change.repo_id,
        &change.key_id,
        Event::KeyAdded(change.clone()),
    )
    .await?;
    report(&change, "added to", a.json)
}

async fn remove(cfg: &Config, a: RemoveArgs) -> anyhow::Result<u8> {
    let repo = context::repo(cfg)?;
    // Only someone who can open the repository removes its keys: the
    // removal is tagged with the master key.
    let opened = context::open(
        cfg,
        &repo,
        "removing a key needs a key that opens the repository",
    )
    .await?;
    let change = repo.remove_key(&opened, &a.key_id).await?;
    record(
        cfg,
        &change.repo_id,
        // A later run finishing the removal elsewhere is another record.
        &format!("{} {}", change.key_id, change.networks.join(",")),
        Event::KeyRemoved(change.clone()),
    )
    .await?;
    report(&change, "removed from", a.json)
}

fn report(change: &KeyChange, done: &str, json: bool) -> anyhow::Result<u8> {
    if json {
        output::json(change)?;
    } else {
        out!(
            "key {}{} {done} {}",
            change.key_id,
            change
                .label
                .as_ref()
                .map(|l| format!(" ({l})"))
                .unwrap_or_default(),
            change.networks.join(", ")
        );
        for p in &change.pending {
            err!("cairn: not on {} yet: {}", p.network, p.reason);
        }
    }
    Ok(degraded_if(&change.pending))
}

async fn list(cfg: &Config, a: ListArgs) -> anyhow::Result<u8> {
    let repo = context::repo(cfg)?;
    let opened = context::open(
        cfg,
        &repo,
        "listing keys needs a key that opens the repository",
    )
    .await?;
    let (keys, unreachable) = repo.list_keys(&opened).await?;
    if a.json {
        output::json(&serde_json::json!({ "keys": keys, "unreachable": unreachable }))?;
    } else {
        out!(
            "{:<2}{:<18}{:<22}{:<16}{:<12}NETWORKS",
            "",
            "ID",
            "CREATED",
            "LABEL",
            "KDF"
        );
        for k in &keys {
            out!(
                "{:<2}{:<18}{:<22}{:<16}{:<12}{}",
                if k.current {
                    "*"
                } else if k.removed {
                    "x"
                } else {
                    ""
                },
                k.key_id,
                k.created,
                k.label.as_deref().unwrap_or("-"),
                format!("{}M/{}", k.kdf.memory_kib / 1024, k.kdf.iterations),
                k.networks.join(",")
            );
        }
        for p in &unreachable {
            err!("cairn: network {} not read: {}", p.network, p.reason);
        }
    }
    // As `key add` and `key remove`: a network not read is a degraded view.
    Ok(degraded_if(&unreachable))
}

async fn split(cfg: &Config, a: SplitArgs) -> anyhow::Result<u8> {
    shares::check_split(a.threshold, a.shares)?;
    let repo = context::repo(cfg)?;
    let opened = context::open(
        cfg,
        &repo,
        "splitting the key needs a key that opens the repository",
    )
    .await?;
    let made = shares::split(&opened.master, &opened.repo_id, a.threshold, a.shares)?;
    // The directory is the holder's alone (0700); shares already in it
    // (of an earlier split) are never mixed with new ones.
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
    dir.create(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let earlier = std::fs::read_dir(&a.out)
        .with_context(|| format!("cannot read {}", a.out.display()))?
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("cairn-share-"));
    if earlier {
        bail!(
            "{} already holds share files: give an empty directory",
            a.out.display()
        );
    }
    let mut files = Vec::new();
    for s in &made {
        let path = a.out.join(format!(
            "cairn-share-{}-{}-of-{}.json",
            s.set, s.index, s.count
        ));
        write_private(&path, &s.to_json(), "share file")?;
        files.push(path.display().to_string());
    }
    let set = made[0].set.clone();
    record(
        cfg,
        &opened.repo_id,
        &set,
        Event::KeySplit(KeySplit {
            repo_id: opened.repo_id.clone(),
            set: set.clone(),
            threshold: a.threshold,
            count: a.shares,
        }),
    )
    .await?;
    if a.json {
        output::json(&serde_json::json!({
            "set": set, "threshold": a.threshold, "shares": a.shares, "files": files
        }))?;
    } else {
        out!(
            "split {set}: {} shares, any {} open the repository:",
            a.shares,
            a.threshold
        );
        for f in &files {
            out!("  {f}");
        }
        out!("Give each share to a different holder and delete it here.");
    }
    Ok(0)
}

/// Records a key change in the ledger if the broker is up.
/// `what` (a key id, a split id) makes the event's id, so a retried
/// command records the same change once.
async fn record(cfg: &Config, repo_id: &str, what: &str, event: Event) -> anyhow::Result<()> {
    if let Some(bus) = context::try_bus(cfg).await {
        let env = Envelope::new(
            "cli",
            BackupId::repo(),
            event,
            &[repo_id.as_bytes(), what.as_bytes()],
        );
        // The change is made on the networks already: a failed record is
        // said, not an error (a retry would make a second key or split).
        if let Err(e) = bus.publish_event(&env).await {
            err!("cairn: warning: not recorded in the ledger: {e}");
        }
    }
    Ok(())
}
