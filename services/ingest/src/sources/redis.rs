//! A Redis server's dataset as an RDB snapshot, taken with `redis-cli
//! --rdb -` (the server forks and streams a point-in-time snapshot over
//! its replication protocol). Stored as `dump.rdb`: a restore puts it in a
//! fresh server's `dir` and the server loads it at start.

use super::child::ChildOutput;
use super::SourceKind;
use crate::source::Input;
use std::io::Read;
use std::path::Path;
use std::process::Command;

pub struct Rdb<'a> {
    pub url: &'a str,
    pub password_file: Option<&'a str>,
}

/// Host, port and user of `redis://[user@]host[:port]`; a URL carrying a
/// password is refused (it would be recorded in events and the ledger).
pub fn parse(url: &str) -> Result<(String, u16, Option<String>), String> {
    let u = url::Url::parse(url).map_err(|e| format!("invalid Redis URL {url:?}: {e}"))?;
    if u.scheme() != "redis" {
        return Err(format!(
            "invalid Redis URL {url:?}: it must start with redis://"
        ));
    }
    if u.password().is_some() {
        return Err("the Redis URL carries a password, which would be recorded in events and the ledger: give it with --redis-password-file instead".into());
    }
    let host = u
        .host_str()
        .ok_or_else(|| format!("the Redis URL {url:?} names no host"))?
        .to_string();
    let user = (!u.username().is_empty()).then(|| u.username().to_string());
    Ok((host, u.port().unwrap_or(6379), user))
}

impl SourceKind for Rdb<'_> {
    fn open(&self, client: Option<Box<dyn Read + Send>>) -> Result<Input, String> {
        if client.is_some() {
            return Err("a database backup does not read the client's stream".into());
        }
        let (host, port, user) = parse(self.url)?;
        let mut cmd = Command::new("redis-cli");
        cmd.stderr(std::process::Stdio::piped())
            .env_remove("REDISCLI_AUTH")
            .args(["-h", &host, "-p", &port.to_string()]);
        if let Some(u) = user {
            cmd.args(["--user", &u]);
        }
        if let Some(f) = self.password_file {
            // redis-cli reads it from its environment, never its arguments.
            cmd.env(
                "REDISCLI_AUTH",
                cairn_repo::password_file::read(Path::new(f))?,
            );
        }
        cmd.args(["--rdb", "-"]);
        let rdb = ChildOutput::start("redis-cli", "redis-tools", cmd).map_err(|e| e.to_string())?;
        Ok(Input::Stream {
            name: "dump.rdb".into(),
            reader: Box::new(rdb),
            dump: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_redis_url_names_host_port_and_user() {
        assert_eq!(
            parse("redis://127.0.0.1").unwrap(),
            ("127.0.0.1".into(), 6379, None)
        );
        assert_eq!(
            parse("redis://backup@cache:6380").unwrap(),
            ("cache".into(), 6380, Some("backup".into()))
        );
        assert!(parse("redis://:pw@cache").unwrap_err().contains("password"));
        assert!(parse("http://cache").unwrap_err().contains("redis://"));
    }
}
