//! A MariaDB (or MySQL) database as a logical dump: `mariadb-dump
//! --single-transaction` (a consistent snapshot of InnoDB tables without
//! locking them), with routines, triggers and events, and without
//! `CREATE DATABASE`/`USE`, so that it restores into a database of any name.

use super::child::ChildOutput;
use super::SourceKind;
use crate::source::Input;
use cairn_repo::mariadbtools;
use std::io::Read;
use std::path::Path;

pub struct Dump<'a> {
    pub url: &'a str,
    pub password_file: Option<&'a str>,
}

impl SourceKind for Dump<'_> {
    fn open(&self, client: Option<Box<dyn Read + Send>>) -> Result<Input, String> {
        if client.is_some() {
            return Err("a database backup does not read the client's stream".into());
        }
        let url = mariadbtools::parse(self.url)?;
        let mut cmd =
            mariadbtools::command("mariadb-dump", &url, self.password_file.map(Path::new))?;
        cmd.args([
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--skip-dump-date",
        ])
        .arg(&url.database);
        let dump =
            ChildOutput::start("mariadb-dump", "mariadb-client", cmd).map_err(|e| e.to_string())?;
        Ok(Input::Stream {
            name: format!("{}.sql", url.database),
            reader: Box::new(dump),
            dump: false,
        })
    }
}
