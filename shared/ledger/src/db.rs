//! Connecting to PostgreSQL (creating the database if it is missing),
//! applying the migrations in `schemas/sql/`, and taking the least-privilege
//! role a process works under.

use crate::PostgresConfig;
use std::path::Path;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("PostgreSQL at {target}: {detail}. Is it running? `scripts/setup.sh` installs and starts one")]
    Connect { target: String, detail: String },
    #[error("PostgreSQL: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("invalid postgres.url: {0}")]
    Url(String),
    #[error("ledger migration: {0}")]
    Migrate(String),
    #[error(transparent)]
    Password(#[from] crate::config::PasswordFileError),
    #[error("{0}")]
    Tls(String),
}

/// The migrations, in order. Each runs once, inside one transaction.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../../schemas/sql/0001_ledger.sql")),
    (2, include_str!("../../../schemas/sql/0002_ledger_tree.sql")),
    (
        3,
        include_str!("../../../schemas/sql/0003_ledger_checkpoints.sql"),
    ),
    (
        4,
        include_str!("../../../schemas/sql/0004_ledger_roles.sql"),
    ),
    (
        5,
        include_str!("../../../schemas/sql/0005_ledger_holds.sql"),
    ),
    (
        6,
        include_str!("../../../schemas/sql/0006_ledger_chunk_marks.sql"),
    ),
    (
        7,
        include_str!("../../../schemas/sql/0007_ledger_drills.sql"),
    ),
    (
        8,
        include_str!("../../../schemas/sql/0008_ledger_schedules.sql"),
    ),
    (
        9,
        include_str!("../../../schemas/sql/0009_ledger_packs.sql"),
    ),
    (
        10,
        include_str!("../../../schemas/sql/0010_ledger_dataset_keys.sql"),
    ),
    (11, include_str!("../../../schemas/sql/0011_ledger_wal.sql")),
    (
        12,
        include_str!("../../../schemas/sql/0012_ledger_usage.sql"),
    ),
    (
        13,
        include_str!("../../../schemas/sql/0013_ledger_console_role.sql"),
    ),
    (
        14,
        include_str!("../../../schemas/sql/0014_ledger_runs.sql"),
    ),
    (
        15,
        include_str!("../../../schemas/sql/0015_ledger_shards.sql"),
    ),
];

/// The database role a process works under (migration 4): least privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The ledger writer and the checkpoint signer: may only SELECT and
    /// INSERT the log; owns the head and the projections.
    Ledger,
    /// Every other stage: SELECT only.
    Reader,
    /// The ops console's pages (migration 13): SELECT on what they read,
    /// not the wrapped dataset keys nor the collector's marks.
    Console,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Ledger => "cairn_ledger",
            Role::Reader => "cairn_reader",
            Role::Console => "cairn_console",
        }
    }
}

/// Takes `role` for the rest of the session. A login that may not take it
/// (an operator's own grants) keeps its own privileges, with a warning.
pub async fn assume(client: &Client, role: Role) {
    match client
        .batch_execute(&format!("SET ROLE {}", role.name()))
        .await
    {
        Ok(()) => tracing::info!(role = role.name(), "database role taken"),
        Err(e) => tracing::warn!(role = role.name(), error = %e,
            "cannot take the database role; working with the login's own privileges"),
    }
}

fn describe(cfg: &tokio_postgres::Config) -> String {
    let host = cfg
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", cfg.get_dbname().unwrap_or("?"))
}

async fn connect_once(
    cfg: &tokio_postgres::Config,
    tls: Option<&MakeRustlsConnect>,
) -> Result<Client, tokio_postgres::Error> {
    let client = match tls {
        None => {
            let (client, conn) = cfg.connect(NoTls).await?;
            tokio::spawn(watch(conn));
            client
        }
        Some(tls) => {
            let (client, conn) = cfg.connect(tls.clone()).await?;
            tokio::spawn(watch(conn));
            client
        }
    };
    Ok(client)
}

async fn watch<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(conn: F) {
    if let Err(e) = conn.await {
        tracing::warn!(error = %e, "PostgreSQL connection closed");
    }
}

/// An error and what caused it (a TLS handshake says why only in its
/// source: an unknown issuer, a name that does not match).
fn with_causes(e: &tokio_postgres::Error) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(&format!(": {c}"));
        cause = c.source();
    }
    out
}

/// A TLS connector trusting only the CA in `ca` (PEM).
fn tls_trusting(ca: &Path) -> Result<MakeRustlsConnect, DbError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let bad =
        |detail: String| DbError::Tls(format!("postgres.tls_ca_file {}: {detail}", ca.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(e.to_string()))? {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("holds no certificate".into()));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// TCP keepalives that find a peer gone within about 25 s, on both ends.
/// A process whose host is cut off in the middle of a transaction would
/// otherwise keep its locks on the server for the system's two hours (the
/// ledger's head row: no other ledger replica could write); the server
/// ends such a session once its probes go unanswered, and the client
/// learns its connection is dead and makes another.
fn keep_alive(cfg: &mut tokio_postgres::Config) {
    cfg.keepalives(true)
        .keepalives_idle(std::time::Duration::from_secs(10))
        .keepalives_interval(std::time::Duration::from_secs(5))
        .keepalives_retries(3);
    let ours = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3";
    let options = match cfg.get_options() {
        // What the URL sets comes last, so it wins.
        Some(given) if !given.is_empty() => format!("{ours} {given}"),
        _ => ours.to_string(),
    };
    cfg.options(&options);
}

/// Resolves once `client`'s connection is gone (PostgreSQL restarted, or
/// this host cut off long enough for the keepalives to give up). A stage
/// holding one client stops then, naming why, and its service manager
/// starts it again with a new connection: what it would otherwise do is
/// fail every message it is given until each runs out of deliveries.
pub async fn closed(client: &Client) {
    while !client.is_closed() {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Why `who` stops once its connection is gone ([`closed`]), as a stage
/// says it.
pub fn gone(who: &str) -> String {
    format!("{who}'s PostgreSQL connection is gone; stopping, to be started again with a new one")
}

/// Connects; creates the database first if it does not exist.
pub async fn connect(url: &str) -> Result<Client, DbError> {
    connect_with(url, None, None).await
}

/// Connects with a password kept out of the URL (`postgres.password_file`
/// or `PGPASSWORD`, see `Config::postgres_password`), and over TLS when
/// `tls_ca` names the CA to trust.
pub async fn connect_with(
    url: &str,
    password: Option<&cairn_crypto::Secret>,
    tls_ca: Option<&Path>,
) -> Result<Client, DbError> {
    let mut cfg: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| DbError::Url(e.to_string()))?;
    if let (None, Some(p)) = (cfg.get_password(), password) {
        cfg.password(p.expose());
    }
    keep_alive(&mut cfg);
    let tls = match tls_ca {
        Some(ca) => {
            // Never fall back to a plaintext connection.
            cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
            Some(tls_trusting(ca)?)
        }
        None => None,
    };
    let tls = tls.as_ref();
    let target = describe(&cfg);
    match connect_once(&cfg, tls).await {
        Ok(c) => Ok(c),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) => {
            let db = cfg.get_dbname().unwrap_or("cairn").to_string();
            let mut admin = cfg.clone();
            admin.dbname("postgres");
            let c = connect_once(&admin, tls)
                .await
                .map_err(|e| DbError::Connect {
                    target: target.clone(),
                    detail: with_causes(&e),
                })?;
            let quoted = format!("\"{}\"", db.replace('"', "\"\""));
            if let Err(e) = c.batch_execute(&format!("CREATE DATABASE {quoted}")).await {
                // Another process may be creating it at the same moment: that
                // shows as either error, and either is fine.
                use tokio_postgres::error::SqlState;
                if e.code() != Some(&SqlState::DUPLICATE_DATABASE)
                    && e.code() != Some(&SqlState::UNIQUE_VIOLATION)
                {
                    return Err(e.into());
                }
            }
            connect_once(&cfg, tls).await.map_err(|e| DbError::Connect {
                target,
                detail: with_causes(&e),
            })
        }
        Err(e) => Err(DbError::Connect {
            target,
            detail: with_causes(&e),
        }),
    }
}

/// Applies every migration not yet applied (safe to run from many processes).
pub async fn migrate(client: &mut Client) -> Result<(), DbError> {
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         SELECT pg_advisory_xact_lock(74170001);
         CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());",
    )
    .await?;
    for (version, sql) in MIGRATIONS {
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if !done {
            tx.batch_execute(sql).await?;
            if *version == 2 {
                // The tree over entries appended before it existed.
                crate::tree::backfill(&tx)
                    .await
                    .map_err(|e| DbError::Migrate(e.to_string()))?;
            }
            if *version == 12 {
                // What each network holds, from the entries already there.
                crate::usage::backfill(&tx)
                    .await
                    .map_err(DbError::Migrate)?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Connects with the configured URL and password, and migrates.
pub async fn open(cfg: &PostgresConfig) -> Result<Client, DbError> {
    let password = cfg.password()?;
    let mut c = connect_with(&cfg.url, password.as_ref(), cfg.tls_ca_file.as_deref()).await?;
    migrate(&mut c).await?;
    Ok(c)
}

/// Connects as `role` without migrating: for a process that connects
/// again after PostgreSQL dropped it (it migrated when it started).
pub async fn connect_as(cfg: &PostgresConfig, role: Role) -> Result<Client, DbError> {
    let password = cfg.password()?;
    let c = connect_with(&cfg.url, password.as_ref(), cfg.tls_ca_file.as_deref()).await?;
    assume(&c, role).await;
    Ok(c)
}

/// [`open`], then works as `role`.
pub async fn open_as(cfg: &PostgresConfig, role: Role) -> Result<Client, DbError> {
    let c = open(cfg).await?;
    assume(&c, role).await;
    Ok(c)
}
