//! A PostgreSQL database as a logical dump: `pg_dump --format=custom`,
//! uncompressed (`-Z0`) so that unchanged table data gives unchanged
//! chunks and dedups (Cairn compresses itself). It authenticates with the
//! database's own credentials only (`cairn_repo::pgtools`).

use super::child::ChildOutput;
use super::SourceKind;
use crate::source::{Input, SourceError};
use std::io::Read;
use std::path::Path;

pub struct Dump<'a> {
    pub url: &'a str,
    pub password_file: Option<&'a str>,
}

/// `pg_dump` of `url`, as a stream.
pub fn pg_dump(url: &str, password_file: Option<&Path>) -> Result<ChildOutput, SourceError> {
    let mut cmd =
        cairn_repo::pgtools::command("pg_dump", url, password_file).map_err(SourceError::Other)?;
    cmd.args(["--format=custom", "--compress=0"]);
    ChildOutput::start("pg_dump", "postgresql-client", cmd)
}

impl SourceKind for Dump<'_> {
    fn open(&self, client: Option<Box<dyn Read + Send>>) -> Result<Input, String> {
        if client.is_some() {
            return Err("a database backup does not read the client's stream".into());
        }
        cairn_repo::pgtools::check_url(self.url)?;
        let dump =
            pg_dump(self.url, self.password_file.map(Path::new)).map_err(|e| e.to_string())?;
        Ok(Input::Stream {
            name: format!("{}.pgdump", cairn_repo::pgtools::database_name(self.url)),
            reader: Box::new(dump),
            dump: true,
        })
    }
}
