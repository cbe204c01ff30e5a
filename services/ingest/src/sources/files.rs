//! Files and directories named by path, read by the worker on its host.

use super::SourceKind;
use crate::source::Input;
use std::io::Read;

pub struct Files<'a>(pub &'a [String]);

impl SourceKind for Files<'_> {
    fn open(&self, client: Option<Box<dyn Read + Send>>) -> Result<Input, String> {
        if client.is_some() {
            return Err("only a stdin or WAL backup reads the client's stream".into());
        }
        if self.0.is_empty() {
            return Err("no paths to back up".into());
        }
        Ok(Input::Paths(self.0.iter().map(Into::into).collect()))
    }
}
