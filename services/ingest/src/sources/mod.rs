//! The kinds of source ingest reads, one module each behind one interface,
//! [`SourceKind`]: a kind turns its request into an [`Input`] for the
//! producer (`crate::source`), and once the input is read says what the
//! backup's record carries besides (a base backup's WAL range). A new kind
//! of source is a module here and its variant of `cairn_events::Source`.
//!
//! Credentials never travel in a request: a database source names a
//! password file on the worker's host (or relies on the tool's own
//! configuration, `~/.pgpass`, `~/.my.cnf`), which the worker reads.

pub mod child;
pub mod files;
pub mod mariadb;
pub mod pgbase;
pub mod postgres;
pub mod redis;
pub mod stream;

use crate::source::{Input, Produced};
use cairn_events::{Source, WalRange};
use std::io::Read;

/// One kind of source.
pub trait SourceKind {
    /// What to read. `client` is the stream of a source only the
    /// requesting client can read (`stdin`, a WAL file). `Err` is the
    /// reason the backup fails.
    fn open(&self, client: Option<Box<dyn Read + Send>>) -> Result<Input, String>;

    /// What the read leaves for the backup's record.
    fn finish(&self, _produced: &Produced) -> Result<Option<WalRange>, String> {
        Ok(None)
    }
}

/// The kind behind `source`.
pub fn kind_of(source: &Source) -> Box<dyn SourceKind + '_> {
    match source {
        Source::Paths { paths } => Box::new(files::Files(paths)),
        Source::Stdin { name } => Box::new(stream::ClientStream {
            name: name.clone(),
            what: "a stdin backup",
        }),
        Source::Wal { name, .. } => Box::new(stream::ClientStream {
            name: name.clone(),
            what: "a WAL file",
        }),
        Source::Postgres { url, password_file } => Box::new(postgres::Dump {
            url,
            password_file: password_file.as_deref(),
        }),
        Source::PostgresBase { url, password_file } => Box::new(pgbase::BaseBackup {
            url,
            password_file: password_file.as_deref(),
        }),
        Source::Mariadb { url, password_file } => Box::new(mariadb::Dump {
            url,
            password_file: password_file.as_deref(),
        }),
        Source::Redis { url, password_file } => Box::new(redis::Rdb {
            url,
            password_file: password_file.as_deref(),
        }),
    }
}
