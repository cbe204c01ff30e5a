//! `[postgres]`: where the ledger's database is and how Cairn logs in.

use cairn_crypto::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// libpq-style connection string or URL (better without a password).
    pub url: String,
    /// A file holding the password (first line), so it stays out of the URL,
    /// the environment and `docker inspect`. `PGPASSWORD` also works.
    pub password_file: Option<PathBuf>,
    /// The CA that signed the server's certificate: set, the connection
    /// must be TLS (`sslmode=require`) and the server must prove itself
    /// with it, by the host name or address in `url`.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: "host=127.0.0.1 port=5432 user=postgres dbname=cairn".into(),
            password_file: None,
            tls_ca_file: None,
        }
    }
}

/// The password file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("postgres.password_file {path}: {source}")]
pub struct PasswordFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl PostgresConfig {
    /// The ledger's password, from `password_file` or `PGPASSWORD`. It is
    /// the ledger's alone: the PostgreSQL tools Cairn runs for sources and
    /// restore targets never receive it (`cairn_repo::pgtools`).
    pub fn password(&self) -> Result<Option<Secret>, PasswordFileError> {
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|source| PasswordFileError {
                path: path.clone(),
                source,
            })?;
            return Ok(Some(Secret::new(text.lines().next().unwrap_or(""))));
        }
        Ok(std::env::var("PGPASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .map(Secret::new))
    }
}
