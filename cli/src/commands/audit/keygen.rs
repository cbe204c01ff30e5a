//! `cairn audit keygen`: a checkpoint signing key, the log's or a
//! witness's (Ed25519, as a signed-note key).

use crate::{err, out};
use anyhow::Context;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The key's name, in every checkpoint it signs (e.g.
    /// `backup.example.com/ledger` for the log, `witness.example.com` for a
    /// witness).
    #[arg(long)]
    origin: String,
    #[arg(long)]
    key_file: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let (skey, vkey) = cairn_tlog::checkpoint::generate(&a.origin)?;
    let public = {
        let mut p = a.key_file.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&a.key_file)
        .with_context(|| {
            format!(
                "{} (an existing key is never overwritten)",
                a.key_file.display()
            )
        })?;
    f.write_all(format!("{skey}\n").as_bytes())?;
    std::fs::write(&public, format!("{vkey}\n")).with_context(|| public.display().to_string())?;
    out!("{vkey}");
    err!(
        "signing key in {} (keep it off the database host); public key in {}: give it to auditors",
        a.key_file.display(),
        public.display()
    );
    Ok(0)
}
