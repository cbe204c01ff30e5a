//! A client tool's standard output as the source stream (`pg_dump`,
//! `pg_basebackup`, `mariadb-dump`, `redis-cli --rdb`): the stream is only
//! good if the tool says so when it ends, so its exit status and the last
//! line of its complaint become the read's error.

use crate::source::SourceError;
use std::io::Read;
use std::process::{Child, ChildStdout, Command, Stdio};

pub struct ChildOutput {
    program: &'static str,
    child: Child,
    stdout: ChildStdout,
}

impl ChildOutput {
    /// Starts `cmd` (its standard error must be piped by the caller, so
    /// that it can be quoted); `install` names the package that has it.
    pub fn start(
        program: &'static str,
        install: &str,
        mut cmd: Command,
    ) -> Result<Self, SourceError> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| {
                SourceError::Other(format!(
                    "cannot run {program} (is {install} installed?): {e}"
                ))
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| SourceError::Other(format!("{program}: no standard output")))?;
        Ok(ChildOutput {
            program,
            child,
            stdout,
        })
    }
}

impl Read for ChildOutput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let status = self.child.wait()?;
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let err = err.trim().lines().last().unwrap_or("").to_string();
                return Err(std::io::Error::other(format!(
                    "{} failed ({status}): {err}",
                    self.program
                )));
            }
        }
        Ok(n)
    }
}

impl Drop for ChildOutput {
    /// A backup abandoned half way must not leave the tool running (a
    /// `pg_basebackup` would hold its backup open on the server).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
