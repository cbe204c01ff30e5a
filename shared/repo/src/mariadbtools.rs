//! MariaDB's (and MySQL's) client tools (`mariadb-dump` for sources,
//! `mariadb` for restore targets), pointed at the database a
//! `mysql://user@host:port/db` URL names. A password never travels in the
//! URL: it comes from the database's own `password_file`, handed to the
//! child alone as `MYSQL_PWD` (never on its command line, where `ps` shows
//! it), or from the tool's own option files (`~/.my.cnf`).

use std::path::Path;
use std::process::Command;

/// Where a MariaDB URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub database: String,
}

/// Reads `mysql://[user@]host[:port]/database` (or `mariadb://`); refuses a
/// URL that carries a password or names no database.
pub fn parse(url: &str) -> Result<Url, String> {
    let u = url::Url::parse(url).map_err(|e| format!("invalid MariaDB URL {url:?}: {e}"))?;
    if !matches!(u.scheme(), "mysql" | "mariadb") {
        return Err(format!(
            "invalid MariaDB URL {url:?}: it must start with mysql:// or mariadb://"
        ));
    }
    if u.password().is_some() {
        return Err(
            "the MariaDB URL carries a password, which would be recorded in events and the ledger: give it with --mariadb-password-file instead"
                .into(),
        );
    }
    let database = u.path().trim_start_matches('/').to_string();
    if database.is_empty() || database.contains('/') {
        return Err(format!(
            "the MariaDB URL {url:?} names no database (mysql://user@host:port/DATABASE)"
        ));
    }
    Ok(Url {
        host: u.host_str().map(str::to_string),
        port: u.port(),
        user: (!u.username().is_empty()).then(|| u.username().to_string()),
        database,
    })
}

/// `program` connecting where `url` points, with the password from
/// `password_file` if one is given; ready for its own arguments (the
/// database name is the caller's to place).
pub fn command(program: &str, url: &Url, password_file: Option<&Path>) -> Result<Command, String> {
    let mut c = Command::new(program);
    c.stderr(std::process::Stdio::piped())
        .env_remove("MYSQL_PWD");
    if let Some(h) = &url.host {
        c.arg(format!("--host={h}"));
    }
    if let Some(p) = url.port {
        c.arg(format!("--port={p}"));
    }
    if let Some(u) = &url.user {
        c.arg(format!("--user={u}"));
    }
    if let Some(path) = password_file {
        c.env("MYSQL_PWD", crate::password_file::read(path)?);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_host_port_user_and_database() {
        let u = parse("mysql://backup@db.example:3307/governance").unwrap();
        assert_eq!(u.host.as_deref(), Some("db.example"));
        assert_eq!(u.port, Some(3307));
        assert_eq!(u.user.as_deref(), Some("backup"));
        assert_eq!(u.database, "governance");
        assert_eq!(parse("mariadb://localhost/x").unwrap().user, None);
    }

    #[test]
    fn a_password_a_missing_database_or_another_scheme_is_refused() {
        assert!(parse("mysql://u:secret@h/db")
            .unwrap_err()
            .contains("password"));
        assert!(parse("mysql://u@h/")
            .unwrap_err()
            .contains("names no database"));
        assert!(parse("postgres://u@h/db").unwrap_err().contains("mysql://"));
    }
}
