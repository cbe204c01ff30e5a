//! PostgreSQL's client tools (`pg_dump` for sources, `pg_restore` for
//! restore targets), run with the credentials of the database they work on
//! and never with the ledger's. Cairn's own ledger password may sit in its
//! environment as `PGPASSWORD`; a child would inherit it and offer it to
//! whatever server its URL names. So the child's `PGPASSWORD` is removed,
//! and set only from the database's own `password_file` when one is given;
//! `~/.pgpass` and `PGPASSFILE` work as libpq makes them work.

use std::path::Path;
use std::process::Command;

/// `program` (`pg_dump`, `pg_restore`) connecting to `url` and never asking
/// for a password on a terminal, its standard error captured for the
/// error message; ready for its own arguments.
pub fn command(program: &str, url: &str, password_file: Option<&Path>) -> Result<Command, String> {
    let mut c = Command::new(program);
    c.args(["--no-password", "--dbname", url])
        .stderr(std::process::Stdio::piped())
        .env_remove("PGPASSWORD")
        .env("PGCONNECT_TIMEOUT", "10");
    if let Some(path) = password_file {
        c.env("PGPASSWORD", crate::password_file::read(path)?);
    }
    Ok(c)
}

/// The error for a client tool that would not start: most often
/// postgresql-client is not installed.
pub fn spawn_error(program: &str, e: &std::io::Error) -> String {
    format!("cannot run {program} (is postgresql-client installed?): {e}")
}

/// The database name of a connection URL, for file names and datasets.
pub fn database_name(url: &str) -> String {
    url.parse::<tokio_postgres::Config>()
        .ok()
        .and_then(|c| c.get_dbname().map(str::to_string))
        .unwrap_or_else(|| "database".into())
}

/// `url` with its database replaced by `db`, as a libpq keyword string
/// (host, port, user, sslmode carried over; a password never is).
pub fn with_database(url: &str, db: &str) -> Result<String, String> {
    use tokio_postgres::config::{Host, SslMode};
    let c: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
    fn quote(v: &str) -> String {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
    let mut parts = Vec::new();
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    if !hosts.is_empty() {
        parts.push(format!("host={}", quote(&hosts.join(","))));
    }
    let ports: Vec<String> = c.get_ports().iter().map(u16::to_string).collect();
    if !ports.is_empty() {
        parts.push(format!("port={}", quote(&ports.join(","))));
    }
    if let Some(u) = c.get_user() {
        parts.push(format!("user={}", quote(u)));
    }
    match c.get_ssl_mode() {
        SslMode::Disable => parts.push("sslmode=disable".into()),
        SslMode::Require => parts.push("sslmode=require".into()),
        _ => {}
    }
    parts.push(format!("dbname={}", quote(db)));
    Ok(parts.join(" "))
}

/// Refuses URLs that carry a password: a source URL is recorded in events.
pub fn check_url(url: &str) -> Result<(), String> {
    match url.parse::<tokio_postgres::Config>() {
        Err(e) => Err(format!("invalid PostgreSQL URL: {e}")),
        Ok(c) if c.get_password().is_some() => Err(
            "the PostgreSQL URL carries a password, which would be recorded in events: give a password file (--postgres-password-file), or use ~/.pgpass or PGPASSFILE for the ingest worker"
                .into(),
        ),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(c: &Command, key: &str) -> Option<Option<String>> {
        c.get_envs()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    }

    #[test]
    fn the_child_gets_the_sources_password_and_never_the_ledgers() {
        let c = command("pg_dump", "postgresql://h/db", None).unwrap();
        // Removed (Some(None)), not inherited.
        assert_eq!(env_of(&c, "PGPASSWORD"), Some(None));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "source-secret\n").unwrap();
        let c = command("pg_dump", "postgresql://h/db", Some(&f)).unwrap();
        assert_eq!(env_of(&c, "PGPASSWORD"), Some(Some("source-secret".into())));
        let err = command(
            "pg_dump",
            "postgresql://h/db",
            Some(&dir.path().join("none")),
        )
        .unwrap_err();
        assert!(err.contains("password file"), "{err}");
        assert!(check_url("postgres://u:pw@h/db")
            .unwrap_err()
            .contains("password"));
        assert!(check_url("postgres://u@h/db").is_ok());
        assert_eq!(database_name("host=h dbname=app"), "app");
        let scratch =
            with_database("postgres://drill@db.example:5433/postgres", "cairn_drill_1").unwrap();
        assert_eq!(
            scratch,
            "host='db.example' port='5433' user='drill' dbname='cairn_drill_1'"
        );
        assert_eq!(database_name(&scratch), "cairn_drill_1");
        let odd = with_database("host=h user='o\\'k'", "d").unwrap();
        assert_eq!(
            odd.parse::<tokio_postgres::Config>().unwrap().get_user(),
            Some("o'k")
        );
        assert!(with_database("postgres://[bad", "d").is_err());
    }
}
