//! A stream only the requesting client can read (its standard input, or a
//! WAL file `cairn wal-push` was handed), stored as one file.

use super::SourceKind;
use crate::source::Input;
use std::io::Read;

pub struct ClientStream {
    pub name: String,
    /// What the backup is, for the error when a worker is asked to read it.
    pub what: &'static str,
}

impl SourceKind for ClientStream {
    fn open(&self, client: Option<Box<dyn Read + Send>>) -> Result<Input, String> {
        match client {
            Some(reader) => Ok(Input::Stream {
                name: self.name.clone(),
                reader,
                dump: false,
            }),
            None => Err(format!(
                "{} is read by the client that asked for it",
                self.what
            )),
        }
    }
}
